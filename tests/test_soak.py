"""A guest cannot grow the VMM's memory: the soak guest (tests/riscv/vmm/soak.S:
new SBI extension numbers, code rewritten and translated afresh every round, satp
churn) against the ledger, the code cache and the compile backlog, each of which
grew without end before they had bounds; and, slow, popek's RSS over a run."""

from __future__ import annotations

import sys

import pytest

from popek.console import ScriptedConsole
from popek.riscv import codecache
from popek.riscv.compiler import BackgroundCompiler
from popek.vmm import ledger as ledger_mod
from popek.vmm.hypervisor import Hypervisor
from popek.vmm.vm import VmConfig
from tests.conftest import ROOT

MiB = 1 << 20


def soak_vm(vmm_programs, instructions, workers):
    hv = Hypervisor([VmConfig(kernel=str(vmm_programs / "soak.elf"), memory=16 * MiB)],
                    ScriptedConsole(), max_instructions=instructions, compile_workers=workers)
    hv.run()
    return hv


def test_guest_chosen_numbers_do_not_grow_the_ledger(vmm_programs):
    """Every round calls an SBI extension never seen before: one "unknown" row."""
    hv = soak_vm(vmm_programs, 3_000_000, 0)
    led = hv.vms[0].ledger
    hv.close()
    assert led.details[("sbi", "unknown")] > 500
    per_reason = {}
    for reason, _ in led.details:
        per_reason[reason] = per_reason.get(reason, 0) + 1
    assert max(per_reason.values()) <= ledger_mod.MAX_DETAILS


def test_a_reason_keeps_at_most_max_details_and_counts_the_rest():
    led = ledger_mod.Ledger()
    for i in range(1000):
        led.record("mmio_write", f"{i:#x}")
    assert len(led.details) == ledger_mod.MAX_DETAILS + 1
    assert led.details[("mmio_write", "other")] == 1000 - ledger_mod.MAX_DETAILS
    assert sum(led.details.values()) == led.counts["mmio_write"] == 1000


def test_rewritten_code_does_not_grow_the_code_cache(vmm_programs, monkeypatch):
    """Each round translates a block no round had before: the code cache stays
    within its bound of source lines (it held 32768 translations, ~1 GB of them)."""
    monkeypatch.setattr(codecache, "MAX_LINES", 20_000)
    hv = soak_vm(vmm_programs, 6_000_000, 0)
    cc = hv.code_cache
    hv.close()
    assert cc.compiled * 100 > 20_000                       # far more than fits
    assert cc.lines <= 20_000 and len(cc.entries) < cc.compiled


def test_the_compile_backlog_is_bounded(vmm_programs):
    """Faster than a worker can compile, new hot blocks are asked for: at most
    MAX_OUTSTANDING wait at once, the rest run interpreted and ask again later."""
    hv = Hypervisor([VmConfig(kernel=str(vmm_programs / "soak.elf"), memory=16 * MiB)],
                    ScriptedConsole(), compile_workers=1)
    compiler = hv.hart.compiler
    most = 0
    for step in range(1, 21):
        hv.max_instructions = step * 500_000
        hv.run()
        most = max(most, compiler.outstanding, len(hv.hart.awaiting))
    hv.close()
    assert compiler.requested > 0 and compiler.deferred > 0
    assert most <= BackgroundCompiler.MAX_OUTSTANDING


@pytest.mark.slow
def test_memory_soak_stays_flat():
    """popek's RSS (and its compile worker's) under the soak guest: after a warm-up
    in which the bounded caches fill, flat within 24 MiB (it grew ~10 MiB/s before)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_soak import growth, soak
    samples = soak(45, interval=1.0)
    base, peak = growth(samples, 20)
    assert peak - base <= 24 * 1024, samples
