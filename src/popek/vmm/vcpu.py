"""A virtual CPU: the supervisor-level state a guest kernel believes it owns.

It is one more instance of the hart's CPU state, supervisor-only: the same
attribute names, the same CSR objects (riscv/csrs.py, a file with the supervisor
CSRs and the counters), the same trap entry, ``sret`` and interrupt selection
(riscv/privilege.py), as Spike keeps VS-mode state as a second instance of the
S-mode CSRs.  No supervisor semantics are written here.

    state          what the guest sees                   sensitive because
    mstatus        its sstatus view: SIE SPIE SPP SUM MXR interrupt enable, trap stack,
                                                          memory view
    mie / mip      sie / sip: SSIE STIE SEIE, SSIP STIP SEIP  interrupts
    stvec sscratch sepc scause stval                     where traps go, trap state
    satp           guest page-table root                 address translation
    scounteren senvcfg                                   counter visibility, FIOM
    time cycle instret   read through the VMM
    f fflags frm, FS     its floating-point registers,   (not sensitive: they live on
                         and sstatus.FS                   the hart while it runs)

What the real hardware's M-mode firmware would fix, a virtual CPU has fixed: every
S-level interrupt delegated (``mideleg``), every counter visible to S
(``mcounteren``).  Timer interrupts come from the SBI TIME extension (``timer``),
external ones from the VM's own PLIC (its S-mode context drives ``SEIP`` here).

With F and D, the guest's FP registers and fcsr are on the hart while it runs
(U-mode reaches them without a trap) and here while it does not; the hart's
mstatus.FS is then the guest's sstatus.FS, so an FP instruction with the guest's
FS Off traps as on its hardware, and one that writes makes FS Dirty where the
guest will read it (``fs_from_hart`` before the VMM emulates an sstatus access,
``fs_to_hart`` after).
Changes to what decides the guest's translation are told to the VM's memory
strategy (``context_changed``): a change of privilege, every satp write, and a
change of sstatus.SUM or MXR.
"""

from __future__ import annotations

from popek.clock import PollState
from popek.riscv import csrs
from popek.riscv.csrs import (MIP_SEIP, MIP_STIP, MSTATUS_FS, MSTATUS_MXR, MSTATUS_SUM, S,
                              S_INTERRUPTS, U)

__all__ = ["VCpu", "U", "S"]

M64 = (1 << 64) - 1


class VCpu:
    # A virtual CPU has no H extension: never in a virtual mode, nothing for one.
    virt = False
    hideleg = 0

    def __init__(self, vm, hartid: int = 0):
        self.vm = vm
        self.hartid = hartid
        self.started = False                  # SBI HSM: started, or stopped (sbi.py)
        self.csrs = csrs.csr_file(csrs.SUPERVISOR_CSRS)
        self.x = [0] * 33                     # registers while not on the hart
        self.pc = 0
        self.priv = S
        self.mstatus = csrs.MSTATUS_UXL | csrs.MSTATUS_SXL
        self.mideleg = S_INTERRUPTS           # as firmware delegates them
        self.mcounteren = 0xFFFFFFFF          # as firmware lets S-mode see the counters
        self.fs_writable = MSTATUS_FS if "F" in vm.isa.extensions else 0
        self.f = [0] * 32                     # FP registers while not on the hart
        self.fflags = self.frm = 0
        self.mie = 0
        self.mip_sw = 0                       # SSIP written by the guest or an IPI
        self.irq_lines = 0                    # SEIP from the VM's PLIC
        self.stvec = self.sscratch = self.sepc = self.scause = self.stval = 0
        self.satp = 0
        # As OpenSBI leaves it for S-mode (sbi_hart.c): cycle, time and instret readable
        # from U-mode.  Linux counts on it: without SBI's PMU extension nothing of its own
        # sets scounteren, and its vDSO reads the time in user mode.
        self.scounteren = 0x7
        self.poll = PollState()               # its last time read (clock.py: polling loops)
        self.csr_pc = 0                       # where the CSR access being emulated is
        self.senvcfg = 0
        self.timer = M64                      # SBI set_timer deadline, in mtime ticks
        self.waiting = False                  # in wfi with nothing pending
        self.page = None                      # a PV guest's vCPU page (vcpu_page.py)

    def start(self, pc: int, opaque: int) -> None:
        """SBI HSM hart_start: begin at ``pc`` in S-mode, translation and interrupts off,
        a0 = hart id, a1 = ``opaque`` (SBI spec, 9.1)."""
        self.pc = pc
        self.x[10], self.x[11] = self.hartid, opaque
        self.priv = S
        self.satp = 0
        self.mstatus &= ~csrs.MSTATUS_SIE
        self.waiting = False
        self.page = None                      # (a PV guest shares its page again)
        self.started = True

    # -- on and off the hart ---------------------------------------------------------
    def load_onto(self, hart) -> None:
        """Put the guest's registers on the hart (the VMM's world switch)."""
        hart.x[:] = self.x                    # the list objects stay: closures hold them
        hart.pc = self.pc
        hart.f[:] = self.f
        hart.fflags, hart.frm = self.fflags, self.frm
        self.fs_to_hart(hart)

    def save_from(self, hart) -> None:
        self.x[:] = hart.x
        self.pc = hart.pc
        self.f[:] = hart.f
        self.fflags, self.frm = hart.fflags, hart.frm
        self.fs_from_hart(hart)

    def fs_from_hart(self, hart) -> None:
        """The guest's FS as the hart has kept it (FP work makes it Dirty there)."""
        self.mstatus = (self.mstatus & ~MSTATUS_FS) | (hart.mstatus & MSTATUS_FS)

    def fs_to_hart(self, hart) -> None:
        hart.mstatus = (hart.mstatus & ~MSTATUS_FS) | (self.mstatus & MSTATUS_FS)

    # -- the state hooks the CSRs and privilege.py call ---------------------------
    @property
    def mip(self) -> int:
        return self.mip_sw | self.irq_lines | (MIP_STIP if self.vm.vmm.mtime() >= self.timer else 0)

    def set_priv(self, p: int) -> None:
        if p != self.priv:
            self.priv = p
            self.vm.memory.context_changed()

    def set_mstatus(self, v: int) -> None:
        # Only SUM and MXR decide a translation.  (Every sstatus write used to count,
        # and each cost the hart its TLBs and dispatch caches: Linux writes sstatus to
        # mask and unmask interrupts, 400 K times in a boot.)
        old, self.mstatus = self.mstatus, v
        if (old ^ v) & (MSTATUS_SUM | MSTATUS_MXR):
            self.vm.memory.context_changed()

    def set_satp(self, v: int) -> None:
        self.satp = v
        self.vm.memory.context_changed()

    def set_mie(self, v: int) -> None:
        self.mie = v

    def set_mip_sw(self, v: int) -> None:
        self.mip_sw = v

    def read_time(self) -> int:
        """The guest reads its time CSR (the VMM emulates it): a polling loop has its
        wait skipped as on the bare machine (clock.MachineTime.guest_time)."""
        vmm = self.vm.vmm
        return vmm.guest_time(self.poll, self.csr_pc, vmm.hart.instret)

    def read_cycle(self) -> int:
        return self.vm.vmm.hart.read_cycle()

    def read_instret(self) -> int:
        return self.vm.vmm.hart.read_instret()

    # -- what the PLIC calls (a vCPU is an interrupt target like a hart) ----------
    def set_irq_line(self, bit: int, level: bool) -> None:
        if bit == MIP_SEIP:
            self.irq_lines = (self.irq_lines | bit) if level else (self.irq_lines & ~bit)
        # The PLIC's M-mode context has no meaning for a guest kernel: ignored.

    def pending_enabled(self) -> int:
        return self.mip & self.mie
