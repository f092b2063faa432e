#!/usr/bin/env python3
"""Type 1 vs Type 2: one virtio-blk request with the device model inside the hypervisor,
and behind a host OS (the simulator's side of the comparison; the KVM side, measured,
is bench/bench_kvm_io.py).

Our guest OS's sequential disk benchmarks (64 KiB requests) run under popek's VMM, whose
device models live in the hypervisor: a request costs its exits (the notify, and the
interrupt's acknowledgement) and nothing else, as in a Type 1 hypervisor (Xen's or
ESXi's drivers, here the VMM in M-mode/HS-mode).  A Type 2 hypervisor's device model is a
process of the host OS (QEMU under KVM): each notify exit that reaches the model also
leaves the host kernel for that process and comes back (a return to user space and a
system call: ``HOST_SYSCALL`` twice), the model reaches the disk through system calls
(``pread``, ``pwrite``, ``fsync``: one each, ``HOST_SYSCALL`` + ``HOST_IO_COPY`` per
KiB), and it raises the interrupt with one more (``KVM_IRQ_LINE``).  The table adds those
hops to the measured exits, from the cost model (`costmodel.py`, where each number's
source is).  The interrupt's acknowledgement exits are not priced as reaching the host
process, so Type 2 is if anything cheaper here than it is.

    python bench/bench_io_path.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from snapshots import LineSnapshots                             # noqa: E402
from popek.costmodel import CostModel                           # noqa: E402
from popek.riscv.board import DriveSpec                          # noqa: E402
from popek.vmm.hypervisor import Hypervisor                     # noqa: E402
from popek.vmm.vm import VmConfig                                # noqa: E402

BENCH = re.compile(r"BENCH (blk_seq_\w+) iters=(\d+) cycles=(\d+) time_ns=(\d+)")


def run(cpu: str, paging: str, disk: Path) -> list[dict]:
    con = LineSnapshots()
    hv = Hypervisor([VmConfig(kernel=str(ROOT / "guests" / "build" / "kernel.elf"),
                              append="bench=blk_seq_read,blk_seq_write", cpu=cpu, paging=paging,
                              drives=[DriveSpec(str(disk))])], con)
    vm = hv.vms[0]
    con.snapshot = lambda: (dict(vm.ledger.details), vm.ledger.total()[0],
                            dict(vm.platform.disk_stats()[0]))
    try:
        assert hv.run() == 0, con.text()[-2000:]
    finally:
        hv.close()
    rows, prev = [], None
    for line, (details, exits, disk_stats) in con.lines:
        m = BENCH.search(line)
        if m and prev is not None:
            d = {k: disk_stats[k] - prev[3][k] for k in ("reads", "writes", "flushes",
                                                          "bytes_read", "bytes_written")}
            requests = d["reads"] + d["writes"] + d["flushes"]
            notify = sum(n - prev[1].get(k, 0) for k, n in details.items()
                         if k[1].startswith("virtio") and "Notify" in k[1])
            rows.append({"name": m.group(1), "requests": requests, "exits": exits - prev[2],
                         "notify": notify, "cycles": int(m.group(3)),
                         "kib": (d["bytes_read"] + d["bytes_written"]) / 1024})
        if m or "init:" in line:
            prev = (line, details, exits, disk_stats)
    return rows


def main():
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    costs = CostModel()
    print(__doc__.split("\n\n")[0].replace("\n", " "), "\n")
    print(f"HOST_SYSCALL {costs.HOST_SYSCALL:,} cycles, HOST_IO_COPY {costs.HOST_IO_COPY} "
          "cycles/KiB (costmodel.py)\n")
    print("| VMM | benchmark | requests | exits / request | notifies / request "
          "| Type 1: cycles / request | Type 2 adds / request | Type 2 / Type 1 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        disk = Path(tmp) / "disk.img"
        for label, cpu, paging in (("trap-and-emulate", "trap-emulate", "shadow"),
                                   ("hardware assist", "hw", "nested")):
            disk.write_bytes(bytes(4 << 20))
            for r in run(cpu, paging, disk):
                n = r["requests"]
                type1 = r["cycles"] / n
                # Each notify exit: out to the VMM process and back (2 switches); each
                # request: its system call, its bytes copied, its interrupt's ioctl.
                added = (2 * r["notify"] * costs.HOST_SYSCALL + n * 2 * costs.HOST_SYSCALL
                         + r["kib"] * costs.HOST_IO_COPY) / n
                print(f"| {label} | {r['name']} | {n} | {r['exits'] / n:.1f} | "
                      f"{r['notify'] / n:.2f} | {type1:,.0f} | {added:,.0f} | "
                      f"{(type1 + added) / type1:.2f}× |")


if __name__ == "__main__":
    main()
