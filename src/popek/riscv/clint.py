"""CLINT: machine software interrupts (msip), timer compare (mtimecmp) and mtime.

Register map (SiFive CLINT, as on QEMU's virt board):

    0x0000 + 4*hart   msip       bit 0 drives mip.MSIP
    0x4000 + 8*hart   mtimecmp   mip.MTIP = (mtime >= mtimecmp)
    0xBFF8            mtime      from the machine's clock (timebase 10 MHz)
"""

from __future__ import annotations

from popek.riscv.csrs import MIP_MSIP, MIP_MTIP

MSIP_BASE, MTIMECMP_BASE, MTIME = 0x0000, 0x4000, 0xBFF8
SIZE = 0x10000
M64 = (1 << 64) - 1


def _read_part(value: int, offset: int, size: int) -> int:
    """A 32- or 64-bit read of a 64-bit register at byte ``offset`` within it."""
    return (value >> (8 * offset)) & ((1 << (8 * size)) - 1)


def _write_part(old: int, offset: int, size: int, value: int) -> int:
    mask = ((1 << (8 * size)) - 1) << (8 * offset)
    return (old & ~mask) | ((value << (8 * offset)) & mask)


class Clint:
    def __init__(self, machine, harts):
        self.machine = machine
        self.harts = harts
        self.msip = [0] * len(harts)
        self.mtimecmp = [M64] * len(harts)

    def read(self, off: int, size: int) -> int:
        if off < MTIMECMP_BASE:
            h = off // 4
            return self.msip[h] if h < len(self.harts) and off % 4 == 0 else 0
        if off >= MTIME:
            return _read_part(self.machine.mtime(), off - MTIME, size)
        h, part = divmod(off - MTIMECMP_BASE, 8)
        return _read_part(self.mtimecmp[h], part, size) if h < len(self.harts) else 0

    def write(self, off: int, size: int, value: int) -> None:
        if off < MTIMECMP_BASE:
            h = off // 4
            if h < len(self.harts) and off % 4 == 0:
                self.msip[h] = value & 1
                self.harts[h].set_irq_line(MIP_MSIP, bool(value & 1))
            return
        if off >= MTIME:
            self.machine.set_mtime(_write_part(self.machine.mtime(), off - MTIME, size, value))
        else:
            h, part = divmod(off - MTIMECMP_BASE, 8)
            if h < len(self.harts):
                self.mtimecmp[h] = _write_part(self.mtimecmp[h], part, size, value)
        self.update()
        # The machine sized the current slice from the old deadline: end the slice
        # so it is sized again and MTIP rises at exactly the right instruction.
        for hart in self.harts:
            hart.limit = 0

    def update(self) -> None:
        """Recompute every hart's MTIP from the current mtime."""
        now = self.machine.mtime()
        for h, hart in enumerate(self.harts):
            hart.set_irq_line(MIP_MTIP, now >= self.mtimecmp[h])

    def next_deadline(self) -> int | None:
        """The earliest mtimecmp still in the future, in mtime ticks."""
        now = self.machine.mtime()
        future = [t for t in self.mtimecmp if t > now and t != M64]
        return min(future) if future else None
