"""Address translation: the Sv39 and Sv48 page-table walk, and the H extension's
G-stage (Sv39x4, Sv48x4), which is the same walk with a wider root.

Privileged spec v1.12, section 4.3.2 ("Virtual Address Translation Process"),
step by step.  A/D bits are updated by the walk (the spec allows either that or
a page fault; updating is what QEMU does and what every kernel accepts).

The walk reads page-table entries from RAM only (``mem``: the machine's RAM, or a
VM's guest-physical window of it): a PTE address outside it is an access fault of
the original access type.  It is parameterised by whether it may set A/D bits and
by a stage-2 step, so the hart's MMU, the VMM's shadow fill and any debug walk
are this one function (as Spike's ``walk`` with ``s2xlate``).  The result is cached by the
hart's software TLB, flushed at named points (sfence.vma, satp writes, changes
of SUM/MXR/MPRV), so the walk itself never caches.
"""

from __future__ import annotations

from popek.riscv import traps
from popek.riscv.traps import Trap

FETCH, LOAD, STORE = 0, 1, 2

PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = (1 << i for i in range(8))
PPN_MASK = (1 << 44) - 1

PAGE_FAULT = {FETCH: traps.INSN_PAGE_FAULT, LOAD: traps.LOAD_PAGE_FAULT,
              STORE: traps.STORE_PAGE_FAULT}
GUEST_PAGE_FAULT = {FETCH: traps.INSN_GUEST_PAGE_FAULT, LOAD: traps.LOAD_GUEST_PAGE_FAULT,
                    STORE: traps.STORE_GUEST_PAGE_FAULT}
ACCESS_FAULT = {FETCH: traps.INSN_ACCESS_FAULT, LOAD: traps.LOAD_ACCESS_FAULT,
                STORE: traps.STORE_ACCESS_FAULT}

LEVELS = {8: 3, 9: 4}      # satp.MODE → levels (Sv39, Sv48)

# The hart's software data TLBs map a page's virtual base address to ``delta``, the
# RAM offset of the page minus that base, so an access at ``va`` is at RAM offset
# ``va + delta``.  They are looked up with ``va & TLB_KEY[size]``: the page base,
# plus the low bits that must be zero for an aligned access, so a misaligned access
# simply misses (and takes the slow path) without a test of its own.
TLB_KEY = {size: ((1 << 64) - 1) & ~0xFFF | (size - 1) for size in (1, 2, 4, 8)}
PAGE_BASE = TLB_KEY[1]


class WalkStats:
    """Counts for --stats: walks done and PTE memory references made; and the level of
    the last walk's leaf (0: a 4 KiB page, 1: 2 MiB, ...), which a TLB needs to know
    what a fence of one address must drop."""
    __slots__ = ("walks", "pte_reads", "faults", "leaf_level")

    def __init__(self):
        self.walks = self.pte_reads = self.faults = self.leaf_level = 0


def permitted(pte: int, access: int, priv: int, sum_: bool, mxr: bool,
              perm: int | None = None) -> bool:
    """Whether a leaf ``pte`` allows ``access`` at privilege ``priv`` (0 U, 1 S; spec
    4.3.2 step 5): R/W/X by access (MXR: executable counts as readable), U pages
    only from U, or from S for loads and stores with SUM, never S fetches.  ``perm``:
    the R/W/X permission checked instead of ``access``'s (HLVX: a load needing X)."""
    need = access if perm is None else perm
    if need == FETCH:
        ok = pte & PTE_X
    elif need == LOAD:
        ok = pte & PTE_R or (mxr and pte & PTE_X)
    else:
        ok = pte & PTE_W
    if pte & PTE_U:
        return bool(ok) and not (priv == 1 and (access == FETCH or not sum_))
    return bool(ok) and priv != 0


def walk(mem, satp: int, va: int, access: int, priv: int, sum_: bool, mxr: bool,
         stats: WalkStats, update_ad: bool = True, stage2=None, g_stage: bool = False,
         perm: int | None = None) -> tuple[int, int]:
    """Translate ``va`` for ``access`` at privilege ``priv`` through the tables rooted
    at ``satp`` in ``mem``; return (physical address, leaf PTE as it now stands).

    Raises :class:`Trap` with the page-fault (or, for a PTE outside ``mem``, the
    access-fault) cause of ``access`` and tval ``va``.  ``update_ad``: set A (and D
    for a store) in the leaf as hardware does; a debug or introspection walk passes
    False.  ``stage2``: for a two-stage walk, a function (address, access, implicit) →
    address applied to every PTE address (an implicit load, and an implicit store where
    A/D are set) and to the final address (not implicit).

    ``g_stage``: this is the H extension's G-stage walk of a guest-physical address
    (``satp`` is hgatp): the address is not sign-extended but must fit the root, which
    is four times as big (two more index bits); every access counts as U-mode's (a
    leaf needs U); faults are guest-page faults.  ``perm``: the access whose
    permission is checked, when not ``access`` (HLVX: a load that needs execute).

    The one page walk: the hart's MMU, the VMM's shadow fill and its look at a
    guest's instruction all call it.
    """
    levels = LEVELS[satp >> 60]
    stats.walks += 1
    va_bits = 12 + 9 * levels
    fault = PAGE_FAULT
    perm = access if perm is None else perm
    root_index = 0x1FF
    if g_stage:
        fault, priv, sum_, root_index = GUEST_PAGE_FAULT, 0, False, 0x7FF
        if va >> (va_bits + 2):
            stats.faults += 1
            raise Trap(fault[access], va)
    else:
        # The address must be sign-extended from its top translated bit.
        top = va >> (va_bits - 1)
        if top != 0 and top != (1 << (65 - va_bits)) - 1:
            stats.faults += 1
            raise Trap(fault[access], va)
    table = (satp & PPN_MASK) << 12
    level = levels - 1
    index = root_index
    m64, base = mem.m64, mem.base - mem.data_offset
    while True:
        pte_gpa = pte_addr = table + ((va >> (12 + 9 * level)) & index) * 8
        index = 0x1FF
        if stage2 is not None:
            pte_addr = stage2(pte_addr, LOAD, True)
        if not mem.contains(pte_addr, 8):
            raise Trap(ACCESS_FAULT[access], va)
        i = (pte_addr - base) >> 3
        pte = m64[i]
        stats.pte_reads += 1
        if not pte & PTE_V or (pte & (PTE_R | PTE_W)) == PTE_W or pte >> 54:
            break                                       # invalid or reserved → fault
        if pte & (PTE_R | PTE_X):                       # a leaf
            ppn = (pte >> 10) & PPN_MASK
            if level and ppn & ((1 << (9 * level)) - 1):
                break                                   # misaligned superpage
            if not permitted(pte, access, priv, sum_, mxr, perm):
                break
            want = PTE_A | (PTE_D if access == STORE else 0)
            if update_ad and pte & want != want:
                if stage2 is not None:
                    stage2(pte_gpa, STORE, True)        # the update is a store, G-stage too
                pte |= want
                m64[i] = pte
                mem.note_write(i << 3, 8)
            low = (1 << (12 + 9 * level)) - 1
            pa = ((ppn << 12) & ~low) | (va & low)
            if stage2 is not None:
                pa = stage2(pa, perm, False)
            stats.leaf_level = level            # (this walk's leaf: set after stage2's walks)
            return pa, pte
        if level == 0:
            break
        level -= 1
        table = ((pte >> 10) & PPN_MASK) << 12
    stats.faults += 1
    raise Trap(fault[access], va)
