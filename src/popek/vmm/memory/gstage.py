"""Writing Sv39x4 tables (the H extension's G-stage format, which the RISC-V IOMMU's
second stage shares): one function that maps a page, or a 2 MiB megapage, below a
16 KiB root, taking table pages from the caller, and one that unmaps a page.  Nested paging fills the hart's
G-stage with it on demand (nested.py); the VMM's IOMMU driver builds each VM's DMA
tables with it up front (vmm/iommu.py)."""

from __future__ import annotations

from popek.riscv.mmu import PPN_MASK, PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X

HGATP_SV39X4 = 8
ROOT_PAGES = 4                       # the Sv39x4 root: 2048 entries, 16 KiB
MEGA = 1 << 21
# G-stage leaves need U (every access is checked as U-mode's); A and D are set so
# neither the hart nor the IOMMU (no hardware A/D updates) faults on them.
LEAF_RWX = PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D
LEAF_RW = LEAF_RWX & ~PTE_X          # DMA: read and write, never execute
LEAF_R = LEAF_RW & ~PTE_W            # DMA: read only (a page a device may only send)


def map_page(ram, root: int, gpa: int, hpa: int, alloc, leaf: int = LEAF_RWX,
             mega: bool = False) -> bool:
    """Map guest-physical ``gpa``'s page (its 2 MiB megapage if ``mega``: both
    addresses then megapage aligned) to ``hpa`` in the Sv39x4 tables at ``root`` in
    ``ram``.  ``alloc()`` gives a zeroed table page, or None when the caller has none
    left: then nothing is mapped and the result is False."""
    m64, ram_base = ram.m64, ram.base - ram.data_offset
    table = root
    for level, index_bits in ((2, 0x7FF), (1, 0x1FF)):
        slot = (table + ((gpa >> (12 + 9 * level)) & index_bits) * 8 - ram_base) >> 3
        if level == 1 and mega:
            m64[slot] = (((hpa & ~(MEGA - 1)) >> 12) << 10) | leaf
            return True
        pte = m64[slot]
        if pte & PTE_V:
            table = ((pte >> 10) & PPN_MASK) << 12
            continue
        nxt = alloc()
        if nxt is None:
            return False
        m64[slot] = ((nxt >> 12) << 10) | PTE_V
        table = nxt
    m64[(table + ((gpa >> 12) & 0x1FF) * 8 - ram_base) >> 3] = ((hpa >> 12) << 10) | leaf
    return True


def unmap_page(ram, root: int, gpa: int) -> bool:
    """Clear the 4 KiB leaf mapping ``gpa``'s page below ``root`` (the tables stay);
    False if there was none.  (The caller invalidates what caches it.)"""
    m64, ram_base = ram.m64, ram.base - ram.data_offset
    table = root
    for level, index_bits in ((2, 0x7FF), (1, 0x1FF)):
        pte = m64[(table + ((gpa >> (12 + 9 * level)) & index_bits) * 8 - ram_base) >> 3]
        if not pte & PTE_V or pte & (PTE_R | PTE_W | PTE_X):
            return False                   # nothing below, or a megapage: not ours to cut
        table = ((pte >> 10) & PPN_MASK) << 12
    slot = (table + ((gpa >> 12) & 0x1FF) * 8 - ram_base) >> 3
    had = bool(m64[slot] & PTE_V)
    m64[slot] = 0
    return had
