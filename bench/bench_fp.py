#!/usr/bin/env python3
"""Speed of floating point on the simulated machine (--cpu rv64gc): popek's
interpreter, popek's translator cold and warm, and QEMU (TCG), on the same image
in the same run.

The guest is bench/guest/fpkernel.c, bare M-mode: an n-body simulation in double
and a single-precision matrix multiply in three rounding modes.  It prints a
checksum of the bits of its results and of fflags; every engine must print the
same one, or this fails (exit status 1) before printing any figure.

popek's instruction count is exact (retired instructions, the same in both its
engines); QEMU's side is wall time for the same image, including its start-up
(shown on its own, as QEMU's time for a one-step image), so its MIPS figure is
popek's instruction count over QEMU's time.  Cold: nothing compiled yet; warm: the
code cache of an earlier run of the image (as bench_riscv.py).

    python bench/bench_fp.py [--steps N] [--mrounds N] [--repeat N] [--no-interpreter]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_riscv import QEMU, ROOT, best, cold_and_warm, qemu_program   # noqa: E402

from popek.console import ScriptedConsole                                  # noqa: E402
from popek.riscv.board import BoardConfig, VirtBoard                       # noqa: E402

CPU = "rv64imafdc"


def build_fpkernel(steps: int, mrounds: int) -> Path:
    """The FP guest at a size (bench/guest/Makefile: build/fpkernel-STEPS-MROUNDS.elf)."""
    target = f"build/fpkernel-{steps}-{mrounds}.elf"
    subprocess.run(["make", "-s", "-C", str(ROOT / "bench" / "guest"), target], check=True)
    return ROOT / "bench" / "guest" / target


def popek_fp(elf: Path, engine: str = "translate", code_cache=None):
    """(wall seconds, instructions, console text) of one run under popek."""
    con = ScriptedConsole()
    b = VirtBoard(BoardConfig(bios=None, kernel=str(elf), cpu=CPU, engine=engine,
                              code_cache=code_cache), console=con)
    t = time.perf_counter()
    code = b.run()
    wall = time.perf_counter() - t
    b.close()
    if code != 0:
        raise SystemExit(f"popek ({engine}) ended the FP guest with {code}:\n{con.text()}")
    return wall, b.hart.instret, con.text().strip()


def checksums_agree(results: dict[str, str]) -> None:
    """Every engine printed the same checksum, or fail loudly."""
    if len(set(results.values())) != 1:
        lines = "\n".join(f"  {name:18s} {text!r}" for name, text in results.items())
        print(f"FAIL: the engines disagree on the FP guest's checksum:\n{lines}", file=sys.stderr)
        raise SystemExit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10000, help="n-body steps")
    ap.add_argument("--mrounds", type=int, default=64, help="rounds of the matrix multiply")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    ap.add_argument("--no-interpreter", action="store_true", help="skip popek's interpreter")
    args = ap.parse_args()
    elf = build_fpkernel(args.steps, args.mrounds)
    have_qemu = shutil.which(QEMU) is not None

    cache_dir = tempfile.mkdtemp(prefix="popek-bench-fp-")
    try:
        (cold, insns, text), warm = cold_and_warm(lambda **kw: popek_fp(elf, **kw), cache_dir,
                                                  args.repeat)
        warm_text = popek_fp(elf, code_cache=cache_dir)[2]
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    texts = {"translator cold": text, "translator warm": warm_text}
    interp = None
    if not args.no_interpreter:
        interp, i_insns, texts["interpreter"] = best(lambda: popek_fp(elf, "interpret"), 1)
        if i_insns != insns:
            raise SystemExit(f"FAIL: interpreter retired {i_insns:,} instructions, "
                             f"translator {insns:,}")
    qemu = startup = None
    if have_qemu:
        qemu, texts["QEMU"] = best(lambda: qemu_program(elf), args.repeat)
        startup = best(lambda: qemu_program(build_fpkernel(1, 1)), args.repeat)[0]
    checksums_agree(texts)

    print(f"FP guest (n-body {args.steps} steps, {args.mrounds} rounds of 16x16 matrices), "
          f"{insns:,} instructions; all engines printed: {text}")
    print(f"{'engine':28s} {'wall':>8s} {'MIPS':>7s} {'x QEMU':>7s}")

    def row(name, wall):
        if wall is None:
            print(f"{name:28s} {'n/a':>8s}")
            return
        ratio = f"{wall / qemu:6.1f}x" if qemu else "n/a"
        print(f"{name:28s} {wall:7.2f}s {insns / wall / 1e6:7.2f} {ratio:>7s}")
    row("popek interpreter", interp)
    row("popek translator, cold", cold)
    row("popek translator, warm", warm)
    row("QEMU (with its start-up)", qemu)
    if startup:
        print(f"{'QEMU start-up alone':28s} {startup:7.2f}s   (its time for a one-step image)")
        if qemu - startup > 0.25 * qemu:             # (else it says nothing)
            print(f"{'QEMU less its start-up':28s} {qemu - startup:7.2f}s "
                  f"{insns / (qemu - startup) / 1e6:7.1f}   (rough: a difference of two short times)")
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} cores; best of {args.repeat} "
          f"(interpreter: 1 run); x QEMU: popek's wall time over QEMU's, start-up included)")


if __name__ == "__main__":
    main()
