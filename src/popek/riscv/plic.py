"""PLIC: the platform-level interrupt controller (RISC-V PLIC spec v1.0.0).

Register map (offsets from 0x0C00_0000), two contexts per hart (M, then S):

    0x000000 + 4*src          priority of source src (1..NUM_SOURCES-1)
    0x001000                  pending bits (read-only)
    0x002000 + 0x80*ctx       enable bits of a context
    0x200000 + 0x1000*ctx     priority threshold; +4: claim (read) / complete (write)

Sources are level-triggered: a device raises its line with :meth:`set_level`; a
claimed source is not pending again until it is completed.
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
        self.level = [False] * NUM_SOURCES
        self.pending = [False] * NUM_SOURCES
        self.claimed = [False] * NUM_SOURCES
        self.enable = [0] * self.contexts       # bitmask over sources
        self.threshold = [0] * self.contexts

    def set_level(self, src: int, level: bool) -> None:
        self.level[src] = level
        if level and not self.claimed[src]:
            self.pending[src] = True
        elif not level:
            self.pending[src] = False
        self.update()

    def _best(self, ctx: int) -> int:
        best, best_prio = 0, self.threshold[ctx]
        en = self.enable[ctx]
        for src in range(1, NUM_SOURCES):
            if self.pending[src] and en >> src & 1 and self.priority[src] > best_prio:
                best, best_prio = src, self.priority[src]
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
            return sum(1 << b for b in range(32)
                       if 32 * word + b < NUM_SOURCES and self.pending[32 * word + b])
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
                self.pending[src] = False
                self.claimed[src] = True
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
            elif reg == 4 and 0 < value < NUM_SOURCES and self.claimed[value]:   # complete
                self.claimed[value] = False
                if self.level[value]:
                    self.pending[value] = True
        self.update()
