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
ECALL_FROM_M = 11
INSN_PAGE_FAULT = 12
LOAD_PAGE_FAULT = 13
STORE_PAGE_FAULT = 15

# Interrupt numbers (bit positions in mip/mie).
IRQ_S_SOFT = 1
IRQ_M_SOFT = 3
IRQ_S_TIMER = 5
IRQ_M_TIMER = 7
IRQ_S_EXT = 9
IRQ_M_EXT = 11

# The order in which simultaneously pending interrupts are taken (priv spec 3.1.9).
IRQ_PRIORITY = (IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER, IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER)

EXCEPTION_NAMES = {
    0: "instruction address misaligned", 1: "instruction access fault",
    2: "illegal instruction", 3: "breakpoint", 4: "load address misaligned",
    5: "load access fault", 6: "store/AMO address misaligned", 7: "store/AMO access fault",
    8: "environment call from U-mode", 9: "environment call from S-mode",
    11: "environment call from M-mode", 12: "instruction page fault",
    13: "load page fault", 15: "store/AMO page fault",
}


class Trap(Exception):
    """A synchronous exception.

    ``tval`` of ``None`` means "the faulting instruction's bits", which only the
    instruction's own code knows; ``pc`` is filled in as the exception leaves the
    instruction.  ``idx``, its index in its block (how many instructions of the
    block retired before it), is filled in by translated code, which knows it; the
    interpreter's dispatcher finds it from ``pc``.
    """

    __slots__ = ("cause", "tval", "pc", "idx")

    def __init__(self, cause: int, tval: int | None = 0):
        self.cause = cause
        self.tval = tval
        self.pc = None
        self.idx = 0

    def __str__(self):
        pc = "?" if self.pc is None else f"{self.pc:#x}"
        return f"{EXCEPTION_NAMES.get(self.cause, self.cause)} at pc={pc} tval={self.tval}"

