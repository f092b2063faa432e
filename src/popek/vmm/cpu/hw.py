"""Hardware assist: the guest runs in the H extension's VS-mode, and exits only for
what the hardware sends to the hypervisor (``--vmm hw``, with ``--paging nested``),
as KVM runs guests on RISC-V.

The hart has the H extension (riscv/hart/virt.py); the VMM stands where the
hypervisor stands, in HS-mode: the traps the hart would take into HS-mode reach it
(``Hart.m_trap_hook``) and are exits.  While a vCPU runs:

* its supervisor registers *are* the hart's (VS-mode's: sstatus, stvec, sepc,
  scause, stval, satp, sie/sip through hie/hvip, scounteren, senvcfg), loaded at
  every world switch (:meth:`load_vcpu`) and saved back (:meth:`save_vcpu`);
* every exception the guest can handle is delegated to it (medeleg and hedeleg:
  illegal instructions, page faults, breakpoints, its processes' system calls), and
  its interrupts reach it through hvip and hideleg: none of them is an exit;
* its sstatus, satp, sfence.vma, sret and page-table updates run in hardware.

What does exit (:func:`exit_from_trap`):

    trap                         exit             done by
    ecall from VS-mode           Ecall            SBI (vmm/sbi.py)
    guest-page fault (20,21,23)  GuestPageFault   the memory strategy maps the page, or
                                                  the access is a device's (MMIO, cpu/mmio.py)
    virtual instruction (22)     Wfi (hstatus.VTW), CsrAccess (a counter read with
                                 hcounteren's bit clear: --trap-time), IllegalInsn
    anything else                GuestException   reflected into the guest

Each exit costs a VM exit and a VM entry (costmodel.py: VM_EXIT, VM_ENTRY) plus
its emulation; a trap the guest takes itself costs what a trap costs on the bare
machine.
"""

from __future__ import annotations

from popek.riscv import csrs, isa, traps
from popek.riscv.csrs import MIP_SSIP, MSTATUS_FS, MSTATUS_MXR, MSTATUS_SUM, S_INTERRUPTS
from popek.riscv.hcsrs import (HEDELEG_WRITABLE, HSTATUS_VSXL, HSTATUS_VTW, HCOUNTEREN_TM,
                               MIP_VSSIP, SSTATUS_BANKED, VS_INTERRUPTS)
from popek.riscv.mmu import ACCESS_FAULT, GUEST_PAGE_FAULT
from popek.riscv.privilege import supervisor_trap
from popek.riscv.traps import Trap
from popek.vmm import sbi
from popek.vmm.cpu import mmio, wait_for_interrupt
from popek.vmm.exits import (CsrAccess, Ecall, Exit, GuestException, GuestPageFault,
                             HostInterrupt, IllegalInsn, Wfi)
from popek.vmm.ledger import VM_SWITCH
from popek.vmm.memory import Device, Filled

ACCESS = {cause: access for access, cause in GUEST_PAGE_FAULT.items()}
BANKED = ("stvec", "sscratch", "sepc", "scause", "stval", "satp", "scounteren", "senvcfg")
COUNTERS = {0xC00: "cycle", 0xC01: "time", 0xC02: "instret"}


def exit_from_trap(hart, cause: int, tval: int, epc: int, interrupt: bool) -> Exit:
    """The exit a trap the hart sent to the hypervisor is (its htval/htinst say where a
    guest-page fault was, as they would tell HS-mode software)."""
    if interrupt:
        return HostInterrupt(epc, cause)
    if cause == traps.ECALL_FROM_VS:
        return Ecall(epc)
    access = ACCESS.get(cause)
    if access is not None:
        # htval has the address >> 2: the access's own low bits are tval's, but a fault of
        # the VS-stage walk's own access (htinst says so) is at an 8-byte-aligned entry.
        implicit = hart.htinst in (traps.TINST_PTE_READ, traps.TINST_PTE_WRITE)
        return GuestPageFault(epc, access, tval,
                              (hart.htval << 2) | (0 if implicit else tval & 3), implicit)
    if cause == traps.VIRTUAL_INSN:
        d = hart.isa.decode(tval)
        if d.insn.name == "wfi":
            return Wfi(epc, d)
        if d.insn.kind == isa.CSR:
            return CsrAccess(epc, d)
        return IllegalInsn(epc, tval)
    return GuestException(epc, cause, tval)


class HardwareAssist:
    """The CPU strategy of one VM."""
    name = "hw"
    SWITCH = VM_SWITCH               # what reaching the VMM and back costs (ledger.py)
    # No vCPU page for PV guests (vcpu_page.py): the guest's registers are the hart's VS
    # registers, which it reads and writes without exits anyway.
    VCPU_PAGE = False
    REWRITE = None
    # The guest takes every exception it can itself (hedeleg cannot pass on ecalls from
    # VS-mode, guest-page faults or virtual instructions: those are the exits).
    GUEST_EXCEPTIONS = HEDELEG_WRITABLE

    def __init__(self, vm):
        self.vm = vm
        self.vmm = vm.vmm
        self.hart = vm.vmm.hart
        # hcounteren.TM clear: the guest's reads of time exit and are emulated (the
        # article's trapped RDTSC); set (default), they run in hardware with htimedelta.
        self.trap_time = vm.cfg.trap_time
        self._walks_before = (0, 0)

    def exit_from_trap(self, cause: int, tval: int, epc: int, interrupt: bool) -> Exit:
        self.save_vcpu()              # the handlers work on the vCPU's copy of its state
        return exit_from_trap(self.hart, cause, tval, epc, interrupt)

    def handlers(self) -> dict:
        return {Ecall: self.ecall, GuestPageFault: self.guest_page_fault, Wfi: self.wfi,
                CsrAccess: self.csr, IllegalInsn: self.illegal,
                GuestException: self.exception, HostInterrupt: self.host_interrupt}

    # -- world switches -----------------------------------------------------------------
    def activate(self) -> None:
        """The VM is about to run: the hart in VS-mode with its vCPU's state, delegating
        to it everything it can handle, trapping wfi (VTW) so an idle vCPU is descheduled."""
        h = self.hart
        h.m_trap_hook = self.vmm.on_trap
        h.medeleg = h.hedeleg = self.GUEST_EXCEPTIONS
        h.hideleg = VS_INTERRUPTS
        h.hstatus = HSTATUS_VSXL | HSTATUS_VTW
        h.mcounteren = 0xFFFFFFFF
        h.hcounteren = 0xFFFFFFFF & ~(HCOUNTEREN_TM if self.trap_time else 0)
        h.htimedelta = 0
        h.set_virt(True)
        h.vs_bank.status |= MSTATUS_FS          # HS-mode's FS (banked while V=1): on
        self._walks_before = (h.stats["two_stage_walks"], h.stats["two_stage_pte_reads"])
        self.load_vcpu()

    def deactivate(self) -> None:
        """The VM leaves the hart: its state into the vCPU, and the hart out of the
        virtual modes, with nothing delegated (a VM of another strategy may come next)."""
        self.save_vcpu()
        h = self.hart
        # The two-dimensional walks of its turn, for its ledger (no exits: the hardware's).
        walks = h.stats["two_stage_walks"] - self._walks_before[0]
        refs = h.stats["two_stage_pte_reads"] - self._walks_before[1]
        led = self.vm.ledger
        led.add_hardware("two_stage_walks", walks)
        led.add_hardware("walk_references", refs)
        led.add_hardware("walk_cycles", refs * h.costs.PAGE_WALK_REF)
        h.set_virt(False)
        h.medeleg = h.hedeleg = h.hideleg = 0
        h.hgatp = 0
        h.flush_virtual_tlbs()

    def load_vcpu(self, switched: bool = True) -> None:
        """The vCPU's supervisor state onto the hart (V=1: its live registers are VS's).
        After a world switch (``switched``) the guest translations the hart holds are
        another vCPU's: they go; after an exit only if the handler changed satp or the
        SUM/MXR bits (a PV hypercall) of this one."""
        h, v = self.hart, self.vm.vcpu
        stale = switched or h.satp != v.satp \
            or (h.mstatus ^ v.mstatus) & (MSTATUS_SUM | MSTATUS_MXR)
        for name in BANKED:
            setattr(h, name, getattr(v, name))
        h.mstatus = (h.mstatus & ~SSTATUS_BANKED) | (v.mstatus & SSTATUS_BANKED)
        h.mie = (h.mie & ~VS_INTERRUPTS) | ((v.mie & S_INTERRUPTS) << 1)
        self._interrupt_lines()
        if stale:
            h.flush_virtual_tlbs()
        h.set_priv(v.priv)

    def save_vcpu(self) -> None:
        """The hart's VS-mode state back into the vCPU (at every exit, and when it leaves
        the hart): what the VMM's handlers (SBI, HSM, the PV calls) read and write."""
        h, v = self.hart, self.vm.vcpu
        for name in BANKED:
            setattr(v, name, getattr(h, name))
        v.mstatus = (v.mstatus & ~SSTATUS_BANKED) | (h.mstatus & SSTATUS_BANKED)
        v.mie = (v.mie & ~S_INTERRUPTS) | ((h.mie & VS_INTERRUPTS) >> 1)
        # SSIP is the guest's to clear (through sip, i.e. hvip.VSSIP).
        v.mip_sw = (v.mip_sw & ~MIP_SSIP) | ((h.mip_sw & MIP_VSSIP) >> 1)
        v.priv = h.priv

    def _interrupt_lines(self) -> None:
        """The vCPU's pending interrupts (software: IPIs; timer: its SBI deadline;
        external: its PLIC) as hvip's VS-level lines, which the hart delivers when the
        guest enables them: no exit."""
        h = self.hart
        pending = self.vm.vcpu.mip & S_INTERRUPTS
        h.set_mip_sw((h.mip_sw & ~VS_INTERRUPTS) | (pending << 1))

    def deliver_interrupts(self) -> None:
        """Before a slice (the VMM's run loop): SSIP as the guest left it, then the lines."""
        h, v = self.hart, self.vm.vcpu
        v.mip_sw = (v.mip_sw & ~MIP_SSIP) | ((h.mip_sw & MIP_VSSIP) >> 1)
        self._interrupt_lines()

    def resume(self, e: Exit) -> None:
        """After an exit: the vCPU's state (as the handler left it) back on the hart."""
        self.hart.x[0] = 0
        if self.vm.exit_code is None and self.vm.vcpu.started:
            self.load_vcpu(switched=False)

    # -- exits --------------------------------------------------------------------------
    def reflect(self, cause: int, tval: int, epc: int, reason: str) -> None:
        """An exception for the guest: its trap entry on the hart's VS-mode registers."""
        v = self.vm.vcpu
        self.hart.pc = supervisor_trap(v, cause, tval, epc, False)
        self.vm.ledger.record(reason, traps.EXCEPTION_NAMES.get(cause, str(cause)))

    def ecall(self, vm, e: Ecall) -> None:
        ext = sbi.handle(vm, self.hart.x)
        vm.ledger.record("sbi", ext)
        self.hart.pc = e.pc + 4

    def guest_page_fault(self, vm, e: GuestPageFault) -> None:
        out = vm.memory.guest_page_fault(e.gpa, e.access)
        if type(out) is Filled:
            vm.ledger.record(out.reason)
            self.hart.pc = e.pc                     # retry the access
        elif e.implicit:
            # The guest's own page tables point outside its RAM: its walk faults.
            self.reflect(ACCESS_FAULT[e.access], e.va, e.pc, "exception_reflected")
        elif type(out) is Device:
            word = vm.memory.guest_fetch(e.pc)
            fault = mmio.device_access(vm, self.hart, e.pc, e.access, word, out.gpa)
            if fault is not None:
                self.reflect(fault, e.va, e.pc, "exception_reflected")

    def wfi(self, vm, e: Wfi) -> None:
        wait_for_interrupt(vm, self.hart, e)

    def csr(self, vm, e: CsrAccess) -> None:
        """A counter read hcounteren traps (time, with trap_time): emulated on the
        vCPU's CSR file; any other CSR the guest may not touch is illegal for it."""
        h, d = self.hart, e.insn
        if d.csr not in COUNTERS:
            self.illegal(vm, e)
            return
        try:
            old = csrs.access(vm.vcpu, d.csr, 1, 0, True, False, e.pc)
        except Trap:
            self.illegal(vm, e)
            return
        vm.ledger.record("counter", COUNTERS[d.csr])
        if d.rd:
            h.x[d.rd] = old
        h.pc = e.pc + d.length

    def illegal(self, vm, e) -> None:
        bits = e.bits if type(e) is IllegalInsn else e.insn.word
        self.reflect(traps.ILLEGAL_INSN, bits, e.pc, "exception_reflected")

    def exception(self, vm, e: GuestException) -> None:
        self.reflect(e.cause, e.tval, e.pc, "exception_reflected")

    def host_interrupt(self, vm, e: HostInterrupt) -> None:
        self.hart.pc = e.pc

    def stats(self) -> dict:
        return {}
