"""F and D on the simulated hart (--cpu rv64imafdc): the conformance programs of
tests/riscv/fp under both engines, which must agree to the bit (registers, FP
registers, fcsr, mstatus, instructions), the encodings, misa and the device tree."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import pytest

from popek.console import ScriptedConsole
from popek.riscv import isa
from popek.riscv.board import BoardConfig, VirtBoard
from tests.conftest import ROOT

FP_DIR = ROOT / "tests" / "riscv" / "fp"
PROGRAMS = sorted(p.stem for p in FP_DIR.glob("*.S"))


@pytest.fixture(scope="session")
def fp_build():
    if shutil.which("riscv64-unknown-elf-gcc") is None:
        pytest.fail("riscv64-unknown-elf-gcc is missing (scripts/setup.sh installs it)")
    r = subprocess.run(["make", "-s", "-C", str(FP_DIR)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"building the FP programs failed:\n{r.stdout}{r.stderr}")
    return FP_DIR / "build"


def run(elf, engine, cpu="rv64imafdc"):
    board = VirtBoard(BoardConfig(bios=None, kernel=str(elf), cpu=cpu, engine=engine,
                                  compile_workers=0, max_instructions=5_000_000),
                      console=ScriptedConsole())
    code = board.run()
    board.close()
    h = board.hart
    return code, {"instret": h.instret, "x": list(h.x[:32]), "f": list(h.f), "pc": h.pc,
                  "fflags": h.fflags, "frm": h.frm, "mstatus": h.mstatus,
                  "translated": h.tstats.translated}


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_under_both_engines(fp_build, name):
    code_i, interp = run(fp_build / f"{name}.elf", "interpret")
    code_t, trans = run(fp_build / f"{name}.elf", "translate")
    assert code_i == 0, f"{name}: check {code_i} failed (interpreter)"
    assert code_t == 0, f"{name}: check {code_t} failed (translator)"
    assert trans.pop("translated") > 0 and interp.pop("translated") == 0
    assert interp == trans


def test_the_base_hart_has_no_floating_point(fp_build):
    """On rv64imac FP instructions and CSRs are illegal (checks 1 and 2 pass: they
    expect that), and the first FP instruction the program expects to work traps
    as illegal while check 2 is still the current one."""
    code, state = run(fp_build / "fp.elf", "interpret", cpu="rv64imac")
    assert code == 2 and state["mstatus"] & 0x6000 == 0


def test_no_two_encodings_overlap_in_rv64gc():
    gc = isa.variant("rv64imafdc")
    for a, b in itertools.combinations(gc.insns, 2):
        common = a.mask & b.mask
        assert (a.match & common) != (b.match & common), (a.name, b.name)


def test_misa_and_the_device_tree_say_f_and_d(fp_build, tmp_path):
    board = VirtBoard(BoardConfig(bios=None, kernel=str(fp_build / "fp.elf"), cpu="rv64imafdc"),
                      console=ScriptedConsole())
    misa = board.hart.csrs.by_number[0x301].read(board.hart)
    board.close()
    assert misa >> 62 == 2
    assert "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if misa >> (ord(c) - 65) & 1) == "ACDFIMSU"
    assert b"rv64imafdc_zicsr_zifencei" in board.dtb
    out = tmp_path / "virt.dtb"
    r = subprocess.run([".venv/bin/python", "-m", "popek", "run", "--cpu", "rv64gc", "--bios",
                        "none", "--kernel", str(fp_build / "fp.elf"), "--dtb-out", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert b"rv64imafdc" in out.read_bytes()
