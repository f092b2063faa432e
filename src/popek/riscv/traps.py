"""Synchronous exceptions and interrupt causes (RISC-V privileged spec, table 3.6).

Traps are raised as :class:`Trap` from wherever they happen (decoder, MMU, CSR
file, device access) and taken in one place, :meth:`Hart.take_trap`, which knows
delegation.
"""

# Exception causes.
INSN_MISALIGNED = 0
INSN_ACCESS_FAULT = 1
ILLEGAL_INSN = 2
BREAKPOINT = 3
LOAD_MISALIGNED = 4
LOAD_ACCESS_FAULT = 5
STORE_MISALIGNED = 6
STORE_ACCESS_FAULT = 7
ECALL_FROM_U = 8
ECALL_FROM_S = 9
ECALL_FROM_VS = 10             # (H) ecall from VS-mode; VU-mode's is ECALL_FROM_U
ECALL_FROM_M = 11
INSN_PAGE_FAULT = 12
LOAD_PAGE_FAULT = 13
STORE_PAGE_FAULT = 15
# The H extension's: a fault of the G-stage (guest-physical → host-physical) translation,
# and an instruction that a virtual mode may not run but HS-mode may (VS-mode touching
# hstatus, VU-mode touching sstatus, sret under hstatus.VTSR, ...).
INSN_GUEST_PAGE_FAULT = 20
LOAD_GUEST_PAGE_FAULT = 21
VIRTUAL_INSN = 22
STORE_GUEST_PAGE_FAULT = 23
# Exceptions whose tval is an address (a breakpoint's is its pc): taken from a virtual
# mode (or raised by HLV/HSV), that address is a guest virtual one, which mstatus.GVA /
# hstatus.GVA record.
ADDRESS_CAUSES = frozenset((0, 1, 3, 4, 5, 6, 7, 12, 13, 15, 20, 21, 23))
# What htinst/mtinst say of a guest-page fault on the VS-stage walk's own access to a
# page-table entry (a 64-bit read, or the write that sets A/D): pseudoinstructions.
TINST_PTE_READ = 0x3000
TINST_PTE_WRITE = 0x3020

# Interrupt numbers (bit positions in mip/mie).
IRQ_S_SOFT = 1
IRQ_VS_SOFT = 2                # (H) the VS-level ones: taken into VS-mode as 1, 5 and 9
IRQ_M_SOFT = 3
IRQ_S_TIMER = 5
IRQ_VS_TIMER = 6
IRQ_M_TIMER = 7
IRQ_S_EXT = 9
IRQ_VS_EXT = 10
IRQ_M_EXT = 11
IRQ_SG_EXT = 12                # (H) supervisor guest external: none here (GEILEN is 0)

# The order in which simultaneously pending interrupts are taken (priv spec 3.1.9, and the
# H extension's 9.4.3: SGEI, VSEI, VSSI, VSTI after the S-level ones).
IRQ_PRIORITY = (IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER, IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER,
                IRQ_SG_EXT, IRQ_VS_EXT, IRQ_VS_SOFT, IRQ_VS_TIMER)

EXCEPTION_NAMES = {
    0: "instruction address misaligned", 1: "instruction access fault",
    2: "illegal instruction", 3: "breakpoint", 4: "load address misaligned",
    5: "load access fault", 6: "store/AMO address misaligned", 7: "store/AMO access fault",
    8: "environment call from U-mode", 9: "environment call from S-mode",
    10: "environment call from VS-mode", 11: "environment call from M-mode",
    12: "instruction page fault", 13: "load page fault", 15: "store/AMO page fault",
    20: "instruction guest-page fault", 21: "load guest-page fault",
    22: "virtual instruction", 23: "store/AMO guest-page fault",
}


class Trap(Exception):
    """A synchronous exception.

    ``tval`` of ``None`` means "the faulting instruction's bits", which only the
    instruction's own code knows; ``pc`` is filled in as the exception leaves the
    instruction.  ``idx``, its index in its block (how many instructions of the
    block retired before it), is filled in by translated code, which knows it; the
    interpreter's dispatcher finds it from ``pc``.

    The H extension's traps say more: ``gpa``, the guest-physical address a G-stage
    fault was at (htval/mtval2 get it >> 2); ``tinst``, what htinst/mtinst get (0, or
    a pseudoinstruction for a fault of the walk's own access); and ``gva``, whether
    ``tval`` is a guest virtual address when the trap was not taken from a virtual
    mode (HLV/HSV).
    """

    __slots__ = ("cause", "tval", "pc", "idx", "gpa", "tinst", "gva")

    def __init__(self, cause: int, tval: int | None = 0, gpa: int = 0, gva: bool = False,
                 tinst: int = 0):
        self.cause = cause
        self.tval = tval
        self.pc = None
        self.idx = 0
        self.gpa = gpa
        self.tinst = tinst
        self.gva = gva

    def __str__(self):
        pc = "?" if self.pc is None else f"{self.pc:#x}"
        return f"{EXCEPTION_NAMES.get(self.cause, self.cause)} at pc={pc} tval={self.tval}"

