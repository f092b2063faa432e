#!/usr/bin/env python3
"""One virtio-blk request on KVM, by the long path and the short: each notify an exit to
popek (``--ioeventfd off``) against the notify caught inside KVM and served by popek's
I/O thread, its completion raised by KVM through an irqfd (``--ioeventfd on``).

The guest (guests/x86/blk.elf) reads one sector N times over virtio-pci, each time
writing the notify register and then either polling the used ring or sleeping in
``hlt`` until the device's interrupt (INTx through the IOAPIC; its handler reads the
ISR register and sends the EOI), and times the N with its TSC.  Per request: the exits
that reached popek (and which), notifies and interrupts that stayed inside KVM, the
guest-measured latency, and the host's wall time.  On a host with hardware KVM the exit is a VM exit and a return
to user space; here (PVM) the guest's ring 0 is itself emulated, so both paths carry
that cost too, and what the table isolates is the hop the eventfd removes.

    python bench/bench_kvm_io.py [--n N]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from popek.console import ScriptedConsole                         # noqa: E402
from popek.devices.virtio import blk as blk_module                 # noqa: E402
from popek.kvm import layout                                       # noqa: E402
from popek.kvm.machine import X86Machine, implementation          # noqa: E402
from popek.kvm.system import Kvm, KvmUnavailable                   # noqa: E402
from popek.riscv.board import DriveSpec                            # noqa: E402

GUEST = ROOT / "guests" / "x86" / "build" / "blk.elf"
READS = re.compile(r"reads ([0-9a-f]{16}) tsc ([0-9a-f]{16})")


class Timed:
    """A function that adds up the host time spent in it (a hop of the request)."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args):
        start = time.perf_counter()
        try:
            return self.fn(*args)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


class TimedOs:
    """The os module as the disk model sees it, its file I/O timed: the host system call."""

    def __init__(self):
        self.pread, self.pwrite, self.fsync = Timed(os.pread), Timed(os.pwrite), Timed(os.fsync)

    def __getattr__(self, name):
        return getattr(os, name)


def run(n: int, ioeventfd: bool, disk: Path, interrupts: bool) -> dict:
    con = ScriptedConsole()
    m = X86Machine(str(GUEST), memory=16 << 20, console=con, drives=[DriveSpec(str(disk))],
                   ioeventfd=ioeventfd)
    timed_os, real_os = TimedOs(), blk_module.os
    try:
        blk_module.os = timed_os
        m.vm.irq_line = irq_line = Timed(m.vm.irq_line)
        m.ram.write_int(layout.PROBE_PARAMS, 8, n)
        m.ram.write_int(layout.PROBE_PARAMS + 8, 8, int(interrupts))
        start = time.perf_counter()
        code = m.run(timeout=600)
        wall = time.perf_counter() - start
        khz = m.vcpu.tsc_khz()
        notifies = m.ioevents.notifies if m.ioevents else 0
        raises = m.ioevents.raises if m.ioevents else 0
    finally:
        blk_module.os = real_os
        m.close()
    out = con.text()
    assert code == 0 and "blk: ok" in out, out
    got = READS.search(out)
    # (MMIO exits only: the result line the timed run prints is port I/O of its own)
    return {"exits": sum(n for r, n in m.ledger.counts.items() if r.startswith("mmio")),
            "counts": dict(m.ledger.counts),
            "wall": wall, "tsc": int(got.group(2), 16) if got else 0, "khz": khz,
            "notifies": notifies, "raises": raises,
            "reads": m.ledger.counts.get("mmio_read", 0),
            "handling": m.ledger.cycles.get("mmio_write", 0.0),   # (measured: seconds)
            "syscall": timed_os.pread.seconds,
            "inject": irq_line.seconds / irq_line.calls if irq_line.calls else 0.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests" / "x86")], check=True)
    try:
        Kvm().close()
    except KvmUnavailable as e:
        print(f"no usable KVM: {e}")
        return
    print(f"KVM here: {implementation()}\n")
    print(__doc__.split("\n\n")[0].replace("\n", " "), "\n")
    print("| path | the guest waits by | MMIO exits to popek / request | of them writes "
          "(notify) | of them reads (ISR) | notifies in KVM | irqfd raises "
          "| guest µs / request | host wall µs / request |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        disk = Path(tmp) / "disk.img"
        disk.write_bytes(b"bench\n" + bytes(64 * 1024 - 6))
        for label, on in (("exit to popek (--ioeventfd off)", False),
                          ("ioeventfd + irqfd (--ioeventfd on)", True)):
            for wait, interrupts in (("polling", False), ("hlt, interrupt", True)):
                base, full = run(0, on, disk, interrupts), run(args.n, on, disk, interrupts)
                n = args.n
                per = lambda key: (full[key] - base[key]) / n
                writes = (full["counts"].get("mmio_write", 0)
                          - base["counts"].get("mmio_write", 0)) / n
                print(f"| {label} | {wait} | {per('exits'):.2f} | {writes:.2f} | "
                      f"{per('reads'):.2f} | {per('notifies'):.2f} | {per('raises'):.2f} | "
                      f"{full['tsc'] / full['khz'] * 1000 / n:.1f} | {per('wall') * 1e6:.1f} |")
                if not on and not interrupts:
                    hops = (full["tsc"] / full["khz"] * 1000 / n, per("handling") * 1e6,
                            per("syscall") * 1e6)
                if not on and interrupts:            # (an ioctl per request: a fair mean)
                    inject = full["inject"] * 1e6
    total, handling, syscall = hops
    print("\nThe long path's hops, per request (polling guest, `--ioeventfd off`), µs:\n")
    print("| hop | µs |")
    print("|---|---:|")
    print(f"| the whole request, as the guest times it | {total:.1f} |")
    print(f"| popek handling the notify exit (Python: the queue and the device; the exit's "
          f"decoding is outside it) | {handling:.1f} |")
    print(f"| ... of which the host system call (pread of the sector) | {syscall:.1f} |")
    print(f"| raising an interrupt, one KVM_IRQ_LINE ioctl (its mean over the interrupt "
          f"run, where each request raises it) | {inject:.1f} |")
    print(f"| the rest: the exit and re-entry through KVM, and the guest's own driver | "
          f"{total - handling:.1f} |")


if __name__ == "__main__":
    main()
