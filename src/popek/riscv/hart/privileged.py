"""The hart's privileged side: CSR access, M-mode trap entry and ``mret``, and the
instructions that change privilege or wait (``ecall``, ``sret``, ``wfi``,
``sfence.vma``, ``fence.i``).

Trap entry and return (M and S levels alike), and which interrupt is taken, are
written once, in riscv/privilege.py, and shared with the VMM's virtual CPU; the CSR
access check and the CSRs themselves are riscv/csrs.py.  Traps are raised as :class:`Trap`
anywhere and taken here, in :meth:`take_trap`, the one place that knows delegation.
"""

from __future__ import annotations

from popek.riscv import csrs, privilege, traps
from popek.riscv.csrs import M, S
from popek.riscv.hcsrs import HSTATUS_GVA, HSTATUS_SPV, HSTATUS_SPVP, MSTATUS_GVA, MSTATUS_MPV
from popek.riscv.traps import Trap

M64 = (1 << 64) - 1
# Traps a slice may take.  A guest whose trap handler traps too (mtvec at nothing
# mapped, say) retires no instructions at all: this hands control back anyway, so
# the machine's service, budget and Ctrl-A x still work.
SLICE_TRAPS = 2000


class HartPrivileged:
    """Mixed into :class:`~popek.riscv.hart.Hart`."""

    # The CSR instructions' one entry (isa.py's Zicsr snippets call it).
    csr_access = csrs.access

    # ------------------------------------------------------- privileged ops
    def ecall(self):
        if self.virt:                   # (H) from VS-mode 10, from VU-mode 8
            raise Trap(traps.ECALL_FROM_VS if self.priv == S else traps.ECALL_FROM_U, 0)
        raise Trap(traps.ECALL_FROM_U + self.priv, 0)

    def callout(self, pc: int, word: int) -> None:
        """A sensitive instruction a VMM rewrote (translate.py's rewrite hook: binary
        translation, vmm/cpu/bt.py) calls the VMM's emulation in-line, without a trap:
        ``callout_hook(pc, word)`` sets the pc."""
        self.callout_hook(pc, word)

    def mret(self):
        if self.priv != M:
            raise Trap(traps.ILLEGAL_INSN, None)
        # (H) back to a virtual mode if the trap came from one: V ← MPV, MPV ← 0.
        virt = False
        if self.has_h:
            virt = bool(self.mstatus & MSTATUS_MPV) and \
                (self.mstatus & csrs.MSTATUS_MPP) >> csrs.MSTATUS_MPP_SHIFT != M
            self.mstatus &= ~MSTATUS_MPV
        self._trap_return(privilege.MACHINE, virt)

    def sret(self):
        if self.virt:
            self.virtual_sret()         # VS-mode returns within the guest: V stays 1
            self._trap_return(privilege.SUPERVISOR, True)
            return
        if not privilege.may_sret(self):
            raise Trap(traps.ILLEGAL_INSN, None)
        # (H) HS-mode returns into the guest if it trapped from it: V ← SPV, SPV ← 0.
        virt = bool(self.hstatus & HSTATUS_SPV)
        self.hstatus &= ~HSTATUS_SPV
        self._trap_return(privilege.SUPERVISOR, virt)

    def _trap_return(self, level, virt: bool = False) -> None:
        self.reservation = None
        self.cycle_extra += self.costs.TRAP_RETURN
        self.pc = privilege.trap_return(self, level)   # (on the registers of the mode left)
        self.set_virt(virt)

    def wfi(self):
        if self.virt:
            self.virtual_wfi()
        elif not privilege.may_wfi(self):
            raise Trap(traps.ILLEGAL_INSN, None)
        if not self.mip & self.mie:
            self.waiting = True
            self.limit = 0

    def sfence_vma(self, va, rs1, asid, rs2):
        if self.virt:
            self.virtual_sfence(va, rs1)
            return
        if not privilege.may_sfence_vma(self):
            raise Trap(traps.ILLEGAL_INSN, None)
        self.cycle_extra += self.costs.TLB_FLUSH
        if rs1:
            self.flush_page(va)        # one address (any address space: ASIDs are not kept)
        else:
            self.flush_tlbs()

    def fence_i(self):
        # Nothing to do: every write to a page holding decoded code (stores, DMA,
        # A/D updates) already dropped exactly the blocks it touched, so the
        # "instruction cache" is always coherent, which fence.i permits.
        self.stats["fence_i"] += 1

    # ------------------------------------------------------------- traps
    def take_trap(self, cause: int, tval: int, epc: int, interrupt: bool = False,
                  gpa: int = 0, gva: bool = False, tinst: int = 0) -> None:
        """Enter the trap handler for ``cause``: the one place that knows delegation.

        Without H: M-mode, or S-mode where medeleg/mideleg delegate from below M.  With
        H, a trap from a virtual mode that HS-mode delegates on (hedeleg/hideleg) goes
        to VS-mode and V stays 1; any other leaves the virtual modes, and tells its
        handler where it came from (mstatus.MPV or hstatus.SPV/SPVP), whether tval is
        a guest virtual address (GVA: ``gva``, or any address trap from V=1), and a
        guest-page fault's guest-physical address (``gpa`` >> 2 in mtval2 or htval) and
        ``tinst`` (htinst or mtinst)."""
        self.stats["interrupts" if interrupt else "traps"] += 1
        self.slice_traps += 1
        if self.slice_traps >= SLICE_TRAPS:
            self.limit = 0          # a guest trapping in a loop retires nothing: end the slice
        self.reservation = None
        self.waiting = False
        priv = self.priv
        deleg = self.mideleg if interrupt else self.medeleg
        to_s = priv != M and (deleg >> cause) & 1
        if self.m_trap_hook is not None and not to_s:
            if self.virt:
                # (H) The VMM stands in HS-mode (vmm/cpu/hw.py): what a trap into HS-mode
                # tells its handler about a guest-page fault, it is told.
                self.htval, self.htinst = gpa >> 2, tinst
            self.m_trap_hook(cause, tval & M64, epc, interrupt)     # charges its own costs
            return
        self.cycle_extra += self.costs.TRAP_ENTRY
        if self.has_h:
            if to_s and self.virt and ((self.hideleg if interrupt else self.hedeleg) >> cause) & 1:
                # Into VS-mode (V stays 1); a VS-level interrupt is seen there as its
                # S-level counterpart (VSSIP 2 → SSIP 1, ...).
                self.pc = privilege.trap_entry(self, privilege.SUPERVISOR,
                                               cause - 1 if interrupt else cause, tval, epc,
                                               interrupt)
                self._trace_trap(epc, cause, tval, interrupt)
                return
            self._leave_virtual(to_s, gpa, tinst, gva or (self.virt and not interrupt
                                                          and cause in traps.ADDRESS_CAUSES))
        level = privilege.SUPERVISOR if to_s else privilege.MACHINE
        self.pc = privilege.trap_entry(self, level, cause, tval, epc, interrupt)
        self._trace_trap(epc, cause, tval, interrupt)

    def _leave_virtual(self, to_hs: bool, gpa: int, tinst: int, gva: bool) -> None:
        """(H) A trap into HS- or M-mode: record V (and, into HS, the virtual
        privilege), GVA, and the guest-physical address; then V ← 0."""
        if to_hs:
            hs = self.hstatus & ~(HSTATUS_SPV | HSTATUS_GVA)
            if self.virt:
                hs = (hs & ~HSTATUS_SPVP) | HSTATUS_SPV | (HSTATUS_SPVP if self.priv == S else 0)
            self.hstatus = hs | (HSTATUS_GVA if gva else 0)
            self.htval, self.htinst = gpa >> 2, tinst
        else:
            ms = self.mstatus & ~(MSTATUS_MPV | MSTATUS_GVA)
            self.mstatus = ms | (MSTATUS_MPV if self.virt else 0) | (MSTATUS_GVA if gva else 0)
            self.mtval2, self.mtinst = gpa >> 2, tinst
        self.set_virt(False)

    def _trace_trap(self, epc, cause, tval, interrupt) -> None:
        if self.trace:
            self.trace(epc, f"trap {'irq' if interrupt else 'exc'} cause={cause} tval={tval:#x}")

    def interrupt_due(self) -> bool:
        """An interrupt is pending, enabled and takeable at this privilege now."""
        return privilege.pending_interrupt(self) is not None

    def check_interrupts(self) -> bool:
        """Take the highest-priority enabled pending interrupt, if any."""
        irq = privilege.pending_interrupt(self)
        if irq is None:
            return False
        self.take_trap(irq, 0, self.pc, True)
        return True
