"""Trap-and-emulate: the guest runs deprivileged, every sensitive thing it does
traps, and the VMM emulates it against the virtual CPU (``--vmm trap-emulate``).

The hart runs each guest in its real U-mode, whatever privilege the guest
believes it has (``vcpu.priv``); with ``medeleg``/``mideleg``/``mcounteren`` all 0,
every privileged instruction, CSR access, counter read, ecall and page fault
traps to M-mode, where the VMM stands (``Hart.m_trap_hook``).  Each such trap
becomes a typed exit (:func:`exit_from_trap`), handled here:

    exit          what the VMM does
    CsrAccess     the access on the virtual CPU's CSR file (riscv/csrs.py, the same
                  objects the hart uses), with the same checks; sstatus.FS is
                  the hart's, taken before and put back after (vmm/vcpu.py)
    Sret          riscv/privilege.py's sret on the virtual CPU
    Wfi           deschedule the vCPU until an interrupt is pending for it
    TlbFence      the memory strategy drops what the guest's fence covers
    Ecall         from the guest kernel: an SBI call (vmm/sbi.py); from its user
                  code: reflected (a system call for the guest kernel)
    PageFault     the memory strategy fills it, reflects it, or names a device,
                  whose access is emulated by decoding the instruction (MmioRead /
                  MmioWrite, handled by the I/O strategy)
    IllegalInsn,  reflected into the guest: its own trap entry (privilege.py),
    GuestException   as if its hardware had trapped
    HostInterrupt nothing: the host has no interrupt sources of its own

After each exit, an interrupt the guest can now take is injected.
"""

from __future__ import annotations

from popek.riscv import csrs, isa, traps
from popek.riscv.mmu import FETCH, PAGE_FAULT
from popek.riscv.privilege import (may_sfence_vma, may_sret, may_wfi, pending_interrupt,
                                   supervisor_return, supervisor_trap)
from popek.riscv.traps import Trap
from popek.vmm import sbi
from popek.vmm.cpu import mmio, wait_for_interrupt
from popek.vmm.exits import (CsrAccess, Ecall, Exit, GuestException, HostInterrupt,
                             IllegalInsn, PageFault, Sret, TlbFence, Wfi)
from popek.vmm.ledger import TRAP_SWITCH
from popek.vmm.memory import Device, Filled
from popek.vmm.vcpu import S, U

ACCESS = {cause: access for access, cause in PAGE_FAULT.items()}     # page-fault cause → access
SYSTEM_EXITS = {"sret": Sret, "wfi": Wfi, "sfence.vma": TlbFence}
SSTATUS = 0x100
COUNTERS = {0xC00: "cycle", 0xC01: "time", 0xC02: "instret"}
IRQ_NAMES = {traps.IRQ_S_EXT: "external", traps.IRQ_S_SOFT: "software",
             traps.IRQ_S_TIMER: "timer"}


def exit_from_trap(cause: int, tval: int, epc: int, interrupt: bool,
                   decode=isa.decode) -> Exit:
    """The exit a trap that reached M-mode is: illegal instructions are decoded into
    the privileged operation the guest attempted."""
    if interrupt:
        return HostInterrupt(epc, cause)
    if cause == traps.ILLEGAL_INSN:
        d = decode(tval)
        if d.insn.kind == isa.CSR:
            return CsrAccess(epc, d)
        kind = SYSTEM_EXITS.get(d.insn.name)
        return kind(epc, d) if kind is not None else IllegalInsn(epc, tval)
    if cause == traps.ECALL_FROM_U:
        return Ecall(epc)
    access = ACCESS.get(cause)
    if access is not None:
        return PageFault(epc, access, tval)
    return GuestException(epc, cause, tval)


class TrapAndEmulate:
    """The CPU strategy of one VM."""
    name = "trap-emulate"
    # A PV guest may keep its supervisor registers in a vCPU page (vcpu_page.py): they
    # are the vCPU's here, so the VMM can read the page at exits and write it at entries.
    VCPU_PAGE = True
    REWRITE = None                   # runs the guest's code as it is (bt.py rewrites it)
    SWITCH = TRAP_SWITCH             # what reaching the VMM and back costs (ledger.py)

    def __init__(self, vm):
        self.vm = vm
        self.vmm = vm.vmm
        self.hart = vm.vmm.hart

    def exit_from_trap(self, cause: int, tval: int, epc: int, interrupt: bool) -> Exit:
        self.pull_page()
        return exit_from_trap(cause, tval, epc, interrupt, self.hart.isa.decode)

    def pull_page(self) -> None:
        """A PV guest's stores to its vCPU page (vcpu_page.py), into its vCPU."""
        v = self.vm.vcpu
        if v.page is not None:
            v.page.pull(v, self.hart)

    def push_page(self) -> None:
        v = self.vm.vcpu
        if v.page is not None:
            v.page.push(v, self.hart)

    def handlers(self) -> dict:
        allowed = self._if_allowed
        return {CsrAccess: self.csr, Sret: allowed(may_sret, self.sret),
                Wfi: allowed(may_wfi, self.wfi), TlbFence: allowed(may_sfence_vma, self.tlb_fence),
                IllegalInsn: self.illegal, Ecall: self.ecall, PageFault: self.page_fault,
                GuestException: self.exception, HostInterrupt: self.host_interrupt}

    def _if_allowed(self, may, handler):
        """sret, wfi and sfence.vma: done where the virtual CPU may run them (the same
        rule as the hart's, privilege.py), else illegal, as on the guest's hardware."""
        def handle(vm, e):
            if may(vm.vcpu):
                handler(vm, e)
            else:
                self.illegal(vm, e)
        return handle

    def activate(self) -> None:
        """The VM is about to run: the hart runs it in U-mode, its M-mode traps are exits."""
        self.hart.m_trap_hook = self.vmm.on_trap
        self.hart.set_priv(U)

    def deactivate(self) -> None:
        """The VM leaves the hart: everything of its vCPU is in the vCPU already."""

    def resume(self, e: Exit) -> None:
        """After an exit: x0 is zero again, an interrupt the guest can take now is
        taken, and a PV guest's vCPU page shows its registers."""
        if type(e) is not HostInterrupt:
            self.hart.x[0] = 0
            if self.vm.exit_code is None and self.vm.vcpu.started:   # (not after hart_stop)
                self._inject()
        self.push_page()

    # -- the virtual CPU's own traps --------------------------------------------------
    def reflect(self, cause: int, tval: int, epc: int, reason: str) -> None:
        """Deliver an exception to the guest, as its hardware would have."""
        self.hart.pc = supervisor_trap(self.vm.vcpu, cause, tval, epc, False)
        self.vm.ledger.record(reason, traps.EXCEPTION_NAMES.get(cause, str(cause)))

    def deliver_interrupts(self) -> None:
        """Before a slice (the VMM's run loop)."""
        self.pull_page()              # (SIE may have been set by a store since the last exit)
        self._inject()
        self.push_page()

    def _inject(self) -> None:
        v = self.vm.vcpu
        irq = pending_interrupt(v)
        if irq is not None:
            self.hart.pc = supervisor_trap(v, irq, 0, self.hart.pc, True)
            self.vm.ledger.record("interrupt", IRQ_NAMES[irq])

    # -- exits --------------------------------------------------------------------------
    def csr(self, vm, e: CsrAccess) -> None:
        """csrrw/csrrs/csrrc(i) on the virtual CPU's CSR file, with the hart's checks."""
        h, d = self.hart, e.insn
        name = d.insn.name
        imm = name.endswith("i")
        src = d.imm if imm else h.x[d.rs1]
        op = "wsc".index(name[4])                 # csrr[w|s|c](i): csrs.access's op
        writes = op == 0 or (d.imm if imm else d.rs1) != 0
        status = d.csr == SSTATUS                 # FS: the hart keeps the guest's (vcpu.py)
        if status:
            vm.vcpu.fs_from_hart(h)
        try:
            old = csrs.access(vm.vcpu, d.csr, op, src, True, writes, e.pc)
            if status:
                vm.vcpu.fs_to_hart(h)
        except Trap:
            self.reflect(traps.ILLEGAL_INSN, d.word, e.pc, "exception_reflected")
            return
        vm.ledger.record("counter" if d.csr in COUNTERS else "csr",
                         COUNTERS.get(d.csr, f"{d.csr:#x}"))
        if d.rd:
            h.x[d.rd] = old
        h.pc = e.pc + d.length

    def sret(self, vm, e: Sret) -> None:
        self.hart.pc = supervisor_return(vm.vcpu)
        vm.ledger.record("sret")

    def wfi(self, vm, e: Wfi) -> None:
        wait_for_interrupt(vm, self.hart, e)

    def tlb_fence(self, vm, e: TlbFence) -> None:
        h = self.hart
        h.pc = e.pc + e.insn.length
        rs1 = e.insn.rs1                          # x0: every address; else one page
        vm.ledger.record("sfence_vma", "page" if rs1 else "all")
        vm.memory.fence(h.x[rs1] if rs1 else None)

    def illegal(self, vm, e) -> None:
        bits = e.bits if type(e) is IllegalInsn else e.insn.word
        self.reflect(traps.ILLEGAL_INSN, bits, e.pc, "exception_reflected")

    def ecall(self, vm, e: Ecall) -> None:
        if vm.vcpu.priv == S:
            ext = sbi.handle(vm, self.hart.x)
            vm.ledger.record("sbi", ext)
            self.hart.pc = e.pc + 4
        else:
            self.reflect(traps.ECALL_FROM_U, 0, e.pc, "ecall_user")

    def exception(self, vm, e: GuestException) -> None:
        self.reflect(e.cause, e.tval, e.pc, "exception_reflected")

    def host_interrupt(self, vm, e: HostInterrupt) -> None:
        self.hart.pc = e.pc

    def page_fault(self, vm, e: PageFault) -> None:
        out = vm.memory.fault(e.access, e.va)
        if type(out) is Filled:
            vm.ledger.record(out.reason)
            self.hart.pc = e.pc                     # retry the access
        elif type(out) is Device:
            self.device_access(vm, e, out.gpa)
        else:
            self.reflect(out.cause, e.va, e.pc, out.reason)

    def device_access(self, vm, e: PageFault, gpa: int) -> None:
        """A load or store to a device: emulated (cpu/mmio.py), or an access fault."""
        word = vm.memory.guest_fetch(e.pc) if e.access != FETCH else None
        fault = mmio.device_access(vm, self.hart, e.pc, e.access, word, gpa)
        if fault is not None:
            self.reflect(fault, e.va, e.pc, "exception_reflected")

    def stats(self) -> dict:
        pages = [v.page for v in self.vm.vcpus if v.page is not None]
        if not pages:
            return {}
        return {"vcpu_page_pulls": sum(p.pulls for p in pages),
                "vcpu_page_pushes": sum(p.pushes for p in pages)}

