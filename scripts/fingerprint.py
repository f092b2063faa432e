#!/usr/bin/env python3
"""What a refactoring of the hart or the VMM must leave exactly as it was.

Prints, as JSON: every conformance program's retired instructions and trap counts
under both engines (bare, M-mode), the exit ledger (counts, modelled cycles and
details) of our guest OS and its PV build under trap-and-emulate, and the ledger of
a scripted U-Boot session under trap-and-emulate.  Run it before and after a change
and compare the two files (``diff``): they must be identical.

    python scripts/fingerprint.py -o before.json     # (needs `make guest` and the asm build)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from popek.console import ScriptedConsole  # noqa: E402
from popek.riscv.board import BoardConfig, DriveSpec, VirtBoard  # noqa: E402
from popek.vmm.hypervisor import Hypervisor  # noqa: E402
from popek.vmm.vm import VmConfig  # noqa: E402

UBOOT_S = "/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf"
UBOOT_STEPS = [("Hit any key", " "), ("=> ", "version\n"), ("=> ", "virtio scan\n"),
               ("=> ", "virtio read 0x84000000 0 1\n"), ("=> ", "mw.b 0x85000000 0xa5 0x200\n"),
               ("=> ", "virtio write 0x85000000 8 1\n"), ("=> ", "poweroff\n")]


def conformance() -> dict:
    asm = ROOT / "tests" / "riscv" / "asm"
    subprocess.run(["make", "-s", "-C", str(asm)], check=True)
    out = {}
    for src in sorted(asm.glob("*.S")):
        for engine in ("interpret", "translate"):
            board = VirtBoard(BoardConfig(bios=None, kernel=str(asm / "build" / f"{src.stem}.elf"),
                                          max_instructions=5_000_000, engine=engine,
                                          compile_workers=0), console=ScriptedConsole())
            code = board.run()
            board.close()
            h = board.hart
            out[f"{src.stem}/{engine}"] = {"code": code, "instret": h.instret,
                                           "cycle": h.read_cycle(),
                                           "traps": h.stats["traps"],
                                           "interrupts": h.stats["interrupts"]}
    return out


def ledger(hv) -> dict:
    out = {}
    for vm in hv.vms:
        led = vm.ledger
        out[vm.name] = {"counts": dict(sorted(led.counts.items())),
                        "cycles": dict(sorted(led.cycles.items())),
                        "details": {f"{r}:{d}": n for (r, d), n in sorted(led.details.items())},
                        "exit_code": vm.exit_code}
    out["instret"] = hv.hart.instret
    return out


def vmm(kernel: str, steps=(), engine: str = "translate") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        disk = Path(tmp) / "disk.img"
        disk.write_bytes(b"POPEK-VMM-DISK!!" + bytes((4 << 20) - 16))
        con = ScriptedConsole(steps)
        hv = Hypervisor([VmConfig(kernel=kernel, drives=[DriveSpec(str(disk))])], con,
                        engine=engine, compile_workers=0)
        hv.run()
        hv.close()
        return ledger(hv)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    build = ROOT / "guests" / "build"
    result = {"conformance": conformance(),
              "guest_os": vmm(str(build / "kernel.elf")),
              "guest_os_interpret": vmm(str(build / "kernel.elf"), engine="interpret"),
              "guest_os_pv": vmm(str(build / "kernel-pv.elf")),
              "uboot": vmm(UBOOT_S, UBOOT_STEPS)}
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
