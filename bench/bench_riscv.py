#!/usr/bin/env python3
"""Speed of the simulated machine: popek's translator, popek's interpreter, and
QEMU 7.2 (TCG), on the same images in the same run.

    1. a CPU-bound program (bench/guest/compute.c, bare M-mode);
    2. a byte-wise memset over 64 MiB (bench/guest/memset.S, 201 M instructions);
    3. OpenSBI fw_jump + S-mode U-Boot from power-on to the `=> ` prompt, with
       autoboot interrupted at once.

popek's instruction counts are exact (retired instructions, identical in both of
its engines); QEMU's side is wall time for the same image, including its process
start-up, so its MIPS figure is popek's instruction count over QEMU's time.

popek's translator is measured twice: cold (nothing compiled yet: every hot
block is written out and compile()d during the run, as on a first boot) and warm
(the code cache of an earlier run of the same image, as on every later boot;
see src/popek/riscv/codecache.py).  The ratio to QEMU is taken from the cold run.

    python bench/bench_riscv.py [--rounds N] [--repeat N] [--no-interpreter]
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from popek.console import ScriptedConsole                      # noqa: E402
from popek.riscv.board import BoardConfig, VirtBoard            # noqa: E402

OPENSBI = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"
UBOOT = "/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf"
QEMU = "qemu-system-riscv64"


def build_compute(rounds: int) -> Path:
    out = ROOT / "bench" / "guest" / "build" / f"compute-{rounds}.elf"
    if not out.exists():
        gdir = ROOT / "bench" / "guest"
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv64imac_zicsr_zifencei", "-mabi=lp64",
                        "-O2", "-nostdlib", "-nostartfiles", "-static", "-mcmodel=medany",
                        "-ffreestanding", f"-DROUNDS={rounds}", "-T", str(gdir / "link.ld"),
                        "-Wl,--no-warn-rwx-segments", "-o", str(out),
                        str(gdir / "crt.S"), str(gdir / "compute.c")], check=True)
    return out


class PromptWatch(ScriptedConsole):
    """Interrupts autoboot, then records when the prompt first appears."""

    def __init__(self, board_ref):
        super().__init__([("Hit any key", " ")])
        self.board_ref = board_ref
        self.at_prompt = None

    def write(self, data):
        super().write(data)
        if self.at_prompt is None and b"=> " in self.output:
            b = self.board_ref[0]
            self.at_prompt = (time.perf_counter(), b.hart.instret)
            b.shutdown(0, "prompt reached")


def popek_program(elf: Path, engine="translate", code_cache=None):
    con = ScriptedConsole()
    b = VirtBoard(BoardConfig(bios=None, kernel=str(elf), engine=engine, code_cache=code_cache),
                  console=con)
    t = time.perf_counter()
    code = b.run()
    wall = time.perf_counter() - t
    b.close()
    assert code == 0, con.text()
    return wall, b.hart.instret, con.text().strip()


def popek_prompt(engine="translate", code_cache=None):
    ref = [None]
    con = PromptWatch(ref)
    b = VirtBoard(BoardConfig(bios=OPENSBI, kernel=UBOOT, engine=engine, code_cache=code_cache),
                  console=con)
    ref[0] = b
    t = time.perf_counter()
    b.run()
    b.close()
    assert con.at_prompt, con.text()[-500:]
    return con.at_prompt[0] - t, con.at_prompt[1]


def qemu_program(elf: Path):
    t = time.perf_counter()
    r = subprocess.run([QEMU, "-M", "virt", "-m", "128M", "-nographic", "-bios", "none",
                        "-kernel", str(elf)], capture_output=True, timeout=300)
    return time.perf_counter() - t, r.stdout.decode(errors="replace").strip()


def qemu_prompt():
    t = time.perf_counter()
    p = subprocess.Popen([QEMU, "-M", "virt", "-m", "128M", "-nographic", "-bios", OPENSBI,
                          "-kernel", UBOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    out, sent = b"", False
    try:
        while True:
            ready, _, _ = select.select([p.stdout], [], [], 30)
            if not ready:
                raise RuntimeError("QEMU stalled before the prompt")
            out += os.read(p.stdout.fileno(), 65536)
            if not sent and b"Hit any key" in out:
                p.stdin.write(b" ")
                p.stdin.flush()
                sent = True
            if sent and b"=> " in out:
                return time.perf_counter() - t
    finally:
        p.kill()
        p.wait()


def best(fn, repeat):
    results = [fn() for _ in range(repeat)]
    return min(results, key=lambda r: r[0])


def cold_and_warm(run, cache_dir: str, repeat: int):
    """``run``'s best result with nothing compiled, and its best wall time with the
    code cache in ``cache_dir`` that a first run filled."""
    cold = best(run, repeat)
    run(code_cache=cache_dir)                                   # fills the cache
    return cold, best(lambda: run(code_cache=cache_dir), repeat)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=48, help="rounds of the compute program")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    ap.add_argument("--no-interpreter", action="store_true",
                    help="skip popek's interpreter column (the slowest part)")
    args = ap.parse_args()
    have_qemu = shutil.which(QEMU) is not None
    subprocess.run(["make", "-s", "-C", str(ROOT / "bench" / "guest")], check=True)
    programs = [("compute (CPU-bound C)", build_compute(args.rounds)),
                ("memset 64 MiB, byte-wise", ROOT / "bench" / "guest" / "build" / "memset.elf")]

    rows = []
    cache_dir = tempfile.mkdtemp(prefix="popek-bench-cache-")
    try:
        for name, elf in programs:
            (wall, insns, text), ww = cold_and_warm(
                lambda **kw: popek_program(elf, **kw), cache_dir, args.repeat)
            iw = None
            if not args.no_interpreter:
                iw, i_insns, i_text = best(lambda: popek_program(elf, "interpret"), 1)
                assert (i_insns, i_text) == (insns, text), "engines disagree"
            q = best(lambda: qemu_program(elf), args.repeat) if have_qemu else None
            if q and q[1] != text:
                print(f"warning: QEMU printed {q[1]!r}, popek {text!r}", file=sys.stderr)
            rows.append((name, insns, wall, ww, iw, q[0] if q else None))
        (wall, insns), ww = cold_and_warm(popek_prompt, cache_dir, args.repeat)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    iw = None if args.no_interpreter else best(lambda: popek_prompt("interpret"), 1)[0]
    qw = best(lambda: (qemu_prompt(),), args.repeat)[0] if have_qemu else None
    rows.append(("OpenSBI+U-Boot to prompt", insns, wall, ww, iw, qw))

    print(f"{'workload':26s} {'guest insns':>12s} | {'cold':>8s} {'MIPS':>5s} | "
          f"{'warm':>7s} {'MIPS':>5s} | {'interpret':>8s} {'MIPS':>5s} | {'QEMU':>6s} {'MIPS':>6s} | "
          f"{'QEMU/popek':>10s}")
    for name, insns, pw, ww, iw, qw in rows:
        def cell(t, width=7, mw=5):
            return (f"{t:{width}.2f}s {insns / t / 1e6:{mw}.1f}" if t else
                    f"{'n/a':>{width + 1}s} {'':{mw}s}")
        ratio = f"{pw / qw:9.1f}x" if qw else f"{'n/a':>10s}"
        print(f"{name:26s} {insns:12,d} | {cell(pw)} | {cell(ww, 6)} | {cell(iw)} | "
              f"{cell(qw, 5, 6)} | {ratio}")
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} cores; best of {args.repeat} "
          f"(interpreter: 1 run); QEMU times include its start-up)")
    print("cold: no compiled code at start; warm: the code cache of an earlier run of the image")


if __name__ == "__main__":
    main()
