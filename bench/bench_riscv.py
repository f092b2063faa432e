#!/usr/bin/env python3
"""Speed of the simulated machine, side by side with QEMU (TCG) on the same images.

    1. guest MIPS on a CPU-bound program (bench/guest/compute.c, bare M-mode);
    2. wall time from power-on to U-Boot's prompt (OpenSBI fw_jump + S-mode U-Boot),
       with autoboot interrupted at once on both engines.

popek's instruction counts are exact (retired instructions); QEMU's side is wall
time for the same image, including its process start-up, so its MIPS figure is
popek's instruction count over QEMU's time.  Prints a table and the ratios.

    python bench/bench_riscv.py [--rounds N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import subprocess
import sys
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


def popek_compute(elf: Path):
    con = ScriptedConsole()
    b = VirtBoard(BoardConfig(bios=None, kernel=str(elf)), console=con)
    t = time.perf_counter()
    code = b.run()
    wall = time.perf_counter() - t
    assert code == 0, con.text()
    return wall, b.hart.instret, con.text().strip()


def popek_prompt():
    ref = [None]
    con = PromptWatch(ref)
    b = VirtBoard(BoardConfig(bios=OPENSBI, kernel=UBOOT), console=con)
    ref[0] = b
    t = time.perf_counter()
    b.run()
    assert con.at_prompt, con.text()[-500:]
    return con.at_prompt[0] - t, con.at_prompt[1]


def qemu_compute(elf: Path):
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=48, help="rounds of the compute program")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    args = ap.parse_args()
    have_qemu = shutil.which(QEMU) is not None
    elf = build_compute(args.rounds)

    rows = []
    wall, insns, text = best(lambda: popek_compute(elf), args.repeat)
    q = best(lambda: qemu_compute(elf), args.repeat) if have_qemu else None
    if q and q[1] != text:
        print(f"warning: QEMU printed {q[1]!r}, popek {text!r}", file=sys.stderr)
    rows.append(("compute (CPU-bound)", insns, wall, q[0] if q else None))
    wall, insns = best(popek_prompt, args.repeat)
    qw = best(lambda: (qemu_prompt(),), args.repeat)[0] if have_qemu else None
    rows.append(("OpenSBI+U-Boot to prompt", insns, wall, qw))

    print(f"{'workload':28s} {'guest insns':>12s} {'popek s':>8s} {'popek MIPS':>10s} "
          f"{'qemu s':>8s} {'qemu MIPS':>9s} {'qemu/popek speed':>16s}")
    for name, insns, pw, qw in rows:
        q_s = f"{qw:8.3f}" if qw else "     n/a"
        q_m = f"{insns / qw / 1e6:9.1f}" if qw else "      n/a"
        ratio = f"{pw / qw:15.1f}x" if qw else "             n/a"
        print(f"{name:28s} {insns:12,d} {pw:8.2f} {insns / pw / 1e6:10.2f} {q_s} {q_m} {ratio}")
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} cores; QEMU times include "
          f"its start-up; best of {args.repeat})")


if __name__ == "__main__":
    main()
