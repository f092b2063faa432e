#!/usr/bin/env python3
"""One virtio-blk request on KVM, by the long path and the short: each notify an exit to
popek (``--ioeventfd off``) against the notify caught inside KVM and served by popek's
I/O thread (``--ioeventfd on``).

The guest (guests/x86/blk.elf) reads one sector N times over virtio-pci, each time
writing the notify register and polling the used ring, and times the N with its TSC.
Per request: the exits that reached popek (and which), the guest-measured latency, and
the host's wall time.  On a host with hardware KVM the exit is a VM exit and a return
to user space; here (PVM) the guest's ring 0 is itself emulated, so both paths carry
that cost too, and what the table isolates is the hop the eventfd removes.

    python bench/bench_kvm_io.py [--n N]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from popek.console import ScriptedConsole                         # noqa: E402
from popek.kvm import layout                                       # noqa: E402
from popek.kvm.machine import X86Machine, implementation          # noqa: E402
from popek.kvm.system import KvmUnavailable                        # noqa: E402
from popek.riscv.board import DriveSpec                            # noqa: E402

GUEST = ROOT / "guests" / "x86" / "build" / "blk.elf"
READS = re.compile(r"reads ([0-9a-f]{16}) tsc ([0-9a-f]{16})")


def run(n: int, ioeventfd: bool, disk: Path) -> dict:
    con = ScriptedConsole()
    m = X86Machine(str(GUEST), memory=16 << 20, console=con, drives=[DriveSpec(str(disk))],
                   ioeventfd=ioeventfd)
    try:
        m.ram.write_int(layout.PROBE_PARAMS, 8, n)
        start = time.perf_counter()
        code = m.run(timeout=600)
        wall = time.perf_counter() - start
        khz = m.vcpu.tsc_khz()
        notifies = m.ioevents.notifies if m.ioevents else 0
    finally:
        m.close()
    out = con.text()
    assert code == 0 and "blk: ok" in out, out
    got = READS.search(out)
    return {"exits": sum(m.ledger.counts.values()), "counts": dict(m.ledger.counts),
            "wall": wall, "tsc": int(got.group(2), 16) if got else 0, "khz": khz,
            "notifies": notifies}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests" / "x86")], check=True)
    try:
        print(f"KVM here: {implementation()}\n")
    except KvmUnavailable as e:
        print(f"no usable KVM: {e}")
        return
    print(__doc__.split("\n\n")[0].replace("\n", " "), "\n")
    print("| path | exits to popek / request | of them MMIO writes | notifies in KVM / request "
          "| guest µs / request | host wall µs / request |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        disk = Path(tmp) / "disk.img"
        disk.write_bytes(b"bench\n" + bytes(64 * 1024 - 6))
        for label, on in (("exit to popek (--ioeventfd off)", False),
                          ("ioeventfd (--ioeventfd on)", True)):
            base, full = run(0, on, disk), run(args.n, on, disk)
            n = args.n
            per = lambda key: (full[key] - base[key]) / n
            writes = (full["counts"].get("mmio_write", 0) - base["counts"].get("mmio_write", 0)) / n
            print(f"| {label} | {per('exits'):.2f} | {writes:.2f} | {per('notifies'):.2f} | "
                  f"{full['tsc'] / full['khz'] * 1000 / n:.1f} | {per('wall') * 1e6:.1f} |")


if __name__ == "__main__":
    main()
