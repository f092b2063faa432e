#!/usr/bin/env python3
"""What a VM exit costs on this host's KVM, under popek and under QEMU.

The same guest (guests/x86/pvhprobe.elf, booted through its PVH note by both
VMMs) runs N port-I/O writes to the POST port 0x80, N writes to unassigned MMIO,
or N CPUIDs; each VMM is timed as a whole process with N and with N = 0, and the
difference divided by N is the cost of one exit there.  Port I/O and MMIO exits
are handled in user space (popek: Python; QEMU: C); CPUID inside KVM in both, so
its row shows the floor the VMMs share.

    python bench/bench_kvm.py [--n N] [--repeat R]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from popek.kvm.machine import implementation   # noqa: E402
from popek.kvm.system import Kvm, KvmUnavailable  # noqa: E402

PROBE = ROOT / "guests" / "x86" / "build" / "pvhprobe.elf"
# (name, probe test, how many times N): exits that stay in KVM are ~10x cheaper, so
# they run 10x as often to stand out of the processes' start-up noise.
TESTS = [("port-I/O exit (outb 0x80)", 1, 1), ("MMIO exit (unassigned)", 5, 1),
         ("CPUID (in KVM)", 2, 10)]


def popek_cmd(test: int, n: int) -> list[str]:
    return [sys.executable, "-m", "popek", "run", "--backend", "kvm", "--kernel", str(PROBE),
            "-m", "16M", "--append", f"{test} {n}"]


def qemu_cmd(test: int, n: int) -> list[str]:
    return ["qemu-system-x86_64", "-accel", "kvm", "-M", "pc", "-m", "16M", "-nodefaults",
            "-nographic", "-no-reboot", "-device", "isa-debug-exit,iobase=0x501,iosize=1",
            "-kernel", str(PROBE), "-append", f"{test} {n}"]


def timed(cmd: list[str], ok: tuple[int, ...]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t
    if r.returncode not in ok:
        raise RuntimeError(f"{cmd[0]} exited {r.returncode}: {r.stderr.strip()[-300:]}")
    return elapsed


def per_exit(make, test: int, n: int, repeat: int, ok) -> float:
    base = min(timed(make(test, 0), ok) for _ in range(repeat))
    full = min(timed(make(test, n), ok) for _ in range(repeat))
    return max(full - base, 0.0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="exits per timed run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per point (the fastest counts)")
    args = ap.parse_args()
    try:
        Kvm().close()
    except KvmUnavailable as e:
        print(f"bench_kvm: skipped: {e}")
        return 0
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests" / "x86")], check=True)
    have_qemu = shutil.which("qemu-system-x86_64") is not None
    print(f"KVM: {implementation()}; {args.n:,} exits per run (CPUID: 10x), best of {args.repeat}")
    print(f"{'exit':28s} {'popek µs':>10s} {'QEMU µs':>10s} {'popek/QEMU':>11s}")
    for name, test, times in TESTS:
        n = args.n * times
        mine = per_exit(popek_cmd, test, n, args.repeat, (0,))
        if have_qemu:
            # isa-debug-exit makes QEMU exit with (value << 1) | 1.
            theirs = per_exit(qemu_cmd, test, n, args.repeat, (1,))
            ratio = f"{mine / theirs:10.2f}x" if theirs > 0 else f"{'-':>11s}"
            print(f"{name:28s} {mine * 1e6:10.2f} {theirs * 1e6:10.2f} {ratio}")
        else:
            print(f"{name:28s} {mine * 1e6:10.2f} {'(no qemu-system-x86_64)':>22s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
