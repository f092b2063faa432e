"""One RV64 hart: architectural state, memory access, the block executor, traps.

How it runs (see docs/ARCHITECTURE.md for the picture):

* Code is decoded once into *blocks*: runs of closures made from the single ISA
  table (:mod:`popek.riscv.isa`), ending at a control transfer, a system
  instruction or a page end.  Blocks are cached by physical address.
* Interrupts, the instruction budget and the clock are looked at only between
  blocks.  CSR instructions get a block of their own so counter reads are exact.
* Loads and stores go through a software TLB per privilege level (page → where
  it is in RAM; the layout is in mmu.py) that holds RAM pages only; devices and
  faults take the slow path.  Pages holding decoded code (or watched by a device such as HTIF)
  are kept out of the write TLB, so stores to them take the slow path, which
  invalidates the stale blocks (self-modifying code, reloaded kernels, DMA).
* Traps are raised as :class:`Trap` anywhere and taken in :meth:`take_trap`.
"""

from __future__ import annotations

import logging
import time

from popek import costmodel
from popek.riscv import csrs, isa, mmu, translate, traps
from popek.riscv.csrs import (MSTATUS_MIE, MSTATUS_MPIE, MSTATUS_MPP, MSTATUS_MPP_SHIFT,
                              MSTATUS_MPRV, MSTATUS_MXR, MSTATUS_SIE, MSTATUS_SPIE,
                              MSTATUS_SPP, MSTATUS_SUM, MSTATUS_TSR, MSTATUS_TVM, MSTATUS_TW)
from popek.riscv.mmu import FETCH, LOAD, PAGE_BASE, STORE, TLB_KEY
from popek.riscv.traps import Trap

log = logging.getLogger(__name__)

U, S, M = 0, 1, 3
M64 = (1 << 64) - 1
PAGE = 0x1000
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
MAX_TLB_ENTRIES = 4096  # per TLB (there are 9: fetch/load/store × U/S/M)
K1, K2, K4, K8 = (TLB_KEY[size] for size in (1, 2, 4, 8))


class Block:
    """A decoded run of instructions starting at virtual ``pc`` / physical ``pa``.

    It runs as ``ops`` (interpreter closures) until it has run ``heat`` times,
    then as ``fn``, its translation (see translate.py); from its first run if the
    code cache (codecache.py) already holds its compiled code.
    """
    __slots__ = ("pc", "pa", "lo", "end", "next_pc", "n", "ops", "insns", "fn", "heat")

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

    def index_of(self, pc: int) -> int:
        """Where the instruction at ``pc`` is in the block (build_block puts each
        instruction in a block once)."""
        for i, (ipc, _) in enumerate(self.insns):
            if ipc == pc:
                return i
        return 0


class Hart:
    def __init__(self, machine, hartid: int = 0):
        self.machine = machine
        self.ram = machine.ram
        self.bus = machine.bus
        self.hartid = hartid
        ram = self.ram
        self.m8, self.m16, self.m32, self.m64 = ram.m8, ram.m16, ram.m32, ram.m64
        self.x = [0] * 33                 # x0..x31, and 32: where writes to x0 go
        self.pc = 0
        self.priv = M
        self.instret = 0
        self.cycle_offset = self.instret_offset = 0
        # Modelled cycles beyond one per instruction (costmodel.py): trap entries and
        # returns, page-walk memory references, TLB flushes; under the VMM, each
        # exit's cost.  The cycle counter counts them; instret does not.
        self.cycle_extra = 0
        # CSR state (see csrs.py for the registered views of it).
        self.mstatus = csrs.MSTATUS_UXL | csrs.MSTATUS_SXL
        self.medeleg = self.mideleg = 0
        self.mie = 0
        self.irq_lines = 0                # MSIP/MTIP/MEIP/SEIP driven by devices
        self.mip_sw = 0                   # SSIP/STIP/SEIP written by software
        self.mip = 0
        self.mtvec = self.stvec = 0
        self.mepc = self.sepc = self.mcause = self.scause = self.mtval = self.stval = 0
        self.mscratch = self.sscratch = 0
        self.mcounteren = self.scounteren = self.mcountinhibit = 0
        self.menvcfg = self.senvcfg = 0
        self.satp = 0
        self.pmpcfg = [0] * (csrs.PMP_COUNT // 8)
        self.pmpaddr = [0] * csrs.PMP_COUNT
        self.reservation = None
        # Run control: the executor runs while instret < limit; anything may set
        # limit = 0 to make it return at the next block boundary.
        self.limit = 0
        self.waiting = False              # in wfi with nothing pending
        # Caches.
        self.blocks: dict[int, Block] = {}
        self.blocks_by_page: dict[int, list[Block]] = {}
        self.itlbs = {U: {}, S: {}, M: {}}
        self.rtlbs = {U: {}, S: {}, M: {}}
        self.wtlbs = {U: {}, S: {}, M: {}}
        self.itlb = self.itlbs[M]
        # Virtual pc → block, per privilege: what the dispatcher looks up.  It holds
        # only what the fetch TLB would translate, so it is flushed with it.
        self.vcaches = {U: {}, S: {}, M: {}}
        self.vcache = self.vcaches[M]
        self.rtlb = self.rtlbs[M]
        self.wtlb = self.wtlbs[M]
        self.data_priv = M
        self.walk_stats = mmu.WalkStats()
        self.stats = {"traps": 0, "interrupts": 0, "blocks_built": 0, "tlb_flushes": 0,
                      "code_invalidations": 0, "block_misses": 0, "fence_i": 0}
        self.trace = None                 # callable(pc, text) when --trace is on
        # The VMM stands where M-mode software would: with a hook set, a trap that
        # reaches M-mode calls it (cause, tval, epc, interrupt) instead of mtvec.
        self.m_trap_hook = None
        self.translate_blocks = True      # False: interpret only (--engine interpret)
        self.tstats = translate.TranslationStats()
        self.code_cache = None            # codecache.CodeCache: compiled blocks, maybe kept on disk
        self.compiler = None              # compiler.BackgroundCompiler, if blocks compile elsewhere
        self.awaiting: dict[tuple, list[Block]] = {}   # block key -> blocks awaiting its code
        self.tidx = 0                     # translated code: index of the instruction in a slow path
        self.op_cache: dict[tuple, object] = {}   # (pc, bits, ends block) -> interpreter op
        self.profile = None               # {block pc: [executions, seconds]} with --profile

    # ------------------------------------------------------------------ state
    def reset(self, pc: int) -> None:
        self.pc = pc
        self.set_priv(M)

    def set_priv(self, p: int) -> None:
        self.priv = p
        self.itlb = self.itlbs[p]
        self.vcache = self.vcaches[p]
        self._select_data_tlbs()

    def _select_data_tlbs(self) -> None:
        ms = self.mstatus
        dp = (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT if (self.priv == M and ms & MSTATUS_MPRV) \
            else self.priv
        self.data_priv = dp
        self.rtlb = self.rtlbs[dp]
        self.wtlb = self.wtlbs[dp]

    def set_mstatus(self, v: int) -> None:
        old = self.mstatus
        self.mstatus = v
        if (old ^ v) & (MSTATUS_SUM | MSTATUS_MXR):
            self._flush_tlbs(data_only=True)
        if (old ^ v) & (MSTATUS_MPRV | MSTATUS_MPP):
            self._select_data_tlbs()

    def set_satp(self, v: int) -> None:
        self.satp = v
        self._flush_tlbs()

    def _flush_tlbs(self, data_only: bool = False) -> None:
        self.stats["tlb_flushes"] += 1
        for p in (U, S):
            self.rtlbs[p].clear()
            self.wtlbs[p].clear()
            if not data_only:
                self.itlbs[p].clear()
                self.vcaches[p].clear()

    def _recompute_mip(self) -> None:
        self.mip = self.irq_lines | self.mip_sw

    def set_mie(self, v):
        self.mie = v

    def set_mideleg(self, v):
        self.mideleg = v

    def set_mip_sw(self, v):
        self.mip_sw = v
        self._recompute_mip()

    def set_irq_line(self, bit: int, level: bool) -> None:
        """Devices (CLINT, PLIC) drive the hardware interrupt-pending bits here."""
        if level:
            self.irq_lines |= bit
        else:
            self.irq_lines &= ~bit
        self._recompute_mip()

    def read_time(self) -> int:
        return self.machine.mtime()

    # --------------------------------------------------------- memory: fast
    # Each fast path is one dict lookup and one memoryview index; anything that
    # is not an aligned access to a cached RAM page goes to the slow path (the TLB
    # layout is in mmu.py: a misaligned address misses).
    def load8(self, va):
        o = self.rtlb.get(va & K1)
        if o is not None:
            return self.m8[va + o]
        return self.load_slow(va, 1)

    def load16(self, va):
        o = self.rtlb.get(va & K2)
        if o is not None:
            return self.m16[(va + o) >> 1]
        return self.load_slow(va, 2)

    def load32(self, va):
        o = self.rtlb.get(va & K4)
        if o is not None:
            return self.m32[(va + o) >> 2]
        return self.load_slow(va, 4)

    def load64(self, va):
        o = self.rtlb.get(va & K8)
        if o is not None:
            return self.m64[(va + o) >> 3]
        return self.load_slow(va, 8)

    def store8(self, va, v):
        o = self.wtlb.get(va & K1)
        if o is not None:
            self.m8[va + o] = v & 0xFF
        else:
            self.store_slow(va, 1, v & 0xFF)

    def store16(self, va, v):
        o = self.wtlb.get(va & K2)
        if o is not None:
            self.m16[(va + o) >> 1] = v & 0xFFFF
        else:
            self.store_slow(va, 2, v & 0xFFFF)

    def store32(self, va, v):
        o = self.wtlb.get(va & K4)
        if o is not None:
            self.m32[(va + o) >> 2] = v & 0xFFFFFFFF
        else:
            self.store_slow(va, 4, v & 0xFFFFFFFF)

    def store64(self, va, v):
        o = self.wtlb.get(va & K8)
        if o is not None:
            self.m64[(va + o) >> 3] = v
        else:
            self.store_slow(va, 8, v)

    # --------------------------------------------------------- memory: slow
    # Translated code calls these on a TLB miss: ``idx`` says which instruction
    # of its block is accessing, for a trap's pc (see translate.py).
    def load_at(self, idx: int, va: int, size: int) -> int:
        self.tidx = idx
        return self.load_slow(va, size)

    def store_at(self, idx: int, va: int, size: int, v: int) -> None:
        self.tidx = idx
        self.store_slow(va, size, v)

    def translate(self, va: int, access: int) -> int:
        """Virtual → physical for ``access``, filling the TLB for RAM pages."""
        priv = self.priv if access == FETCH else self.data_priv
        if priv == M or not self.satp >> 60:
            pa = va
        else:
            ms = self.mstatus
            refs = self.walk_stats.pte_reads
            try:
                pa = mmu.walk(self.ram, self.satp, va, access, priv, bool(ms & MSTATUS_SUM),
                              bool(ms & MSTATUS_MXR), self.walk_stats)
            finally:
                self.cycle_extra += (self.walk_stats.pte_reads - refs) * costmodel.PAGE_WALK_REF
        ram = self.ram
        page = pa & ~0xFFF
        if ram.base <= page < ram.end:
            off = page - ram.base
            if access == FETCH:
                tlb, key, value = self.itlbs[priv], va >> 12, page
            else:
                if access == STORE:
                    if (off >> 12) in ram.watchers:
                        return pa
                    tlb = self.wtlbs[priv]
                else:
                    tlb = self.rtlbs[priv]
                key = va & PAGE_BASE
                value = off - key                   # RAM offset = va + value (mmu.py)
            if len(tlb) >= MAX_TLB_ENTRIES:
                tlb.clear()
            tlb[key] = value
        return pa

    def load_slow(self, va: int, size: int) -> int:
        if va & (size - 1) and (va & 0xFFF) + size > PAGE:
            # Misaligned across a page boundary: done byte by byte (each byte may fault).
            return sum(self.load8((va + i) & M64) << (8 * i) for i in range(size))
        pa = self.translate(va, LOAD)
        ram = self.ram
        if ram.base <= pa and pa + size <= ram.end:
            off = pa - ram.base
            return int.from_bytes(ram.data[off:off + size], "little")
        return self._mmio_read(va, pa, size)

    def store_slow(self, va: int, size: int, v: int) -> None:
        if va & (size - 1) and (va & 0xFFF) + size > PAGE:
            for i in range(size):
                self.store8((va + i) & M64, v >> (8 * i))
            return
        pa = self.translate(va, STORE)
        ram = self.ram
        if ram.base <= pa and pa + size <= ram.end:
            off = pa - ram.base
            ram.data[off:off + size] = v.to_bytes(size, "little")
            ram.note_write(off, size)
            return
        self._mmio_write(va, pa, size, v)

    def _mmio_read(self, va, pa, size):
        m = self.bus.find(pa)
        if m is None or pa + size > m.end or pa & (size - 1):
            log.debug("load access fault: va=%#x pa=%#x size=%d pc=%#x", va, pa, size, self.pc)
            raise Trap(traps.LOAD_ACCESS_FAULT, va)
        return m.device.read(pa - m.base, size) & ((1 << (8 * size)) - 1)

    def _mmio_write(self, va, pa, size, v):
        m = self.bus.find(pa)
        if m is None or pa + size > m.end or pa & (size - 1):
            log.debug("store access fault: va=%#x pa=%#x size=%d pc=%#x", va, pa, size, self.pc)
            raise Trap(traps.STORE_ACCESS_FAULT, va)
        m.device.write(pa - m.base, size, v)

    # ----------------------------------------------------------- atomics
    def _sext(self, v, size):
        return (((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000) & M64 if size == 4 else v

    def load_reserved(self, va, size):
        if va & (size - 1):
            raise Trap(traps.LOAD_MISALIGNED, va)
        v = self.load32(va) if size == 4 else self.load64(va)
        self.reservation = self.translate(va, LOAD)
        return self._sext(v, size)

    def store_conditional(self, va, size, v):
        if va & (size - 1):
            raise Trap(traps.STORE_MISALIGNED, va)
        pa = self.translate(va, STORE)
        ok = self.reservation == pa
        self.reservation = None
        if not ok:
            return 1
        self._rmw_write(va, pa, size, v)
        return 0

    _AMO = {
        "swap": lambda a, b, bits: b,
        "add": lambda a, b, bits: a + b,
        "xor": lambda a, b, bits: a ^ b,
        "and": lambda a, b, bits: a & b,
        "or": lambda a, b, bits: a | b,
        "min": lambda a, b, bits: a if _signed(a, bits) < _signed(b, bits) else b,
        "max": lambda a, b, bits: a if _signed(a, bits) > _signed(b, bits) else b,
        "minu": lambda a, b, bits: a if a < b else b,
        "maxu": lambda a, b, bits: a if a > b else b,
    }

    def amo(self, va, size, op, src):
        if va & (size - 1):
            raise Trap(traps.STORE_MISALIGNED, va)
        pa = self.translate(va, STORE)       # AMO faults are store/AMO faults
        ram = self.ram
        if not (ram.base <= pa and pa + size <= ram.end):
            raise Trap(traps.STORE_ACCESS_FAULT, va)   # no atomics on devices
        mask = (1 << (8 * size)) - 1
        off = pa - ram.base
        old = int.from_bytes(ram.data[off:off + size], "little")
        self._rmw_write(va, pa, size, self._AMO[op](old, src & mask, 8 * size) & mask)
        return self._sext(old, size)

    def _rmw_write(self, va, pa, size, v):
        ram = self.ram
        if not (ram.base <= pa and pa + size <= ram.end):
            raise Trap(traps.STORE_ACCESS_FAULT, va)
        off = pa - ram.base
        ram.data[off:off + size] = (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        ram.note_write(off, size)

    # ------------------------------------------------------------- CSRs
    def csr_access(self, num, op, value, do_read, do_write):
        c = csrs.CSRS.get(num)
        priv = self.priv
        if c is None or (num >> 8) & 3 > priv or (do_write and num >> 10 == 3):
            raise Trap(traps.ILLEGAL_INSN, None)
        if 0xC00 <= num <= 0xC1F and priv != M:
            bit = 1 << (num & 31)
            if not self.mcounteren & bit or (priv == U and not self.scounteren & bit):
                raise Trap(traps.ILLEGAL_INSN, None)
        if num == 0x180 and priv == S and self.mstatus & MSTATUS_TVM:
            raise Trap(traps.ILLEGAL_INSN, None)
        old = c.read(self)
        if do_write:
            base = old
            if num == 0x344:        # read-modify-write of mip sees software's SEIP only
                base = (old & ~csrs.MIP_SEIP) | (self.mip_sw & csrs.MIP_SEIP)
            new = value if op == 0 else (base | value if op == 1 else base & ~value)
            if c.write is None:
                raise Trap(traps.ILLEGAL_INSN, None)
            c.write(self, new & M64)
        return old

    # ------------------------------------------------------- privileged ops
    def ecall(self):
        raise Trap(traps.ECALL_FROM_U + self.priv, 0)

    def mret(self):
        if self.priv != M:
            raise Trap(traps.ILLEGAL_INSN, None)
        ms = self.mstatus
        mpp = (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
        ms = (ms & ~(MSTATUS_MIE | MSTATUS_MPP)) | MSTATUS_MPIE      # MPP ← U
        if self.mstatus & MSTATUS_MPIE:
            ms |= MSTATUS_MIE
        if mpp != M:
            ms &= ~MSTATUS_MPRV
        self.mstatus = ms
        self.reservation = None
        self.cycle_extra += costmodel.TRAP_RETURN
        self.set_priv(mpp)
        self.pc = self.mepc

    def sret(self):
        if self.priv == U or (self.priv == S and self.mstatus & MSTATUS_TSR):
            raise Trap(traps.ILLEGAL_INSN, None)
        ms = self.mstatus
        spp = S if ms & MSTATUS_SPP else U
        ms = (ms & ~(MSTATUS_SIE | MSTATUS_SPP | MSTATUS_MPRV)) | MSTATUS_SPIE
        if self.mstatus & MSTATUS_SPIE:
            ms |= MSTATUS_SIE
        self.mstatus = ms
        self.reservation = None
        self.cycle_extra += costmodel.TRAP_RETURN
        self.set_priv(spp)
        self.pc = self.sepc

    def wfi(self):
        if self.priv == U or (self.priv == S and self.mstatus & MSTATUS_TW):
            raise Trap(traps.ILLEGAL_INSN, None)
        if not self.mip & self.mie:
            self.waiting = True
            self.limit = 0

    def sfence_vma(self, va, rs1, asid, rs2):
        if self.priv == U or (self.priv == S and self.mstatus & MSTATUS_TVM):
            raise Trap(traps.ILLEGAL_INSN, None)
        self.cycle_extra += costmodel.TLB_FLUSH
        self._flush_tlbs()

    def read_cycle(self) -> int:
        return (self.instret + self.cycle_offset + self.cycle_extra) & M64

    def fence_i(self):
        # Nothing to do: every write to a page holding decoded code (stores, DMA,
        # A/D updates) already dropped exactly the blocks it touched, so the
        # "instruction cache" is always coherent, which fence.i permits.
        self.stats["fence_i"] += 1

    # ------------------------------------------------------------- traps
    def take_trap(self, cause: int, tval: int, epc: int, interrupt: bool = False) -> None:
        """Enter the trap handler for ``cause``: the one place that knows delegation."""
        self.stats["interrupts" if interrupt else "traps"] += 1
        self.reservation = None
        self.waiting = False
        priv = self.priv
        deleg = self.mideleg if interrupt else self.medeleg
        to_s = priv != M and (deleg >> cause) & 1
        if self.m_trap_hook is not None and not to_s:
            self.m_trap_hook(cause, tval & M64, epc, interrupt)     # charges its own costs
            return
        code = ((1 << 63) | cause) if interrupt else cause
        self.cycle_extra += costmodel.TRAP_ENTRY
        if to_s:
            self.scause, self.sepc, self.stval = code, epc, tval & M64
            ms = self.mstatus & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP)
            if self.mstatus & MSTATUS_SIE:
                ms |= MSTATUS_SPIE
            if priv == S:
                ms |= MSTATUS_SPP
            self.mstatus = ms
            self.set_priv(S)
            vec = self.stvec
        else:
            self.mcause, self.mepc, self.mtval = code, epc, tval & M64
            ms = self.mstatus & ~(MSTATUS_MPIE | MSTATUS_MIE | MSTATUS_MPP)
            if self.mstatus & MSTATUS_MIE:
                ms |= MSTATUS_MPIE
            ms |= priv << MSTATUS_MPP_SHIFT
            self.mstatus = ms
            self.set_priv(M)
            vec = self.mtvec
        base = vec & ~3
        self.pc = base + 4 * cause if (interrupt and vec & 1) else base
        if self.trace:
            self.trace(epc, f"trap {'irq' if interrupt else 'exc'} cause={cause} tval={tval:#x}")

    def check_interrupts(self) -> bool:
        """Take the highest-priority enabled pending interrupt, if any."""
        pending = self.mip & self.mie
        if not pending:
            return False
        priv, ms = self.priv, self.mstatus
        m_pending = pending & ~self.mideleg
        if m_pending and (priv != M or ms & MSTATUS_MIE):
            pending = m_pending
        else:
            pending &= self.mideleg
            if not pending or priv == M or (priv == S and not ms & MSTATUS_SIE):
                return False
        for irq in traps.IRQ_PRIORITY:
            if pending >> irq & 1:
                self.take_trap(irq, 0, self.pc, True)
                return True
        return False

    # ------------------------------------------------------------- code
    def fetch_page(self, pc: int) -> int:
        """Physical page of ``pc`` for instruction fetch (fills the fetch TLB)."""
        pa = self.translate(pc, FETCH)
        if not self.ram.contains(pa, 2):
            m = self.bus.find(pa)
            if m is None or not hasattr(m.device, "fetch"):
                raise Trap(traps.INSN_ACCESS_FAULT, pc)
            self.itlbs[self.priv][pc >> 12] = pa & ~0xFFF
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
            d = isa.decode(half)
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
            blk.fn = translate.translated_before(self, insns, pc, self.tstats)
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
                    ram.watch(page, self._code_written)
                    for p in (U, S, M):           # the page must leave the write TLBs
                        self.wtlbs[p].clear()
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
                op = cache[key] = isa.make_op(self, d, pc, i == last)
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

    def invalidate_all_code(self) -> None:
        for page in self.blocks_by_page:
            self.ram.unwatch(page, self._code_written)
        self.op_cache.clear()
        self.blocks.clear()
        self.blocks_by_page.clear()
        for vc in self.vcaches.values():
            vc.clear()

    # ------------------------------------------------------------- run
    def run(self) -> None:
        """Execute blocks until ``instret`` reaches ``limit`` (or limit is zeroed)."""
        if self.awaiting:
            self.install_translations()
        while self.instret < self.limit:
            if self.mip & self.mie and self.check_interrupts():
                continue
            blk = self.vcache.get(self.pc)
            if blk is None:
                blk = self._find_block(self.pc)
                if blk is None:
                    continue                    # the fetch trapped
            fn = blk.fn
            if fn is not None:                      # translated: the common case
                try:
                    fn()                            # it sets the pc on every way out
                except Trap as t:
                    self.instret += t.idx
                    self.take_trap(t.cause, t.tval, t.pc)
                continue
            self.pc = blk.next_pc                   # ops set it only at a jump or branch
            ops = blk.ops
            try:
                for op in ops:
                    if op():                        # a taken branch left the block
                        self.instret += ops.index(op) + 1
                        break
                else:
                    self.instret += blk.n
            except Trap as t:
                self.instret += blk.index_of(t.pc)  # the instructions before it retired
                self.take_trap(t.cause, t.tval, t.pc)
            if blk.heat:
                blk.heat -= 1
                if not blk.heat:
                    translate.translate_hot(self, blk)

    def stop_translating(self) -> None:
        """At power-off: collect what the worker is still compiling if it is to be
        kept on disk (the next run finds it), stop the worker, and save the code cache."""
        cache = self.code_cache
        if self.compiler is not None:
            if self.awaiting and cache is not None and cache.path:
                self.install_translations(wait=1.0)
            self.compiler.close()
        if cache is not None:
            cache.save()

    def install_translations(self, wait: float = 0.0) -> None:
        """Give blocks the code the background worker has compiled for them (waiting
        up to ``wait`` seconds for what is still outstanding); blocks it failed on
        are translated here."""
        c = self.compiler
        done, failed = c.drain(wait) if wait else c.poll()
        awaiting = self.awaiting
        for key, code, loop, lines in done:
            translate.install(self, key, code, loop, lines, awaiting.pop(key, ()))
        for key in failed:
            for blk in awaiting.pop(key, ()):
                blk.fn = translate.translate(self, blk.insns, blk.pc, self.tstats)

    def run_profiled(self) -> None:
        """:meth:`run`, one block at a time, timing each (``--profile``).

        Time and instructions go to the block at the pc where each step began.
        A device or wfi zeroing ``limit`` still ends the run.
        """
        prof = self.profile
        clock = time.perf_counter
        limit = self.limit
        while self.instret < limit:
            pc, before, t0 = self.pc, self.instret, clock()
            self.limit = self.instret + 1          # run() returns after one block
            self.run()
            stopped = self.limit == 0
            self.limit = 0 if stopped else limit
            blk = self.vcache.get(pc) or self.blocks.get(self.itlb.get(pc >> 12, -1) | (pc & 0xFFF))
            entry = prof.get(pc)
            if entry is None:
                entry = prof[pc] = [0, 0, 0.0, blk]
            entry[0] += 1
            entry[1] += self.instret - before
            entry[2] += clock() - t0
            if blk is not None:
                entry[3] = blk
            if stopped:
                return

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
                blk = self.build_block(pc, pa)
        except Trap as t:
            self.take_trap(t.cause, t.tval, pc)
            return None
        if self.trace:
            self.trace_block(blk)               # traced runs never cache in vcache
        elif self.blocks.get(blk.pa) is blk:
            vc = self.vcache
            if len(vc) >= MAX_CACHED_BLOCKS:
                vc.clear()
            vc[pc] = blk
        return blk

    def trace_block(self, blk: Block) -> None:
        pc, pa = blk.pc, blk.pa
        while pa < blk.end:
            word = self._read_code(pa, 2, pc)
            if word & 3 == 3 and pa + 4 <= blk.end:
                word = self._read_code(pa, 4, pc)
            d = isa.decode(word)
            self.trace(pc, isa.disassemble(d, pc))
            pc, pa = pc + d.length, pa + d.length


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v
