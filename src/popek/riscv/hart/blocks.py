"""Code: decoding guest instructions into blocks, finding them, and dropping them
when their bytes change.

A block is a run of decoded instructions (superblock): it runs on through
conditional branches (a taken one is a *side exit*, unless it jumps forward to an
instruction of the block: a *skip*, riscv/blockshape.py), follows direct jumps that
stay in its page, and ends at an indirect jump, a system instruction, a page
end, an instruction it already holds, or ``MAX_BLOCK`` instructions.  CSR
instructions get a block of their own so counter reads are exact.  Blocks are
cached by physical address; the dispatcher finds them through a per-privilege
cache from virtual pc, flushed with the fetch TLB.  Every page with decoded code
is watched (devices/memory.py), so a store or DMA into it drops exactly the
blocks it overlaps.
"""

from __future__ import annotations

from popek.riscv import blockshape, isa, translate, traps
from popek.riscv.mmu import FETCH
from popek.riscv.traps import Trap

M64 = (1 << 64) - 1
MAX_BLOCK = 128         # instructions; bounds how late an interrupt can be seen (64: 14 % more
                        # dispatches on a U-Boot boot; 256: no fewer than 128)
# Cache bounds.  Eviction is wholesale (as QEMU's tb_flush): simple, and rare
# at these sizes.
MAX_CACHED_BLOCKS = 32768
# A block is translated once it has been interpreted this many times: code that
# runs a few times (most of a boot) is not worth a compile().  Compiled in-process,
# a translation costs about as much as 200 interpreted runs of the block, and 64
# balanced the two (OpenSBI+U-Boot: 16 translated ~800 blocks, 64 ~500, and the
# boot was ~15 % faster).  With a background worker (compiler.py) compiling costs the
# hart little, so hot code may ask sooner: 32 was ~5 % faster than 64 or 16 there
# (6 alternated runs each; 8 was slower again: the worker falls behind).
TRANSLATE_AFTER = 32
MAX_CACHED_OPS = 65536  # interpreter closures, shared by overlapping blocks


class Block:
    """A decoded run of instructions starting at virtual ``pc`` / physical ``pa``.

    It runs as ``ops`` (interpreter closures) until it has run ``heat`` times,
    then as ``fn``, its translation (see translate.py); from its first run if the
    code cache (codecache.py) already holds its compiled code.
    """
    __slots__ = ("pc", "pa", "lo", "end", "next_pc", "n", "ops", "insns", "fn", "heat", "skips")

    def __init__(self, pc, pa, lo, end, next_pc, insns, heat):
        # pa: where it starts (its key); lo..end: the bytes of its page it was
        # decoded from (a block follows jumps within its page, so not only pa..).
        self.pc, self.pa, self.lo, self.end = pc, pa, lo, end
        self.next_pc = next_pc
        self.insns = insns            # [(pc, Decoded)], what the translator reads
        self.n = len(insns)
        self.ops = None               # the interpreter's closures (none if it runs translated
                                      # from its first run: code cache)
        self.fn = None
        self.heat = heat
        # Taken branches that stay in the block (blockshape.py): {index: target index}.
        self.skips = blockshape.skips(insns)

    def index_of(self, pc: int) -> int:
        """Where the instruction at ``pc`` is in the block (build_block puts each
        instruction in a block once)."""
        for i, (ipc, _) in enumerate(self.insns):
            if ipc == pc:
                return i
        return 0


class HartBlocks:
    """Mixed into :class:`~popek.riscv.hart.Hart`."""

    def fetch_page(self, pc: int) -> int:
        """Physical page of ``pc`` for instruction fetch (fills the fetch TLB)."""
        pa = self.translate(pc, FETCH)
        if not self.ram.contains(pa, 2):
            m = self.bus.find(pa)
            if m is None or not hasattr(m.device, "fetch"):
                raise Trap(traps.INSN_ACCESS_FAULT, pc)
            self.itlbs[self.mode_key][pc >> 12] = pa & ~0xFFF
        return pa & ~0xFFF

    def _read_code(self, pa: int, size: int, va: int) -> int:
        ram = self.ram
        if ram.base <= pa and pa + size <= ram.end:
            off = pa - ram.base
            return int.from_bytes(ram.data[off:off + size], "little")
        m = self.bus.find(pa)
        if m is None or not hasattr(m.device, "fetch"):
            raise Trap(traps.INSN_ACCESS_FAULT, va)
        return m.device.fetch(pa - m.base, size)

    def build_block(self, pc: int, pa: int) -> Block:
        if len(self.blocks) >= MAX_CACHED_BLOCKS:
            self.invalidate_all_code()
        insns = []
        start_pa, cur, vpc = pa, pa, pc
        lo = hi = pa
        visited = set()
        page_end = (pa | 0xFFF) + 1
        cacheable = True
        # Code in RAM (nearly all of it) is read as halfwords straight from RAM.
        ram = self.ram
        m16 = self.m16 if ram.base <= pa and page_end <= ram.end else None
        decode, rewrite = self.isa.decode, self.rewrite
        while True:
            if cur in visited:
                break       # back at an instruction the block has (after a followed jump)
            if m16 is not None:
                i = (cur - ram.base + ram.data_offset) >> 1
                half = m16[i]
            else:
                half = self._read_code(cur, 2, vpc)
            if half & 3 == 3:
                if cur + 4 > page_end:
                    if insns:
                        break
                    # A 32-bit instruction straddling two pages: fetch its upper half
                    # through translation every time (never cached).
                    hi_pa = self.translate((vpc + 2) & M64, FETCH)
                    half |= self._read_code(hi_pa, 2, (vpc + 2) & M64) << 16
                    cacheable = False
                elif m16 is not None:
                    half |= m16[i + 1] << 16
                else:
                    half = self._read_code(cur, 4, vpc)
            d = decode(half)
            if rewrite is not None:
                d = rewrite(vpc, d)
            if d.insn.alone and insns:
                break
            insns.append((vpc, d))
            if cur < lo:
                lo = cur
            visited.add(cur)
            cur += d.length
            if cur > hi:
                hi = cur
            if d.insn.name == "jal" and cacheable and len(insns) < MAX_BLOCK:
                # Follow a direct jump that stays in this page (same translation), so
                # loops and calls need no trip through the dispatcher.
                target = (vpc + d.imm) & M64
                target_pa = (start_pa & ~0xFFF) | (target & 0xFFF)
                if target >> 12 == vpc >> 12 and target_pa not in visited:
                    cur, vpc = target_pa, target
                    continue
            vpc = (vpc + d.length) & M64
            if d.insn.ends_block or d.insn.alone or len(insns) >= MAX_BLOCK or cur >= page_end \
                    or not cacheable:
                break
        blk = Block(pc, start_pa, lo, hi, vpc, insns,
                    TRANSLATE_AFTER if (self.translate_blocks and cacheable) else 0)
        if blk.heat:
            blk.fn = translate.translated_before(self, insns, pc, self.tstats, self.flavour)
        if blk.fn is None:
            blk.ops = self._ops(insns)
        self.stats["blocks_built"] += 1
        if cacheable:
            old = self.blocks.get(start_pa)
            self.blocks[start_pa] = blk
            ram = self.ram
            if ram.base <= start_pa < ram.end:
                page = (start_pa - ram.base) >> 12
                lst = self.blocks_by_page.get(page)
                if old is not None and lst is not None and old in lst:
                    lst.remove(old)         # same code seen at another virtual address
                if lst is None:
                    lst = self.blocks_by_page[page] = []
                    ram.watch(page, self._code_written)     # (leaves every write TLB)
                lst.append(blk)
        return blk

    def _ops(self, insns: list) -> list:
        """The interpreter's closures for a block, shared with the blocks it overlaps.

        An op is a pure function of its instruction bits, its pc and whether it
        ends its block, so it stays valid whatever is later written to memory."""
        cache = self.op_cache
        last = len(insns) - 1
        ops = []
        for i, (pc, d) in enumerate(insns):
            key = (pc, d.word, i == last)
            op = cache.get(key)
            if op is None:
                if len(cache) >= MAX_CACHED_OPS:
                    cache.clear()
                op = isa.make_op(self, d, pc, i == last)
                if self.trace:
                    op = traced(op, self.trace, pc, isa.disassemble(d, pc))
                cache[key] = op
            ops.append(op)
        return ops

    def _code_written(self, off: int, length: int) -> None:
        """A store or DMA hit a page with decoded code: drop the blocks it overlaps."""
        ram = self.ram
        lo, hi = ram.base + off, ram.base + off + length
        for page in range(off >> 12, ((off + length - 1) >> 12) + 1):
            lst = self.blocks_by_page.get(page)
            if not lst:
                continue
            keep = []
            for blk in lst:
                if blk.lo < hi and lo < blk.end:
                    if self.blocks.get(blk.pa) is blk:
                        del self.blocks[blk.pa]
                    for vc in self.vcaches.values():
                        if vc.get(blk.pc) is blk:
                            del vc[blk.pc]
                    self.stats["code_invalidations"] += 1
                    self.limit = 0      # a translated self-loop must not run on stale code
                else:
                    keep.append(blk)
            if keep:
                self.blocks_by_page[page] = keep
            else:
                del self.blocks_by_page[page]
                ram.unwatch(page, self._code_written)

    def set_rewrite(self, name: str | None) -> None:
        """Rewrite every instruction as it is decoded with the function ``name``
        (``"module:function"``, translate.py's rewrite hook), or stop (None); the code
        decoded so far is dropped, and the flavour names the rewrite."""
        self.rewrite = translate.rewrite_function(name) if name else None
        self.rewrite_name = name
        self.flavour = translate.flavour(self.isa, name)
        self.invalidate_all_code()

    def invalidate_all_code(self) -> None:
        for page in self.blocks_by_page:
            self.ram.unwatch(page, self._code_written)
        self.op_cache.clear()
        self.blocks.clear()
        self.blocks_by_page.clear()
        for vc in self.vcaches.values():
            vc.clear()

    def _find_block(self, pc: int) -> Block | None:
        """The dispatcher's slow path: translate the pc, find or build its block."""
        self.stats["block_misses"] += 1
        try:
            pg = self.itlb.get(pc >> 12)
            if pg is None:
                pg = self.fetch_page(pc)
            pa = pg | (pc & 0xFFF)
            blk = self.blocks.get(pa)
            if blk is None or blk.pc != pc:
                if blk is not None:     # the same code at another virtual address (ASLR)
                    self.stats["block_aliases"] += 1
                blk = self.build_block(pc, pa)
        except Trap as t:
            self.take_trap(t.cause, t.tval, pc, False, t.gpa, t.gva, t.tinst)
            return None
        if self.blocks.get(blk.pa) is blk:
            vc = self.vcache
            if len(vc) >= MAX_CACHED_BLOCKS:
                vc.clear()
            vc[pc] = blk
        return blk


def traced(op, trace, pc: int, text: str):
    """``op``, writing its instruction to the trace each time it runs (``--trace``:
    exactly the instructions that ran, in order; the trace runs interpreted only)."""
    def run():
        trace(pc, text)
        return op()
    return run
