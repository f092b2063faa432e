"""The cycle collector's thresholds while a guest runs, and after."""

from __future__ import annotations

import gc

import pytest

from popek import gcpolicy
from popek.console import ScriptedConsole
from popek.riscv.board import BoardConfig, VirtBoard


def test_thresholds_while_running_and_restored_after_an_error():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError):
        with gcpolicy.guest_running():
            assert gc.get_threshold() == gcpolicy.RUNNING_THRESHOLDS
            raise RuntimeError("the guest's run ended badly")
    assert gc.get_threshold() == before


def test_a_board_runs_under_the_policy(asm_build):
    seen = []
    board = VirtBoard(BoardConfig(kernel=str(asm_build / "rv64m.elf")), console=ScriptedConsole())
    service = board._service
    board._service = lambda: (seen.append(gc.get_threshold()), service())
    before = gc.get_threshold()
    assert board.run() == 0
    board.close()
    assert seen and set(seen) == {gcpolicy.RUNNING_THRESHOLDS}
    assert gc.get_threshold() == before
