#!/usr/bin/env python3
"""Debian 13's riscv64 Linux to the busybox prompt: popek (bare, cold and warm) and
QEMU 7.2 TCG, on the same kernel, initramfs and disk, in the same run.

popek's figures: wall time from power-on to the first prompt, guest instructions
retired by then (exact: identical in every run) and MIPS; cold is a run with an
empty code cache (every hot block compiled during the run), warm a run with the
cache the cold run left (as on every later boot).  QEMU's is the wall time until its
console shows the prompt, including its start-up.

    python bench/bench_linux.py [--no-warm] [--ips N]
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests import linux_riscv as L                                # noqa: E402

QEMU = "qemu-system-riscv64"


def qemu_prompt(initrd: Path, disk: Path) -> float:
    t = time.perf_counter()
    p = subprocess.Popen([QEMU, "-M", "virt", "-m", str(L.MEMORY >> 20), "-nographic",
                          "-bios", L.FW_DYNAMIC, "-kernel", L.kernel().image,
                          "-initrd", str(initrd), "-append", L.APPEND,
                          "-global", "virtio-mmio.force-legacy=false",
                          "-drive", f"file={disk},if=none,format=raw,id=d0",
                          "-device", "virtio-blk-device,drive=d0"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    out = b""
    try:
        while L.PROMPT.encode() not in out:
            ready, _, _ = select.select([p.stdout], [], [], 120)
            if not ready:
                raise RuntimeError("QEMU stalled before the prompt:\n" + out[-1000:].decode())
            out += os.read(p.stdout.fileno(), 65536)
        return time.perf_counter() - t
    finally:
        p.kill()
        p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-warm", action="store_true", help="skip the warm run")
    ap.add_argument("--ips", type=int, default=L.IPS,
                    help=f"the icount clock's rate (default {L.IPS:,}: a 1 GHz hart)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        initrd = L.build_initrd(tmp / "initrd.cpio")
        disk = L.make_ext4(tmp / "disk.img")
        q = qemu_prompt(initrd, disk)
        print(f"QEMU 7.2 TCG: prompt after {q:.1f} s", flush=True)
        runs = [("cold", None)] + ([] if args.no_warm else [("warm", tmp / "cache")])
        cache = str(tmp / "cache")
        for name, _ in runs:
            s = L.run_bare(initrd, disk, poweroff=False, code_cache=cache, ips=args.ips)
            if s.prompt_wall is None:
                raise SystemExit(f"popek ({name}) did not reach the prompt:\n{s.output[-2000:]}")
            mips = s.prompt_instructions / s.prompt_wall / 1e6
            print(f"popek {name}: prompt after {s.prompt_wall:.1f} s, "
                  f"{s.prompt_instructions / 1e6:.0f} M instructions, {mips:.1f} MIPS, "
                  f"{s.prompt_wall / q:.1f}x QEMU", flush=True)


if __name__ == "__main__":
    main()
