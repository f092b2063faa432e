#!/usr/bin/env python3
"""Emulated vs paravirtual I/O, network and console.

Network: the same two VMs of our guest OS, one running
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

Console: one VM (and the bare machine) writing the same 472 bytes through the 16550,
register by register (THR-empty poll and a THR write per byte), and through a
virtio console (one buffer and one notify per line): exits and modelled cycles per
byte.

    python bench/bench_io.py
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
from popek.riscv.board import BoardConfig, VirtBoard             # noqa: E402
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


CONSOLE = re.compile(r"BENCH (console_\w+) iters=(\d+) cycles=(\d+) time_ns=(\d+)")
OPENSBI = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"


def console_run(cpu: str | None) -> dict:
    """{benchmark: (bytes, cycles, device exits, wall s)} for console_uart/_virtio."""
    con = SnapshotConsole()
    kernel = str(ROOT / "guests" / "build" / "kernel.elf")
    args = {"append": "bench=console_uart,console_virtio",
            "devices": [DeviceSpec("virtio-serial-pci")]}
    if cpu is None:
        m = VirtBoard(BoardConfig(bios=OPENSBI, kernel=kernel, icount_sleep=False, **args),
                      console=con)
    else:
        m = Hypervisor([VmConfig(kernel=kernel, cpu=cpu,
                                 paging="nested" if cpu == "hw" else "shadow", **args)],
                       con, icount_sleep=False)
        con.vms = m.vms
    assert m.run() == 0, con.text()[-2000:]
    m.close()
    out, prev = {}, None
    for t, line, snap in con.lines:
        g = CONSOLE.search(line)
        if g and prev is not None:
            device = "uart" if g.group(1) == "console_uart" else "virtio-console"
            exits = 0
            for (details, _), (before, _) in zip(snap, prev[2]):
                exits += sum(n - before.get(k, 0) for k, n in details.items()
                             if k[0].startswith("mmio") and k[1].startswith(device))
            out[g.group(1)] = (int(g.group(2)), int(g.group(3)), exits, t - prev[0])
        if g or "init:" in line:
            prev = (t, line, snap)
    return out


def console_table() -> None:
    print("## console: the 16550 byte by byte vs the virtio console\n")
    print("| machine | device | exits/KiB | modelled cycles/byte | host wall ms |")
    print("|---|---|---:|---:|---:|")
    for label, cpu in (("bare", None), ("trap-and-emulate", "trap-emulate"),
                       ("hardware assist", "hw")):
        for name, (n, cycles, exits, wall) in console_run(cpu).items():
            print(f"| {label} | {name[8:]} | {exits / n * 1024:.0f} | {cycles / n:,.0f} | "
                  f"{wall * 1000:.1f} |")
    print()


def main():
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    print(__doc__.split("\n\n")[0].replace("\n", " "), "\n")
    console_table()
    for label, cpu, paging in (("trap-and-emulate", "trap-emulate", "shadow"),
                               ("hardware assist", "hw", "nested")):
        rows = run(cpu, paging)
        print(f"## network, {label}\n")
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
