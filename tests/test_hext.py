"""The H extension (hypervisor support): the programs of tests/riscv/h on a hart with
it (``--cpu rv64gch``), under both engines, which must agree exactly (the differential
check of V-mode runs); and the same programs under QEMU 7.2 as an oracle of the
specification's reading, where QEMU runs them.

QEMU departs from the specification in a few places (h_test.h lists each, all QEMU
bugs fixed in later releases): the oracle's build (-DQEMU_ORACLE) expects QEMU's
answer there, popek's build the specification's.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from popek.riscv import isa
from tests.conftest import ASM_DIR, H_DIR
from tests.test_conformance import run_program

PROGRAMS = sorted(p.stem for p in H_DIR.glob("*.S"))
QEMU = "qemu-system-riscv64"
CPU = "rv64gch"


def _fail_message(name, code, board) -> str:
    h = board.hart
    word = h._read_code(h.mepc, 4, h.mepc) if board.ram.contains(h.mepc, 4) else 0
    return (f"{name}: check {code} failed; last trap mcause={h.mcause:#x} mepc={h.mepc:#x} "
            f"({isa.disassemble(isa.variant(CPU).decode(word), h.mepc)}) mtval={h.mtval:#x} "
            f"mtval2={h.mtval2:#x} mtinst={h.mtinst:#x}; s4={h.x[20]:#x} s7={h.x[23]:#x} "
            f"s9={h.x[25]:#x} s11={h.x[27]:#x}")


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_on_both_engines(h_build, name):
    runs = {}
    for engine in ("translate", "interpret"):
        code, board = run_program(h_build / f"{name}.elf", cpu=CPU, engine=engine)
        assert code is not None, f"{name} ({engine}): did not finish (pc={board.hart.pc:#x})"
        if code != 0:
            pytest.fail(f"({engine}) " + _fail_message(name, code, board))
        h = board.hart
        runs[engine] = (h.instret, h.stats["traps"], h.stats["interrupts"], h.cycle_extra)
    assert runs["translate"] == runs["interpret"], runs


def test_programs_need_the_extension(h_build):
    """Without H (the default rv64gc) the first check, misa.H, fails."""
    code, _ = run_program(h_build / "hext.elf")
    assert code == 1


@pytest.mark.parametrize("name", PROGRAMS)
@pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} is not installed")
def test_program_under_qemu(tmp_path, name):
    """The same program under QEMU (its spike board: HTIF, as popek's programs use),
    built with QEMU_ORACLE."""
    elf = tmp_path / f"{name}.elf"
    r = subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv64imac_zicsr_zifencei",
                        "-Wa,-march=rv64imac_zicsr_zifencei_h", "-mabi=lp64", "-nostdlib",
                        "-nostartfiles", "-static", "-mcmodel=medany", "-T",
                        str(ASM_DIR / "link.ld"), f"-I{ASM_DIR}", f"-I{H_DIR}", "-DQEMU_ORACLE",
                        "-o", str(elf), str(H_DIR / f"{name}.S")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    q = subprocess.run([QEMU, "-M", "spike", "-bios", "none", "-kernel", str(elf),
                        "-nographic", "-monitor", "none"], capture_output=True, timeout=60)
    assert q.returncode == 0, f"{name}: check {q.returncode} failed under QEMU"
