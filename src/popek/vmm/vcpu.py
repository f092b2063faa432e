"""A virtual CPU: the supervisor-level state a guest kernel believes it owns.

The guest runs in the hart's real U-mode whatever privilege it thinks it has
(``priv``: S for its kernel, U for its processes).  Everything privileged it does
traps to the VMM, which emulates it against this state:

    CSR          virtual state                      sensitive because
    sstatus      SIE, SPIE, SPP, SUM, MXR           interrupt enable, trap stack, memory view
    sie / sip    SSIE/STIE/SEIE, SSIP (+ STIP, SEIP) interrupts
    stvec        trap vector                        where traps go
    sscratch, sepc, scause, stval                   trap state
    satp         guest page-table root              address translation (shadowed)
    scounteren   U-mode counter access              counter visibility
    senvcfg      (FIOM only)
    time/cycle/instret   read through the VMM (mcounteren is 0 while guests run)

Timer interrupts come from the SBI TIME extension (``timer``); external ones from
the VM's own PLIC (its S-mode context drives ``SEIP`` here).
"""

from __future__ import annotations

from popek.riscv import csrs
from popek.riscv.csrs import MIP_SEIP, MIP_SSIP, MIP_STIP

U, S = 0, 1
M64 = (1 << 64) - 1
SSTATUS_SIE, SSTATUS_SPIE, SSTATUS_SPP = 1 << 1, 1 << 5, 1 << 8
SSTATUS_SUM, SSTATUS_MXR = 1 << 18, 1 << 19
SSTATUS_UXL = 2 << 32
SSTATUS_WRITABLE = SSTATUS_SIE | SSTATUS_SPIE | SSTATUS_SPP | SSTATUS_SUM | SSTATUS_MXR
S_INTERRUPTS = MIP_SSIP | MIP_STIP | MIP_SEIP
IRQ_PRIORITY = (9, 1, 5)                     # SEI, SSI, STI (privileged spec 3.1.9)
COUNTERS = {0xC00: "cycle", 0xC01: "time", 0xC02: "instret"}


class GuestIllegal(Exception):
    """The guest did something its (virtual) hardware would refuse: reflect an
    illegal-instruction exception into it."""


class VCpu:
    def __init__(self, vm):
        self.vm = vm
        self.x = [0] * 33                     # registers while not on the hart
        self.pc = 0
        self.priv = S
        self.sstatus = SSTATUS_UXL
        self.sie = 0
        self.sip_sw = 0                       # SSIP written by the guest or an IPI
        self.irq_lines = 0                    # SEIP from the VM's PLIC
        self.stvec = self.sscratch = self.sepc = self.scause = self.stval = 0
        self.satp = 0
        self.scounteren = 0
        self.senvcfg = 0
        self.timer = M64                      # SBI set_timer deadline, in mtime ticks
        self.waiting = False                  # in wfi with nothing pending

    # -- what the PLIC calls (a vCPU is an interrupt target like a hart) ----
    def set_irq_line(self, bit: int, level: bool) -> None:
        if bit == MIP_SEIP:
            self.irq_lines = (self.irq_lines | bit) if level else (self.irq_lines & ~bit)
        # The PLIC's M-mode context has no meaning for a guest kernel: ignored.

    # -- interrupts ------------------------------------------------------------
    def sip(self, mtime: int) -> int:
        return self.sip_sw | self.irq_lines | (MIP_STIP if mtime >= self.timer else 0)

    def pending_enabled(self, mtime: int) -> int:
        return self.sip(mtime) & self.sie

    def deliverable(self, mtime: int) -> int | None:
        """The interrupt the guest would take now, if any."""
        pending = self.pending_enabled(mtime)
        if not pending or (self.priv == S and not self.sstatus & SSTATUS_SIE):
            return None
        for irq in IRQ_PRIORITY:
            if pending >> irq & 1:
                return irq
        return None

    # -- traps into the guest --------------------------------------------------
    def enter_trap(self, cause: int, tval: int, epc: int, interrupt: bool) -> int:
        """The guest's own trap entry (to its stvec); returns the new pc."""
        self.scause = ((1 << 63) | cause) if interrupt else cause
        self.sepc = epc & ~1
        self.stval = tval & M64
        st = self.sstatus & ~(SSTATUS_SPP | SSTATUS_SPIE | SSTATUS_SIE)
        if self.sstatus & SSTATUS_SIE:
            st |= SSTATUS_SPIE
        if self.priv == S:
            st |= SSTATUS_SPP
        self.sstatus = st
        self.priv = S
        base = self.stvec & ~3
        return base + 4 * cause if (interrupt and self.stvec & 1) else base

    def sret(self) -> int:
        st = self.sstatus
        self.priv = S if st & SSTATUS_SPP else U
        st = (st & ~(SSTATUS_SIE | SSTATUS_SPP)) | SSTATUS_SPIE
        if self.sstatus & SSTATUS_SPIE:
            st |= SSTATUS_SIE
        self.sstatus = st
        return self.sepc

    # -- CSRs --------------------------------------------------------------------
    def csr_read(self, num: int, mtime: int, count: int) -> int:
        """``count``: the cycle or instret value, for reads of those counters."""
        if num in COUNTERS:
            return mtime if num == 0xC01 else count
        if num == 0x100:
            return self.sstatus
        if num == 0x104:
            return self.sie
        if num == 0x144:
            return self.sip(mtime) & S_INTERRUPTS
        if num == 0x105:
            return self.stvec
        if num == 0x140:
            return self.sscratch
        if num == 0x141:
            return self.sepc
        if num == 0x142:
            return self.scause
        if num == 0x143:
            return self.stval
        if num == 0x180:
            return self.satp
        if num == 0x106:
            return self.scounteren
        if num == 0x10A:
            return self.senvcfg
        raise GuestIllegal(f"CSR {num:#x}")

    def csr_write(self, num: int, value: int) -> str | None:
        """Write a virtual CSR; returns "satp" when translation changed."""
        if num == 0x100:
            self.sstatus = (self.sstatus & ~SSTATUS_WRITABLE) | (value & SSTATUS_WRITABLE)
            return "sstatus"
        if num == 0x104:
            self.sie = value & S_INTERRUPTS
        elif num == 0x144:
            self.sip_sw = (self.sip_sw & ~MIP_SSIP) | (value & MIP_SSIP)
        elif num == 0x105:
            self.stvec = value & ~2
        elif num == 0x140:
            self.sscratch = value
        elif num == 0x141:
            self.sepc = value & ~1
        elif num == 0x142:
            self.scause = value
        elif num == 0x143:
            self.stval = value
        elif num == 0x180:
            mode = value >> 60
            if mode not in (csrs.SATP_MODE_BARE, csrs.SATP_MODE_SV39, csrs.SATP_MODE_SV48):
                return None                                   # WARL: ignored
            self.satp = 0 if mode == 0 else value & ((0xF << 60) | (0xFFFF << 44) | ((1 << 44) - 1))
            return "satp"
        elif num == 0x106:
            self.scounteren = value & 0xFFFFFFFF
        elif num == 0x10A:
            self.senvcfg = value & 1
        elif num in COUNTERS:
            raise GuestIllegal("counters are read-only")
        else:
            raise GuestIllegal(f"CSR {num:#x}")
        return None
