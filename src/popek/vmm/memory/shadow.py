"""Shadow page tables: guest-virtual → host-physical tables that the hart's real
MMU walks while a guest runs (the memory strategy ``--paging shadow``).

* The guest keeps its own tables (guest-virtual → guest-physical) in its RAM;
  the one page walk (riscv/mmu.py) reads them with the guest's rules (its
  privilege, SUM, MXR, A/D updates), and where the guest itself would fault, the
  fault is reflected into it.
* Shadow tables are filled lazily, one 4 KiB page per hart page fault, in a
  pool of host pages that belongs to the VMM.  They are kept per *context*:
  (guest satp, virtual privilege, SUM, MXR), because the guest kernel and its
  processes both run in real U-mode and must not see each other's pages the
  same way; an address-space switch back and forth finds its shadow still there.
* Coherence: **sync on sfence.vma**.  The guest must execute sfence.vma after
  changing a PTE (the ISA says a hart may keep using the old translation until
  then).  A fence of every address drops every shadow table of the VM; a fence
  of one address (rs1 ≠ x0, which by the spec covers only the leaf PTEs of that
  address) drops only that page's shadow entry in each context, or, where the
  guest mapped the page by a superpage, the shadow of the whole superpage (its
  other 4 KiB pieces were filled from the same guest PTE).  Linux fences one
  address after every page it maps: dropping everything there refilled the
  shadows 1.7 M times in a boot.  A page that the guest has not marked dirty is
  shadowed read-only, so its first write faults and the VMM sets D in the guest
  PTE, as hardware would.
* Bound: the pool has a fixed number of pages per VM; when it runs out, every
  shadow table of that VM is dropped (and refilled on demand).  The set of
  shadowed superpages is bounded by it too: each needs a shadow table of its own.
"""

from __future__ import annotations

from popek.errors import GuestMemoryError
from popek.riscv import mmu
from popek.riscv.csrs import MSTATUS_MXR, MSTATUS_SUM
from popek.riscv.mmu import (FETCH, LOAD, PPN_MASK, PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W,
                             PTE_X, STORE, WalkStats)
from popek.riscv.traps import Trap
from popek.vmm.memory import Device, Filled, Reflect

SHADOW_MODE = 9                      # shadows are Sv48: they hold Sv39 and Sv48 guest addresses


class ShadowPaging:
    """The memory strategy of one VM: its shadow tables, filled from its own."""
    name = "shadow"
    POOL_PAGES = 2048                # 8 MiB of shadow tables per VM

    def __init__(self, vm, host_ram, pool_base: int):
        self.vm = vm
        self.hart = vm.vmm.hart
        self.tables = ShadowMmu(host_ram, ShadowPool(host_ram, pool_base, self.POOL_PAGES),
                                vm.host_base, vm.RAM_BASE, vm.cfg.memory)
        self.guest_walks = WalkStats()
        self._filled = Filled("page_fault_shadow")       # (made once: a fill is frequent)
        self._device_filled = Filled("passthrough_map")

    def _key(self) -> tuple:
        v = self.vm.vcpu
        ms = v.mstatus
        return (v.satp, v.priv, bool(ms & MSTATUS_SUM), bool(ms & MSTATUS_MXR))

    def activate(self) -> None:
        self.hart.set_satp(self.tables.satp_for(self._key()))

    def context_changed(self) -> None:
        if self.vm.vmm.current is self.vm:
            self.activate()

    def fence(self, va: int | None = None) -> None:
        """The guest fenced the translations of every address (``va`` None), or of the
        page at ``va`` in every address space (ASIDs are not kept)."""
        if va is None:
            self.tables.flush()
            self.context_changed()
            return
        superpage = self.tables.flush_page(va)
        if self.vm.vmm.current is self.vm:          # (the hart caches the running VM's)
            if superpage:                           # every 4 KiB piece of it went
                self.hart.flush_tlbs()
            else:
                self.hart.flush_page(va)

    def fault(self, access: int, va: int):
        v = self.vm.vcpu
        if v.satp >> 60:
            priv, ms = v.priv, v.mstatus
            sum_, mxr = bool(ms & MSTATUS_SUM), bool(ms & MSTATUS_MXR)
            try:
                gpa, pte = mmu.walk(self.vm.ram, v.satp, va, access, priv, sum_, mxr,
                                    self.guest_walks)
            except Trap as t:
                return Reflect(t.cause, "page_fault_guest")
            level = self.guest_walks.leaf_level
            r = mmu.permitted(pte, LOAD, priv, sum_, mxr)
            x = mmu.permitted(pte, FETCH, priv, sum_, mxr)
            # Not yet dirty: shadow it read-only, so the first write comes back to us.
            w = mmu.permitted(pte, STORE, priv, sum_, mxr) and bool(pte & PTE_D)
        else:
            gpa, r, w, x, level = va, True, True, True, 0
        filled = self._filled
        host = self.tables.host_page(gpa & ~0xFFF)
        if host is None:
            # A passed-through device's page is mapped like RAM (never executable);
            # any other address is an emulated device's.
            host = self.vm.io.direct_page(gpa) if access != FETCH else None
            if host is None:
                return Device((gpa & ~0xFFF) | (va & 0xFFF))
            x, filled = False, self._device_filled
        if not self.tables.fill(self._key(), va, host, r, w, x, level):
            self.activate()                       # evicted: new root, flushed TLB
            self.tables.fill(self._key(), va, host, r, w, x, level)
        return filled

    def guest_fetch(self, pc: int) -> int | None:
        """The instruction word at ``pc`` as the guest sees it (16 bits, or 32)."""
        v = self.vm.vcpu
        try:
            gpa = pc
            if v.satp >> 60:
                gpa = mmu.walk(self.vm.ram, v.satp, pc, FETCH, v.priv, False, False,
                               self.guest_walks, update_ad=False)[0]
            word = self.vm.ram.read_int(gpa, 2)
            if word & 3 == 3:
                word = self.vm.ram.read_int(gpa, 4)
        except (Trap, GuestMemoryError):
            return None
        return word

    def drop_device_mappings(self) -> None:
        """A passed-through BAR moved: every shadow goes (they may map its old place)."""
        self.fence()

    def handlers(self) -> dict:
        return {}              # page faults reach it through the CPU strategy: fault()

    def stats(self) -> dict:
        t = self.tables
        return {"shadow_pages": f"{t.pool.used:,} (at most {t.pool.pages:,})", "shadow_fills": t.fills,
                "shadow_flushes": t.flushes, "shadow_page_flushes": t.page_flushes,
                "shadow_superpages": f"{len(t.superpages):,} (at most {t.pool.pages:,})",
                "shadow_evictions": t.evictions,
                "guest_page_walks": self.guest_walks.walks}


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
        # (va >> (12 + 9 * level), level) of each guest superpage shadowed in 4 KiB pieces
        # (the key the hart's own superpage set uses)
        self.superpages: set[tuple[int, int]] = set()
        self.fills = self.flushes = self.page_flushes = self.evictions = 0

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
        self._forget()

    def evict(self) -> None:
        """The pool ran dry: start over."""
        self.evictions += 1
        self._forget()

    def flush_page(self, va: int) -> bool:
        """The guest fenced one address: clear its page's leaf in every context's
        shadow, or the slot of the largest guest superpage shadowed around it (every
        4 KiB piece below goes; the tables cut off stay in the pool until it is
        emptied).  True if a superpage went."""
        self.page_flushes += 1
        cut = 0
        for level in (1, 2, 3):
            region = (va >> (12 + 9 * level), level)
            if region in self.superpages:
                self.superpages.discard(region)
                cut = level
        m64, base = self.ram.m64, self.ram.base
        for table in self.roots.values():
            for level in (3, 2, 1, 0):
                slot = (table + ((va >> (12 + 9 * level)) & 0x1FF) * 8 - base) >> 3
                if level == cut:
                    m64[slot] = 0
                    break
                pte = m64[slot]
                if not pte & PTE_V:
                    break
                table = ((pte >> 10) & PPN_MASK) << 12
        return cut > 0

    def _forget(self) -> None:
        self.roots.clear()
        self.superpages.clear()
        self.pool.reset()

    def host_page(self, gpa: int) -> int | None:
        """Host-physical page holding guest-physical page ``gpa``, if it is guest RAM."""
        if self.guest_base <= gpa < self.guest_base + self.guest_size:
            return self.host_base + (gpa - self.guest_base)
        return None

    def fill(self, key: tuple, va: int, host_pa: int, r: bool, w: bool, x: bool,
             leaf_level: int = 0) -> bool:
        """Map ``va`` → ``host_pa`` in the shadow for ``key``, from a guest leaf of
        ``leaf_level`` (0: 4 KiB, 1: 2 MiB, ...); False if the pool ran dry."""
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
        if leaf_level:
            self.superpages.add((va >> (12 + 9 * leaf_level), leaf_level))
        self.fills += 1
        return True
