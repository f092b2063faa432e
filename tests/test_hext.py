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


def test_a_two_dimensional_walk_makes_15_references(h_build):
    """Sv39 over Sv39x4, every table in 4 KiB pages: each of the 3 VS-stage entries is
    read after a 3-step G-stage walk of its address, and the result takes one more:
    (3 + 1)(3 + 1) - 1 = 15 memory references, each charged PAGE_WALK_REF."""
    from popek.console import ScriptedConsole
    from popek.riscv.board import BoardConfig, VirtBoard
    from popek.riscv.mmu import LOAD, PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X

    board = VirtBoard(BoardConfig(bios=None, kernel=str(h_build / "hext.elf"), cpu=CPU),
                      console=ScriptedConsole())
    h, ram = board.hart, board.ram

    def pte(addr, flags):
        return ((addr >> 12) << 10) | flags
    g_root, g_l1, g_l0, host = 0x80100000, 0x80104000, 0x80105000, 0x80200000
    ram.write_int(g_root, 8, pte(g_l1, PTE_V))                 # GPA 0..1 GiB
    ram.write_int(g_l1, 8, pte(g_l0, PTE_V))                   # GPA 0..2 MiB
    for i in range(16):                                        # GPA page i → host + i pages
        ram.write_int(g_l0 + 8 * i, 8, pte(host + 0x1000 * i, PTE_V | PTE_R | PTE_W | PTE_X
                                           | PTE_U | PTE_A | PTE_D))
    ram.write_int(host + 0x1000, 8, pte(0x2000, PTE_V))        # VS root at GPA 0x1000
    ram.write_int(host + 0x2000, 8, pte(0x3000, PTE_V))        # VS l1 at GPA 0x2000
    ram.write_int(host + 0x3000 + 8 * 5, 8, pte(0x6000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D))
    h.hgatp = (8 << 60) | (g_root >> 12)
    h.vs_bank.satp = (8 << 60) | (0x1000 >> 12)
    refs = h.walk_stats.pte_reads
    assert h.translate_virtual(0x5008, LOAD, 1) == host + 0x6008
    assert h.walk_stats.pte_reads - refs == 15
    board.close()
