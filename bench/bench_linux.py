#!/usr/bin/env python3
"""Debian 13's riscv64 Linux to the busybox prompt: popek (bare, cold and warm) and
QEMU 7.2 TCG, on the same kernel, initramfs and disk, in the same run.

popek's figures: wall time from power-on to the first prompt, guest instructions
retired by then (exact, for the same disk contents) and MIPS; cold is a run with an
empty code cache (every hot block compiled during the run), warm a run with the
cache the cold run left (as on every later boot).  Then the same kernel as a guest of
popek's VMM, by trap-and-emulate and by hardware assist (``--vmm``: no OpenSBI, the
VMM serves SBI), on the same code cache, and the ratio of each to the last bare boot.
QEMU's is the wall time until its console shows the prompt, including its start-up.

``--append`` boots every one with another kernel command line: ``--quick`` is the one
``make run`` uses, which skips the kernel's boot-time crypto self-tests.

    python bench/bench_linux.py [--no-warm] [--no-vmm] [--ips N] [--module-signatures]
                                [--append ARGS | --quick]
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
# make run's command line (the Makefile's RISCV_APPEND, less earlycon)
QUICK_APPEND = L.APPEND + " " + L.QUICK_BOOT


def qemu_prompt(initrd: Path, disk: Path, append: str) -> float:
    t = time.perf_counter()
    p = subprocess.Popen([QEMU, "-M", "virt", "-m", str(L.MEMORY >> 20), "-nographic",
                          "-bios", L.FW_DYNAMIC, "-kernel", L.kernel().image,
                          "-initrd", str(initrd), "-append", append,
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
    ap.add_argument("--no-vmm", action="store_true", help="skip the boots under the VMM")
    ap.add_argument("--ips", type=int, default=L.IPS,
                    help=f"the icount clock's rate (default {L.IPS:,}: a 1 GHz hart)")
    ap.add_argument("--module-signatures", action="store_true",
                    help="keep the modules' signatures in the initramfs (the kernel then "
                         "hashes every module it loads)")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--append", metavar="ARGS", default=L.APPEND,
                     help=f"the kernel command line (default {L.APPEND!r})")
    how.add_argument("--quick", dest="append", action="store_const", const=QUICK_APPEND,
                     help=f"make run's: {QUICK_APPEND!r}")
    args = ap.parse_args()
    print(f"kernel command line: {args.append}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        initrd = L.build_initrd(tmp / "initrd.cpio", signatures=args.module_signatures)
        disk = L.make_ext4(tmp / "disk.img")
        q = qemu_prompt(initrd, disk, args.append)
        print(f"QEMU 7.2 TCG: prompt after {q:.1f} s", flush=True)
        cache = str(tmp / "cache")
        bare = None
        for name in ["cold"] + ([] if args.no_warm else ["warm"]):
            s = L.run_bare(initrd, disk, poweroff=False, code_cache=cache, ips=args.ips,
                           append=args.append)
            bare = report(f"popek bare, {name}", s, q)
        for cpu in [] if args.no_vmm else ["trap-emulate", "hw"]:
            s = L.run_vmm(initrd, disk, cpu=cpu, ips=args.ips, code_cache=cache,
                          append=args.append)
            wall = report(f"popek --vmm {cpu}", s, q)
            print(f"  {wall / bare:.2f}x the bare boot", flush=True)


def report(name: str, s, qemu: float) -> float:
    """One boot's line; its wall time to the prompt."""
    if s.prompt_wall is None:
        raise SystemExit(f"{name} did not reach the prompt:\n{s.output[-2000:]}")
    mips = s.prompt_instructions / s.prompt_wall / 1e6
    print(f"{name}: prompt after {s.prompt_wall:.1f} s, {s.prompt_instructions / 1e6:.0f} M "
          f"instructions, {mips:.1f} MIPS, {s.prompt_wall / qemu:.1f}x QEMU", flush=True)
    return s.prompt_wall


if __name__ == "__main__":
    main()
