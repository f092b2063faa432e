"""Shadow page tables: guest-virtual → host-physical tables that the hart's real
MMU walks while a guest runs.

* The guest keeps its own tables (guest-virtual → guest-physical) in its RAM;
  :func:`guest_walk` reads them with the guest's rules (its privilege, SUM, MXR,
  A/D updates) and raises :class:`GuestPageFault` when the guest itself would
  fault, which the VMM then reflects into the guest.
* Shadow tables are filled lazily, one 4 KiB page per hart page fault, in a
  pool of host pages that belongs to the VMM.  They are kept per *context*:
  (guest satp, virtual privilege, SUM, MXR), because the guest kernel and its
  processes both run in real U-mode and must not see each other's pages the
  same way; an address-space switch back and forth finds its shadow still there.
* Coherence: **sync on sfence.vma**.  The guest must execute sfence.vma after
  changing a PTE (the ISA says a hart may keep using the old translation until
  then); that exit drops every shadow table of the VM.  A page that the guest
  has not marked dirty is shadowed read-only, so its first write faults and
  the VMM sets D in the guest PTE, as hardware would.
* Bound: the pool has a fixed number of pages per VM; when it runs out, every
  shadow table of that VM is dropped (and refilled on demand).
"""

from __future__ import annotations

from popek.riscv.mmu import FETCH, LOAD, STORE

PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = (1 << i for i in range(8))
PPN_MASK = (1 << 44) - 1
LEVELS = {8: 3, 9: 4}
SHADOW_MODE = 9                      # shadows are Sv48: they hold Sv39 and Sv48 guest addresses
PAGE_FAULT = {FETCH: 12, LOAD: 13, STORE: 15}
ACCESS_FAULT = {FETCH: 1, LOAD: 5, STORE: 7}


class GuestPageFault(Exception):
    """The guest's own translation faults: ``cause`` goes to the guest, tval = address."""

    def __init__(self, cause: int):
        self.cause = cause


def guest_walk(mem, satp: int, va: int, access: int, user: bool, sum_: bool, mxr: bool):
    """Translate ``va`` through the guest's tables in ``mem``.

    Returns (guest-physical address, readable, writable, executable) for the
    4 KiB page, the bits meaning what this privilege may do there.  Sets A (and
    D for a store) in the guest PTE, as the hardware walk would.
    """
    mode = satp >> 60
    if mode == 0:
        return va, True, True, True
    levels = LEVELS[mode]
    va_bits = 12 + 9 * levels
    top = va >> (va_bits - 1)
    if top != 0 and top != (1 << (65 - va_bits)) - 1:
        raise GuestPageFault(PAGE_FAULT[access])
    table = (satp & PPN_MASK) << 12
    for level in range(levels - 1, -1, -1):
        pte_addr = table + ((va >> (12 + 9 * level)) & 0x1FF) * 8
        if not mem.contains(pte_addr, 8):
            raise GuestPageFault(ACCESS_FAULT[access])
        pte = mem.read_int(pte_addr, 8)
        if not pte & PTE_V or (pte & (PTE_R | PTE_W)) == PTE_W or pte >> 54:
            break
        if pte & (PTE_R | PTE_X):
            ppn = (pte >> 10) & PPN_MASK
            if level and ppn & ((1 << (9 * level)) - 1):
                break                                      # misaligned superpage
            if pte & PTE_U:
                if not user and not sum_:
                    break
                can_x = bool(pte & PTE_X) and user          # S never executes user pages
            else:
                if user:
                    break
                can_x = bool(pte & PTE_X)
            can_r = bool(pte & PTE_R) or (mxr and bool(pte & PTE_X))
            can_w = bool(pte & PTE_W)
            if not {FETCH: can_x, LOAD: can_r, STORE: can_w}[access]:
                break
            want = PTE_A | (PTE_D if access == STORE else 0)
            if pte & want != want:
                pte |= want
                mem.write_int(pte_addr, 8, pte)
            low = (1 << (12 + 9 * level)) - 1
            gpa = ((ppn << 12) & ~low) | (va & low)
            # Not yet dirty: shadow it read-only, so the first write comes back to us.
            return gpa & ~0xFFF, can_r, can_w and bool(pte & PTE_D), can_x
        if level == 0:
            break
        table = ((pte >> 10) & PPN_MASK) << 12
    raise GuestPageFault(PAGE_FAULT[access])


class ShadowPool:
    """Host pages for one VM's shadow tables: a bump allocator, emptied wholesale."""

    def __init__(self, host_ram, base: int, pages: int):
        self.ram = host_ram
        self.base = base
        self.pages = pages
        self.used = 0

    def alloc(self) -> int | None:
        if self.used == self.pages:
            return None
        addr = self.base + self.used * 4096
        self.used += 1
        off = self.ram.offset(addr, 4096)
        self.ram.data[off:off + 4096] = bytes(4096)
        return addr

    def reset(self) -> None:
        self.used = 0


class ShadowMmu:
    def __init__(self, host_ram, pool: ShadowPool, host_base: int, guest_base: int, guest_size: int):
        self.ram = host_ram
        self.pool = pool
        self.host_base, self.guest_base, self.guest_size = host_base, guest_base, guest_size
        self.roots: dict[tuple, int] = {}
        self.fills = self.flushes = self.evictions = 0

    def root(self, key: tuple) -> int:
        r = self.roots.get(key)
        if r is None:
            r = self.pool.alloc()
            if r is None:
                self.evict()
                r = self.pool.alloc()
            self.roots[key] = r
        return r

    def satp_for(self, key: tuple) -> int:
        return (SHADOW_MODE << 60) | (self.root(key) >> 12)

    def flush(self) -> None:
        """The guest fenced: forget every shadow translation."""
        self.flushes += 1
        self.roots.clear()
        self.pool.reset()

    def evict(self) -> None:
        self.evictions += 1
        self.roots.clear()
        self.pool.reset()

    def host_page(self, gpa: int) -> int | None:
        """Host-physical page holding guest-physical page ``gpa``, if it is guest RAM."""
        if self.guest_base <= gpa < self.guest_base + self.guest_size:
            return self.host_base + (gpa - self.guest_base)
        return None

    def fill(self, key: tuple, va: int, host_pa: int, r: bool, w: bool, x: bool) -> bool:
        """Map ``va`` → ``host_pa`` in the shadow for ``key``; False if the pool ran dry."""
        m64 = self.ram.m64
        base = self.ram.base
        table = self.root(key)
        for level in (3, 2, 1):
            slot = table + ((va >> (12 + 9 * level)) & 0x1FF) * 8
            pte = m64[(slot - base) >> 3]
            if pte & PTE_V:
                table = ((pte >> 10) & PPN_MASK) << 12
                continue
            nxt = self.pool.alloc()
            if nxt is None:                    # out of shadow pages: start over
                self.evict()
                return False
            m64[(slot - base) >> 3] = ((nxt >> 12) << 10) | PTE_V
            table = nxt
        flags = PTE_V | PTE_U | PTE_A | PTE_D | (PTE_R if r else 0) | (PTE_W if w else 0) \
            | (PTE_X if x else 0)
        m64[(table + ((va >> 12) & 0x1FF) * 8 - base) >> 3] = ((host_pa >> 12) << 10) | flags
        self.fills += 1
        return True
