#!/usr/bin/env python3
"""Emulated vs paravirtual network I/O: the same two VMs of our guest OS, one running
the benchmark client (``netbench``), the other the responder (``netecho``), each with
an emulated Intel e1000 and a virtio-net NIC on popek's switch; the client measures,
on each NIC, round trips of 64-byte frames and a bulk transfer of 1514-byte frames
(the responder acknowledges every 16th).  Under trap-and-emulate (shadow paging) and
under hardware assist (the H extension, nested paging).

For each workload and NIC: the device exits (MMIO reads and writes of that NIC, both
VMs) per frame and per KiB, all exits per frame (our guest OS polls its NICs with a
system call, which is an exit of its own under trap-and-emulate), the client's
modelled cycles per operation, guest-time throughput and host wall time; then which
registers the exits touched, per frame: the reason in the article's words.

    python bench/bench_net.py [--pingpongs N]
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from popek.console import ScriptedConsole                       # noqa: E402
from popek.devices.options import DeviceSpec, NetdevSpec        # noqa: E402
from popek.vmm.hypervisor import Hypervisor                     # noqa: E402
from popek.vmm.vm import VmConfig                                # noqa: E402

BENCH = re.compile(r"BENCH net_(pingpong|bulk)_net(\d) iters=(\d+) cycles=(\d+) time_ns=(\d+)")
NICS = ("e1000", "virtio-net")                 # the guest OS finds them in this order
FULL, SMALL, WINDOW = 1514, 64, 16


def _nics(vm: str) -> dict:
    return {"devices": [DeviceSpec("e1000", {"netdev": f"{vm}.e1000"}),
                        DeviceSpec("virtio-net-pci", {"netdev": f"{vm}.virtio"})],
            "netdevs": [NetdevSpec("switch", f"{vm}.e1000"),
                        NetdevSpec("switch", f"{vm}.virtio")]}


class SnapshotConsole(ScriptedConsole):
    """At each line the client prints: host time and both VMs' ledger details."""

    def __init__(self):
        super().__init__()
        self.lines = []
        self._partial = b""
        self.vms = []

    def write(self, data: bytes) -> None:
        super().write(data)
        self._partial += data
        while b"\n" in self._partial:
            line, self._partial = self._partial.split(b"\n", 1)
            snap = [(dict(vm.ledger.details), vm.ledger.total()[0]) for vm in self.vms]
            self.lines.append((time.perf_counter(), line.decode(errors="replace"), snap))


def run(cpu: str, paging: str) -> list[dict]:
    con = SnapshotConsole()
    kernel = str(ROOT / "guests" / "build" / "kernel.elf")
    hv = Hypervisor([VmConfig(kernel=kernel, name="client", append="netbench", cpu=cpu,
                              paging=paging, **_nics("client")),
                     VmConfig(kernel=kernel, name="echo", append="netecho", cpu=cpu,
                              paging=paging, **_nics("echo"))], con)
    con.vms = hv.vms
    code = hv.run()
    hv.close()
    assert code == 0 and "BENCH DONE" in con.text(), con.text()[-2000:]
    rows, prev = [], None
    for t, line, snap in con.lines:
        m = BENCH.search(line)
        if m and prev is not None:
            kind, nic, iters, cycles, ns = m.group(1), NICS[int(m.group(2))], *map(
                int, m.groups()[2:])
            registers: dict[str, int] = {}
            for (details, _), (before, _) in zip(snap, prev[2]):
                for (reason, detail), n in details.items():
                    if reason.startswith("mmio") and detail.startswith(nic):
                        key = f"{reason[5:]} {detail[len(nic) + 1:]}"
                        registers[key] = registers.get(key, 0) + n - before.get((reason, detail), 0)
            exits = sum(s[1] - p[1] for s, p in zip(snap, prev[2]))
            if kind == "pingpong":
                frames, ops, payload = 2 * iters, iters, 2 * iters * SMALL
            else:
                frames, ops, payload = iters // FULL + iters // FULL // WINDOW, iters // FULL, iters
            rows.append({"workload": kind, "nic": nic, "frames": frames, "ops": ops,
                         "kib": payload / 1024, "cycles": cycles, "ns": ns,
                         "wall": t - prev[0], "exits": exits,
                         "device_exits": sum(registers.values()),
                         "registers": {k: v for k, v in registers.items() if v}})
        if m or line.strip().endswith("NICs, answering as 10.0.<nic>.2") or "init:" in line:
            prev = (t, line, snap)
    return rows


def main():
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    print(__doc__.split("\n\n")[0].replace("\n", " "), "\n")
    for label, cpu, paging in (("trap-and-emulate", "trap-emulate", "shadow"),
                               ("hardware assist", "hw", "nested")):
        rows = run(cpu, paging)
        print(f"## {label}\n")
        print("| workload | NIC | device exits/frame | device exits/KiB | all exits/frame "
              "| modelled cycles/op | throughput (guest) | host wall s |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            rate = r["kib"] / (r["ns"] / 1e9) / 1024 if r["ns"] else 0
            print(f"| {r['workload']} | {r['nic']} | {r['device_exits'] / r['frames']:.2f} | "
                  f"{r['device_exits'] / r['kib']:.2f} | {r['exits'] / r['frames']:.1f} | "
                  f"{r['cycles'] / r['ops']:,.0f} | {rate:.2f} MiB/s | {r['wall']:.1f} |")
        print("\nRegisters per frame (both VMs):\n")
        for r in rows:
            regs = ", ".join(f"{k} {v / r['frames']:.2f}" for k, v in
                             sorted(r["registers"].items(), key=lambda kv: -kv[1]))
            print(f"- {r['workload']}, {r['nic']}: {regs}")
        print()


if __name__ == "__main__":
    main()
