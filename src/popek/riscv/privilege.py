"""Trap entry, trap return (``mret``/``sret``) and interrupt selection, written once.

A trap into a privilege level and the return from it are the same algorithm at
every level (privileged spec 3.1.6, 3.3.2, 4.1.1): the level's cause, epc and
tval registers, and its stack of enable bits in the status word (xPIE ← xIE,
xIE ← 0, xPP ← the old privilege; back: the reverse).  A :class:`Level` names
those registers and bits; M and S are two instances (the H extension's VS level
is S's, on swapped registers: hart/virt.py), as in QEMU.

They work on any *CPU*: the simulated hart, or the VMM's virtual CPU
(vmm/vcpu.py), which is a supervisor-only instance of the same state.  What they
need of a CPU: ``priv``, ``mstatus``, ``mip``, ``mie``, ``mideleg``, the level's
registers, ``set_priv``, and the H extension's ``virt`` (V) and ``hideleg`` (False and
0 on a CPU without it).
"""

from __future__ import annotations

from dataclasses import dataclass

from popek.riscv.csrs import (M, MSTATUS_MIE, MSTATUS_MPIE, MSTATUS_MPP_SHIFT, MSTATUS_MPRV,
                              MSTATUS_SIE, MSTATUS_SPIE, MSTATUS_TSR, MSTATUS_TVM, MSTATUS_TW,
                              S, U)
from popek.riscv.traps import IRQ_PRIORITY

M64 = (1 << 64) - 1


@dataclass(frozen=True)
class Level:
    """A privilege level's trap registers and its bits in the status word."""
    priv: int
    cause: str               # the CPU's attribute names of its cause/epc/tval/tvec
    epc: str
    tval: str
    tvec: str
    ie: int                  # xIE, xPIE, and where xPP sits and how wide it is
    pie: int
    pp_shift: int
    pp_mask: int


MACHINE = Level(M, "mcause", "mepc", "mtval", "mtvec", MSTATUS_MIE, MSTATUS_MPIE,
                MSTATUS_MPP_SHIFT, 3)
SUPERVISOR = Level(S, "scause", "sepc", "stval", "stvec", MSTATUS_SIE, MSTATUS_SPIE, 8, 1)


def trap_entry(cpu, level: Level, cause: int, tval: int, epc: int, interrupt: bool) -> int:
    """Take a trap into ``level``: its cause, epc and tval; the status stack (xPIE ←
    xIE, xIE ← 0, xPP ← the old privilege); the privilege.  Returns the new pc."""
    setattr(cpu, level.cause, ((1 << 63) | cause) if interrupt else cause)
    setattr(cpu, level.epc, epc)            # (pcs are 2-byte aligned: nothing to mask)
    setattr(cpu, level.tval, tval & M64)
    ms = cpu.mstatus & ~(level.pie | level.ie | (level.pp_mask << level.pp_shift))
    if cpu.mstatus & level.ie:
        ms |= level.pie
    cpu.mstatus = ms | (cpu.priv << level.pp_shift)
    cpu.set_priv(level.priv)
    return vector(getattr(cpu, level.tvec), cause, interrupt)


def trap_return(cpu, level: Level) -> int:
    """``mret``/``sret``: privilege ← xPP, xIE ← xPIE, xPIE ← 1, xPP ← U, and MPRV ← 0
    when leaving for below M.  Returns the new pc (xepc)."""
    ms = cpu.mstatus
    pp = (ms >> level.pp_shift) & level.pp_mask
    ms = (ms & ~(level.ie | (level.pp_mask << level.pp_shift))) | level.pie
    if cpu.mstatus & level.pie:
        ms |= level.ie
    if pp != M:
        ms &= ~MSTATUS_MPRV
    cpu.mstatus = ms
    cpu.set_priv(pp)
    return getattr(cpu, level.epc)


# Who may run the S-mode instructions (privileged spec 3.1.6.5): not U-mode, and not
# S-mode when M-mode traps them (TSR, TW, TVM; a virtual CPU has them clear).
def may_sret(cpu) -> bool:
    return cpu.priv != U and not (cpu.priv == S and cpu.mstatus & MSTATUS_TSR)


def may_wfi(cpu) -> bool:
    return cpu.priv != U and not (cpu.priv == S and cpu.mstatus & MSTATUS_TW)


def may_sfence_vma(cpu) -> bool:
    return cpu.priv != U and not (cpu.priv == S and cpu.mstatus & MSTATUS_TVM)


def supervisor_trap(cpu, cause: int, tval: int, epc: int, interrupt: bool) -> int:
    return trap_entry(cpu, SUPERVISOR, cause, tval, epc, interrupt)


def supervisor_return(cpu) -> int:
    return trap_return(cpu, SUPERVISOR)


def vector(tvec: int, cause: int, interrupt: bool) -> int:
    """Where a trap goes: ``tvec``'s base, plus 4 × cause for an interrupt in vectored mode."""
    base = tvec & ~3
    return base + 4 * cause if (interrupt and tvec & 1) else base


def pending_interrupt(cpu) -> int | None:
    """The interrupt ``cpu`` takes now, if any (privileged spec 3.1.9): M-level ones
    (not delegated) when below M or with MIE set; else delegated ones when below S
    or in S with SIE set; the highest priority first.

    With the H extension (hypervisor chapter, "interrupts"): HS-level interrupts are
    always enabled while V=1; VS-level ones (those hideleg passes on) are taken only
    while V=1, in VU-mode or in VS-mode with the guest's SIE set (the live SIE then
    is the guest's: hcsrs.py), and never while V=0."""
    pending = cpu.mip & cpu.mie
    if not pending:
        return None
    priv, ms = cpu.priv, cpu.mstatus
    m_pending = pending & ~cpu.mideleg
    if m_pending and (priv != M or ms & MSTATUS_MIE):
        pending = m_pending
    elif cpu.virt:
        pending &= cpu.mideleg
        hs = pending & ~cpu.hideleg
        if hs:
            pending = hs
        elif priv == S and not ms & MSTATUS_SIE:
            return None
    else:
        pending &= cpu.mideleg & ~cpu.hideleg
        if not pending or priv == M or (priv == S and not ms & MSTATUS_SIE):
            return None
    for irq in IRQ_PRIORITY:
        if pending >> irq & 1:
            return irq
    return None


__all__ = ["Level", "MACHINE", "SUPERVISOR", "trap_entry", "trap_return", "supervisor_trap",
           "supervisor_return", "vector", "pending_interrupt", "may_sret", "may_wfi",
           "may_sfence_vma", "U", "S", "M"]
