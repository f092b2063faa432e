"""The hart's memory paths: software TLBs, loads and stores (fast and slow), atomics.

Loads and stores go through a software TLB per privilege level and access type
that holds RAM pages only (the layout is in mmu.py: a misaligned address misses);
devices, faults and misaligned accesses take the slow path, which translates
(one page walk, mmu.py), then goes to RAM or the bus.  Data accesses use the TLBs
of the *effective* privilege (MPRV/MPP).  Pages holding decoded code (or watched
by a device such as HTIF) are kept out of the write TLBs, so stores to them take
the slow path, which tells the watchers (self-modifying code, DMA).
"""

from __future__ import annotations

import logging

from popek.riscv import mmu, traps
from popek.riscv.csrs import M, MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_MPRV, MSTATUS_MXR, \
    MSTATUS_SUM
from popek.riscv.hart.virt import VIRTUAL
from popek.riscv.hcsrs import MSTATUS_MPV
from popek.riscv.mmu import FETCH, LOAD, PAGE_BASE, STORE, TLB_KEY
from popek.riscv.traps import Trap

log = logging.getLogger(__name__)

M64 = (1 << 64) - 1
PAGE = 0x1000
MAX_TLB_ENTRIES = 4096  # per TLB (fetch/load/store × U/S/M, and with H, VU/VS)
MAX_SCANNED_DISPATCH = 512  # a page fence searches a dispatch cache this big, else empties it
K1, K2, K4, K8 = (TLB_KEY[size] for size in (1, 2, 4, 8))


class HartMemory:
    """Mixed into :class:`~popek.riscv.hart.Hart` (one class, its concerns in modules)."""

    # ------------------------------------------------------------------ TLBs
    def _select_data_tlbs(self) -> None:
        """Loads and stores use the TLBs of the effective mode: M-mode with MPRV set
        accesses memory as MPP (and, with H, MPV) says."""
        ms = self.mstatus
        if self.priv == M and ms & MSTATUS_MPRV:
            key = (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
            if ms & MSTATUS_MPV and key != M:
                key |= VIRTUAL
        else:
            key = self.mode_key
        self.data_key = key
        self.rtlb = self.rtlbs[key]
        self.wtlb = self.wtlbs[key]

    def flush_tlbs(self, data_only: bool = False) -> None:
        self.stats["tlb_flushes"] += 1
        for p in self.translated_modes:
            self.rtlbs[p].clear()
            self.wtlbs[p].clear()
            if not data_only:
                self.itlbs[p].clear()
                self.vcaches[p].clear()
        if not data_only:
            self.superpages.clear()

    def _forget_fast_stores(self) -> None:
        """A RAM page became watched: no write TLB may hold it.  (The TLBs are keyed by
        virtual address, so all of them go; code pages are decoded rarely.)"""
        for tlb in self.wtlbs.values():
            tlb.clear()

    def flush_page(self, va: int) -> None:
        """``sfence.vma`` of one address: drop what translated its page, unless a
        superpage leaf may have (then everything goes: its other 4 KiB pieces are
        cached under their own keys).  Linux fences one address after every page
        it maps (update_mmu_cache), so this is most fences: a full flush there cost
        a fifth of a boot in refilled TLBs and dispatch caches."""
        sp = self.superpages
        if sp and any((va >> (12 + 9 * level), level) in sp for level in (1, 2, 3)):
            self.flush_tlbs()
            return
        self.stats["tlb_page_flushes"] += 1
        key, page = va & PAGE_BASE, va >> 12
        for p in self.translated_modes:
            self.rtlbs[p].pop(key, None)
            self.wtlbs[p].pop(key, None)
            if self.itlbs[p].pop(page, None) is not None:
                # Blocks are found through the dispatch cache only while their page is
                # in the fetch TLB (translate() keeps it so): those of this page go too.
                # A big cache is emptied rather than searched (a guest fencing its own
                # code page in a loop would pay a search of 32,768 entries each time).
                vc = self.vcaches[p]
                if len(vc) > MAX_SCANNED_DISPATCH:
                    vc.clear()
                else:
                    for pc in [pc for pc in vc if pc >> 12 == page]:
                        del vc[pc]

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
        priv = self.mode_key if access == FETCH else self.data_key
        walked = True
        if priv & VIRTUAL:                  # V=1 (or MPRV with MPV): two stages (hart/virt.py)
            pa = self.two_stage_walk(va, access, priv & ~VIRTUAL)
        elif priv == M or not self.satp >> 60:
            pa, walked = va, False
        else:
            ms = self.mstatus
            refs = self.walk_stats.pte_reads
            try:
                pa = mmu.walk(self.ram, self.satp, va, access, priv, bool(ms & MSTATUS_SUM),
                              bool(ms & MSTATUS_MXR), self.walk_stats)[0]
            finally:
                self.cycle_extra += (self.walk_stats.pte_reads - refs) * self.costs.PAGE_WALK_REF
        if walked:
            # (V=1: the VS-stage's leaf, or the G-stage's under a Bare vsatp, which only
            # an HFENCE.GVMA, a full flush, fences)
            level = self.walk_stats.leaf_level
            if level:                   # a superpage: a fence of any address in it drops all
                if len(self.superpages) >= MAX_TLB_ENTRIES:
                    self.flush_tlbs()
                self.superpages.add((va >> (12 + 9 * level), level))
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
                if access == FETCH:     # the dispatch cache holds only pages the fetch TLB has
                    self.vcaches[priv].clear()
            tlb[key] = value
        return pa

    def load_slow(self, va: int, size: int) -> int:
        if va & (size - 1):
            if (va & 0xFFF) + size > PAGE:
                # Misaligned across a page boundary: byte by byte (each byte may fault).
                return sum(self.load8((va + i) & M64) << (8 * i) for i in range(size))
            # Misaligned within a RAM page the TLB knows: no walk (Linux probes the
            # speed of misaligned accesses at boot, millions of them).
            o = self.rtlb.get(va & PAGE_BASE)
            if o is not None:
                off = va + o
                return int.from_bytes(self.ram.data[off:off + size], "little")
        return self.read_physical(va, self.translate(va, LOAD), size)

    def read_physical(self, va: int, pa: int, size: int) -> int:
        """The ``size`` bytes at physical ``pa`` (``va``: for a fault's tval): RAM or a device."""
        ram = self.ram
        if ram.base <= pa and pa + size <= ram.end:
            off = pa - ram.base
            return int.from_bytes(ram.data[off:off + size], "little")
        return self._mmio_read(va, pa, size)

    def store_slow(self, va: int, size: int, v: int) -> None:
        if va & (size - 1):
            if (va & 0xFFF) + size > PAGE:
                for i in range(size):
                    self.store8((va + i) & M64, v >> (8 * i))
                return
            o = self.wtlb.get(va & PAGE_BASE)       # (pages with code or watchers are not there)
            if o is not None:
                off = va + o
                self.ram.data[off:off + size] = v.to_bytes(size, "little")
                return
        self.write_physical(va, self.translate(va, STORE), size, v)

    def write_physical(self, va: int, pa: int, size: int, v: int) -> None:
        """Store ``v`` at physical ``pa`` (``va``: for a fault's tval): RAM (telling the
        page's watchers: code, devices) or a device."""
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


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v
