"""The FP benchmark guest (bench/guest/fpkernel.c), at a tiny size, prints the same
checksum (the bits of its n-body and matrix results and its fflags) under popek's
interpreter, popek's translator and QEMU: the benchmark's figures are of runs that
computed the same thing."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from popek.console import ScriptedConsole
from popek.riscv.board import BoardConfig, VirtBoard
from tests.conftest import ROOT

QEMU = "qemu-system-riscv64"
GUEST = ROOT / "bench" / "guest"


@pytest.fixture(scope="module")
def fpkernel():
    target = "build/fpkernel-30-2.elf"             # 30 n-body steps, 2 matrix rounds
    r = subprocess.run(["make", "-s", "-C", str(GUEST), target], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"building the FP guest failed:\n{r.stdout}{r.stderr}")
    return GUEST / target


def under_popek(elf, engine):
    con = ScriptedConsole()
    board = VirtBoard(BoardConfig(bios=None, kernel=str(elf), cpu="rv64imafdc", engine=engine,
                                  compile_workers=0, code_cache=None,
                                  max_instructions=5_000_000), console=con)
    code = board.run()
    board.close()
    assert code == 0, con.text()
    return con.text().strip(), board.hart.instret, board.hart.tstats.translated


@pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} is not installed")
def test_fp_guest_checksum_is_the_same_under_both_engines_and_qemu(fpkernel):
    interp, i_insns, _ = under_popek(fpkernel, "interpret")
    trans, t_insns, translated = under_popek(fpkernel, "translate")
    r = subprocess.run([QEMU, "-M", "virt", "-m", "128M", "-nographic", "-bios", "none",
                        "-kernel", str(fpkernel)], capture_output=True, timeout=120)
    qemu = r.stdout.decode(errors="replace").strip()
    assert qemu.startswith("fpkernel checksum "), qemu
    assert translated > 0 and i_insns == t_insns
    assert interp == trans == qemu
