"""PLIC: the platform-level interrupt controller (RISC-V PLIC spec v1.0.0).

Register map (offsets from 0x0C00_0000), two contexts per hart (M, then S):

    0x000000 + 4*src          priority of source src (1..NUM_SOURCES-1)
    0x001000                  pending bits (read-only)
    0x002000 + 0x80*ctx       enable bits of a context
    0x200000 + 0x1000*ctx     priority threshold; +4: claim (read) / complete (write)

A device drives its line with :meth:`set_level`, and, as QEMU's virt PLIC
(sifive_plic) does, every call with the line high is a request: it makes the
source pending (also while it is claimed: delivered once completed), a low line
clears it, a claim clears it, and a completion does not latch it again although
the line may still be high.  Devices call at every change of their state (QEMU's
16550 does), so a new event while the line is already high is a new request,
and a kernel that leaves a condition unacknowledged is not stormed by it.

Pending, claimed and enable bits are integers (bit n = source n), so finding the
best source costs one step per pending source, not one per source.
"""

from __future__ import annotations

from popek.riscv.csrs import MIP_MEIP, MIP_SEIP

NUM_SOURCES = 96            # QEMU virt: riscv,ndev = 0x60
SIZE = 0x600000
PRIORITY_MAX = 7


class Plic:
    def __init__(self, harts):
        self.harts = harts
        self.contexts = 2 * len(harts)
        self.priority = [0] * NUM_SOURCES
        self.pending = 0                         # bit masks over sources
        self.claimed = 0
        self.enable = [0] * self.contexts
        self.threshold = [0] * self.contexts

    def set_level(self, src: int, level: bool) -> None:
        if level:
            self.pending |= 1 << src
        else:
            self.pending &= ~(1 << src)
        self.update()

    def _best(self, ctx: int) -> int:
        """The enabled, pending, unclaimed source of highest priority above the
        threshold (the lowest number among equals), or 0."""
        best, best_prio = 0, self.threshold[ctx]
        todo = self.pending & ~self.claimed & self.enable[ctx]
        while todo:
            low = todo & -todo
            src = low.bit_length() - 1
            if self.priority[src] > best_prio:
                best, best_prio = src, self.priority[src]
            todo ^= low
        return best

    def update(self) -> None:
        for h, hart in enumerate(self.harts):
            hart.set_irq_line(MIP_MEIP, self._best(2 * h) != 0)
            hart.set_irq_line(MIP_SEIP, self._best(2 * h + 1) != 0)

    def read(self, off: int, size: int) -> int:
        if size != 4:
            return 0
        if off < 0x1000:
            src = off // 4
            return self.priority[src] if src < NUM_SOURCES else 0
        if off < 0x2000:
            word = (off - 0x1000) // 4
            return self.pending >> (32 * word) & 0xFFFFFFFF
        if off < 0x200000:
            ctx, word = divmod(off - 0x2000, 0x80)
            return (self.enable[ctx] >> (32 * (word // 4))) & 0xFFFFFFFF \
                if ctx < self.contexts else 0
        ctx, reg = divmod(off - 0x200000, 0x1000)
        if ctx >= self.contexts:
            return 0
        if reg == 0:
            return self.threshold[ctx]
        if reg == 4:                    # claim
            src = self._best(ctx)
            if src:
                self.pending &= ~(1 << src)
                self.claimed |= 1 << src
                self.update()
            return src
        return 0

    def write(self, off: int, size: int, value: int) -> None:
        if size != 4:
            return
        value &= 0xFFFFFFFF
        if off < 0x1000:
            src = off // 4
            if 0 < src < NUM_SOURCES:
                self.priority[src] = value & PRIORITY_MAX
        elif 0x2000 <= off < 0x200000:
            ctx, word = divmod(off - 0x2000, 0x80)
            shift = 32 * (word // 4)
            if ctx < self.contexts and shift < NUM_SOURCES:
                en = (self.enable[ctx] & ~(0xFFFFFFFF << shift)) | (value << shift)
                self.enable[ctx] = en & ~1 & ((1 << NUM_SOURCES) - 1)   # source 0 does not exist
        elif off >= 0x200000:
            ctx, reg = divmod(off - 0x200000, 0x1000)
            if ctx >= self.contexts:
                return
            if reg == 0:
                self.threshold[ctx] = value & PRIORITY_MAX
            elif reg == 4 and 0 < value < NUM_SOURCES:      # complete: no new request
                self.claimed &= ~(1 << value)
        self.update()
