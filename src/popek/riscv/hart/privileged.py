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
from popek.riscv.csrs import M
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
        raise Trap(traps.ECALL_FROM_U + self.priv, 0)

    def mret(self):
        if self.priv != M:
            raise Trap(traps.ILLEGAL_INSN, None)
        self._trap_return(privilege.MACHINE)

    def sret(self):
        if not privilege.may_sret(self):
            raise Trap(traps.ILLEGAL_INSN, None)
        self._trap_return(privilege.SUPERVISOR)

    def _trap_return(self, level) -> None:
        self.reservation = None
        self.cycle_extra += self.costs.TRAP_RETURN
        self.pc = privilege.trap_return(self, level)

    def wfi(self):
        if not privilege.may_wfi(self):
            raise Trap(traps.ILLEGAL_INSN, None)
        if not self.mip & self.mie:
            self.waiting = True
            self.limit = 0

    def sfence_vma(self, va, rs1, asid, rs2):
        if not privilege.may_sfence_vma(self):
            raise Trap(traps.ILLEGAL_INSN, None)
        self.cycle_extra += self.costs.TLB_FLUSH
        if rs1:
            self._flush_page(va)        # one address (any address space: ASIDs are not kept)
        else:
            self._flush_tlbs()

    def fence_i(self):
        # Nothing to do: every write to a page holding decoded code (stores, DMA,
        # A/D updates) already dropped exactly the blocks it touched, so the
        # "instruction cache" is always coherent, which fence.i permits.
        self.stats["fence_i"] += 1

    # ------------------------------------------------------------- traps
    def take_trap(self, cause: int, tval: int, epc: int, interrupt: bool = False) -> None:
        """Enter the trap handler for ``cause``: the one place that knows delegation."""
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
            self.m_trap_hook(cause, tval & M64, epc, interrupt)     # charges its own costs
            return
        self.cycle_extra += self.costs.TRAP_ENTRY
        level = privilege.SUPERVISOR if to_s else privilege.MACHINE
        self.pc = privilege.trap_entry(self, level, cause, tval, epc, interrupt)
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
