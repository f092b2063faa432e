"""The conformance suite: every RISC-V program in tests/riscv/asm must pass.

Each program exits through HTIF with 0, or with the number of the first check
that failed; on failure the message names the check, the trap registers and the
instruction at the failing pc, so the .S file can be read next to it.
"""

from __future__ import annotations

import time

import pytest

from popek.console import ScriptedConsole
from popek.riscv import isa
from popek.riscv.board import BoardConfig, VirtBoard
from tests.conftest import ASM_DIR

PROGRAMS = sorted(p.stem for p in ASM_DIR.glob("*.S")
                  if p.stem != "selftest_fail" and not p.stem.startswith("smp_"))


def run_program(elf, max_instructions=5_000_000, cpu=isa.DEFAULT_VARIANT, smp=1,
                engine="translate"):
    board = VirtBoard(BoardConfig(bios=None, kernel=str(elf), max_instructions=max_instructions,
                                  cpu=cpu, smp=smp, engine=engine), console=ScriptedConsole())
    code = board.run()
    return code, board


@pytest.mark.parametrize("name,cpu", [(p, isa.DEFAULT_VARIANT) for p in PROGRAMS]
                         + [("csr", "rv64imac")])
def test_program(asm_build, name, cpu):
    """Every program on the default machine (RV64GC); the one that looks at misa and
    mstatus.FS also on rv64imac."""
    code, board = run_program(asm_build / f"{name}.elf", cpu=cpu)
    h = board.hart
    assert code is not None, f"{name}: did not finish in the instruction budget (pc={h.pc:#x})"
    if code != 0:
        word = h._read_code(h.mepc, 4, h.mepc) if board.ram.contains(h.mepc, 4) else 0
        pytest.fail(f"{name}: check {code} failed; last trap mcause={h.mcause:#x} "
                    f"mepc={h.mepc:#x} ({isa.disassemble(isa.decode(word), h.mepc)}) "
                    f"mtval={h.mtval:#x}; s9={h.x[25]:#x} s11={h.x[27]:#x}")


@pytest.mark.parametrize("engine", ["translate", "interpret"])
def test_smp_harts_share_memory_atomics_ipis_and_timers(asm_build, engine):
    """Four harts in the deterministic round robin (riscv/smp.py): the program checks
    hart ids, atomics and LR/SC under interleaving, IPIs, a reservation broken by
    another hart's store, and per-hart timers."""
    runs = []
    for _ in range(2):
        code, board = run_program(asm_build / "smp_harts.elf", smp=4, engine=engine)
        h = board.hart
        assert code == 0, f"check {code} failed (hart {h.hartid}, pc={h.pc:#x}, " \
                          f"mcause={h.mcause:#x} mepc={h.mepc:#x})"
        runs.append([(h.instret, h.stats["traps"]) for h in board.harts])
        assert board.scheduler.switches > 10          # they really took turns
        # Harts 1..3 slept in wfi while they waited, instead of spinning.
        assert all(h.instret < 60_000 for h in board.harts[1:]), runs[-1]
    assert runs[0] == runs[1]                         # and the same way every time


def test_a_polling_hart_does_not_starve_a_busy_one(asm_build):
    """smp_poll.S: hart 0 polls the time for 1 ms while hart 1 counts; hart 1 must get
    its share of that millisecond (polls are skipped only while the others sleep)."""
    code, board = run_program(asm_build / "smp_poll.elf", smp=2)
    assert code == 0, f"check {code} failed"
    assert board.clock.polls_skipped == 0


def test_failing_check_is_reported(asm_build):
    """The framework itself can fail: selftest_fail fails its check number 5."""
    code, _ = run_program(asm_build / "selftest_fail.elf")
    assert code == 5


def test_ledger_counts_are_exact(asm_build):
    """Runs repeat exactly: same instruction count and trap count every time."""
    a = run_program(asm_build / "interrupts.elf")[1]
    b = run_program(asm_build / "interrupts.elf")[1]
    assert a.hart.instret == b.hart.instret
    assert a.hart.stats == b.hart.stats
    assert a.hart.stats["interrupts"] >= 6


def test_wfi_skips_idle_time_instead_of_spinning(asm_build):
    code, board = run_program(asm_build / "wfi_idle.elf")
    assert code == 0
    assert board.hart.instret < 200                 # no busy waiting for a guest second
    assert board.stats()["guest_seconds"] >= 1.0


def test_an_idle_hart_can_wait_in_real_time(asm_build):
    """--icount-idle sleep (auto, at a terminal): wfi_idle.S's guest second of wfi
    passes in about a second of the host's, still without spinning; skip jumps it."""
    for idle, at_least, at_most in (("sleep", 0.9, 10.0), ("skip", 0.0, 0.5)):
        board = VirtBoard(BoardConfig(bios=None, kernel=str(asm_build / "wfi_idle.elf"),
                                      icount_idle=idle), console=ScriptedConsole())
        start = time.monotonic()
        assert board.run() == 0
        took = time.monotonic() - start
        assert at_least <= took <= at_most, (idle, took)
        assert board.hart.instret < 200 and board.stats()["guest_seconds"] >= 1.0


def test_idle_waits_in_real_time_only_for_a_person_at_a_terminal():
    import os
    import pty

    from popek.clock import idle_waits
    from popek.console import StdioConsole
    leader, follower = pty.openpty()
    r, w = os.pipe()
    try:
        with os.fdopen(os.dup(follower), "rb", buffering=0) as tty, \
                os.fdopen(os.dup(r), "rb", buffering=0) as pipe:
            at_terminal, piped = StdioConsole(stdin=tty), StdioConsole(stdin=pipe)
            at_terminal.close()
            assert idle_waits("auto", at_terminal) and not idle_waits("auto", piped)
            assert not idle_waits("auto", ScriptedConsole())
            assert idle_waits("sleep", piped) and not idle_waits("skip", at_terminal)
    finally:
        for fd in (leader, follower, r, w):
            os.close(fd)


def test_a_loop_polling_the_time_has_its_wait_skipped(asm_build):
    """poll_wait.S waits 1.25 guest seconds polling rdtime: at the default 1 GHz that
    would be over a billion instructions; popek skips the waits (clock.py)."""
    code, board = run_program(asm_build / "poll_wait.elf")
    assert code == 0
    assert board.hart.instret < 20_000
    assert board.clock.polls_skipped > 20
    assert board.stats()["guest_seconds"] >= 1.25


@pytest.mark.parametrize("name", ["interrupts", "wfi_idle", "csr"])
def test_host_clock(asm_build, name):
    board = VirtBoard(BoardConfig(bios=None, kernel=str(asm_build / f"{name}.elf"), clock="host",
                                  max_instructions=5_000_000), console=ScriptedConsole())
    assert board.run() == 0
