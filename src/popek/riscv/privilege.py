"""Supervisor-mode trap entry, ``sret`` and interrupt selection, written once.

These work on any *CPU*: the simulated hart, or the VMM's virtual CPU
(vmm/vcpu.py), which is a supervisor-only instance of the same state (as Spike's
and QEMU's VS-mode state is a second instance of the S-mode CSRs).  What they
need of a CPU: ``priv``, ``mstatus`` (its S-mode bits), ``mip``, ``mie``,
``mideleg``, ``scause sepc stval stvec`` and ``set_priv``.  The hart alone has M
mode, whose trap entry and ``mret`` stay in riscv/hart/privileged.py.
"""

from __future__ import annotations

from popek.riscv.csrs import (M, MSTATUS_MIE, MSTATUS_MPRV, MSTATUS_SIE, MSTATUS_SPIE,
                              MSTATUS_SPP, S, U)
from popek.riscv.traps import IRQ_PRIORITY

M64 = (1 << 64) - 1


def supervisor_trap(cpu, cause: int, tval: int, epc: int, interrupt: bool) -> int:
    """Enter S-mode for a trap (privileged spec 4.1.1, 4.1.2): scause, sepc, stval,
    the sstatus stack (SPIE ← SIE, SIE ← 0, SPP ← the old privilege); the new pc."""
    cpu.scause = ((1 << 63) | cause) if interrupt else cause
    cpu.sepc, cpu.stval = epc, tval & M64
    ms = cpu.mstatus & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP)
    if cpu.mstatus & MSTATUS_SIE:
        ms |= MSTATUS_SPIE
    if cpu.priv == S:
        ms |= MSTATUS_SPP
    cpu.mstatus = ms
    cpu.set_priv(S)
    return vector(cpu.stvec, cause, interrupt)


def vector(tvec: int, cause: int, interrupt: bool) -> int:
    """Where a trap goes: ``tvec``'s base, plus 4 × cause for an interrupt in vectored mode."""
    base = tvec & ~3
    return base + 4 * cause if (interrupt and tvec & 1) else base


def supervisor_return(cpu) -> int:
    """``sret`` (privileged spec 3.3.2): privilege ← SPP, SIE ← SPIE, SPIE ← 1,
    SPP ← U, MPRV ← 0 when leaving for below M; returns sepc, the new pc."""
    ms = cpu.mstatus
    spp = S if ms & MSTATUS_SPP else U
    ms = (ms & ~(MSTATUS_SIE | MSTATUS_SPP | MSTATUS_MPRV)) | MSTATUS_SPIE
    if cpu.mstatus & MSTATUS_SPIE:
        ms |= MSTATUS_SIE
    cpu.mstatus = ms
    cpu.set_priv(spp)
    return cpu.sepc


def pending_interrupt(cpu) -> int | None:
    """The interrupt ``cpu`` takes now, if any (privileged spec 3.1.9): M-level ones
    (not delegated) when below M or with MIE set; else delegated ones when below S
    or in S with SIE set; the highest priority first."""
    pending = cpu.mip & cpu.mie
    if not pending:
        return None
    priv, ms = cpu.priv, cpu.mstatus
    m_pending = pending & ~cpu.mideleg
    if m_pending and (priv != M or ms & MSTATUS_MIE):
        pending = m_pending
    else:
        pending &= cpu.mideleg
        if not pending or priv == M or (priv == S and not ms & MSTATUS_SIE):
            return None
    for irq in IRQ_PRIORITY:
        if pending >> irq & 1:
            return irq
    return None
