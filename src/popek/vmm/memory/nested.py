"""Nested paging: the H extension's G-stage maps each VM's guest-physical memory to
its window of host RAM, and the hart's MMU does both stages itself (the memory
strategy ``--paging nested``, with ``--vmm hw``).

* The guest's own page tables (VS-stage, vsatp) are the hardware's business: the
  VMM never reads them, never shadows them, and sees none of the guest's address
  space switches, fences or page-table updates.
* The G-stage tables (Sv39x4: guest-physical addresses up to 2 TiB) live in a pool
  of host pages beside the VM's RAM, rooted in its first four (the root is 16 KiB).
  They are filled on demand, as KVM does: the first touch of guest memory is a
  guest-page fault, which maps it (a 2 MiB megapage where guest and host addresses
  both allow, else the 4 KiB page).  A guest-physical address that is not the VM's
  RAM is never mapped: every access to it comes back as a guest-page fault, which
  the CPU strategy turns into an MMIO exit for the VM's devices, or an access fault.
  So a VM cannot reach any host memory but its own RAM window: its G-stage does not
  map any (isolation is the G-stage's).
* Bound: the pool has a fixed number of pages; when it runs out, every mapping
  but the root is dropped and refilled on demand (``nested_evictions``).
"""

from __future__ import annotations

from popek.errors import GuestMemoryError
from popek.riscv.mmu import FETCH, LOAD
from popek.riscv.traps import Trap
from popek.vmm.memory import Device, Filled
from popek.vmm.memory.gstage import HGATP_SV39X4, LEAF_RW, MEGA, ROOT_PAGES, map_page


class NestedPaging:
    """The memory strategy of one VM: its G-stage tables."""
    name = "nested"
    POOL_PAGES = 512                 # 2 MiB (keeps the next VM 2 MiB aligned): root, tables

    def __init__(self, vm, host_ram, pool_base: int):
        assert pool_base % (ROOT_PAGES * 4096) == 0, "the G-stage root must be 16 KiB aligned"
        self.vm = vm
        self.hart = vm.vmm.hart
        self.ram = host_ram
        self.root = pool_base
        self.pool_base = pool_base + ROOT_PAGES * 4096
        self.pool_pages = self.POOL_PAGES - ROOT_PAGES
        self.used = 0
        self.guest_base, self.guest_size = vm.RAM_BASE, vm.cfg.memory
        self.host_base = vm.host_base
        self.fills = self.megapages = self.evictions = 0
        self._clear(self.root, ROOT_PAGES)
        self._filled = Filled("page_fault_nested")
        self._device_filled = Filled("passthrough_map")

    @property
    def hgatp(self) -> int:
        return (HGATP_SV39X4 << 60) | (self.root >> 12)

    # -- the memory-strategy interface ------------------------------------------------
    def activate(self) -> None:
        """Put this VM's G-stage on the hart (as a hypervisor writes hgatp; no VMIDs are
        kept, so the guest translations of the VM before go)."""
        h = self.hart
        h.hgatp = self.hgatp
        h.flush_virtual_tlbs()

    def context_changed(self) -> None:
        """The guest's own translation changed: the hardware's business."""

    def fence(self, va: int | None = None) -> None:
        """The guest asked for a fence of its translations (an SBI remote sfence.vma):
        the hart's VS-stage entries go, as HFENCE.VVMA would drop them (all of them,
        for one page too: remote fences are rare where the guest fences locally)."""
        if self.vm.vmm.current is self.vm:
            self.hart.flush_virtual_tlbs()

    def guest_page_fault(self, gpa: int, access: int = LOAD):
        """A G-stage miss at guest-physical ``gpa``: map it if it is the VM's RAM or a
        page of a passed-through device (Filled; a device page is never executable),
        else it may be an emulated device (Device)."""
        off = gpa - self.guest_base
        if not 0 <= off < self.guest_size:
            hpa = self.vm.io.direct_page(gpa) if access != FETCH else None
            if hpa is None:
                return Device(gpa)
            if not map_page(self.ram, self.root, gpa, hpa, self._alloc, leaf=LEAF_RW):
                self._evict()
                map_page(self.ram, self.root, gpa, hpa, self._alloc, leaf=LEAF_RW)
            return self._device_filled
        if not self._map(gpa):
            self._evict()
            self._map(gpa)
        return self._filled

    def guest_fetch(self, pc: int) -> int | None:
        """The instruction bits at the guest's ``pc`` (16 or 32), read through both
        stages as the hart fetched them."""
        h = self.hart
        try:
            pa = h.translate_virtual(pc, FETCH, h.priv)
            word = self.ram.read_int(pa, 2)
            if word & 3 == 3:
                word |= self.ram.read_int(h.translate_virtual(pc + 2, FETCH, h.priv), 2) << 16
        except (Trap, GuestMemoryError):
            return None
        return word

    def handlers(self) -> dict:
        return {}              # guest-page faults reach it through the CPU strategy

    def stats(self) -> dict:
        return {"nested_table_pages": f"{self.used + ROOT_PAGES:,} (at most {self.POOL_PAGES:,})",
                "nested_fills": self.fills, "nested_megapages": self.megapages,
                "nested_evictions": self.evictions}

    # -- the tables ---------------------------------------------------------------------
    def _map(self, gpa: int) -> bool:
        """Map the page of ``gpa`` (its 2 MiB megapage if it fits): False if the pool ran dry."""
        hpa = self.host_base + (gpa - self.guest_base)
        base = gpa & ~(MEGA - 1)
        mega = (hpa - gpa) % MEGA == 0 and base >= self.guest_base \
            and base + MEGA <= self.guest_base + self.guest_size
        if not map_page(self.ram, self.root, gpa, hpa, self._alloc, mega=mega):
            return False
        self.fills += 1
        self.megapages += mega
        return True

    def _alloc(self) -> int | None:
        if self.used == self.pool_pages:
            return None
        addr = self.pool_base + self.used * 4096
        self.used += 1
        self._clear(addr, 1)
        return addr

    def _clear(self, addr: int, pages: int) -> None:
        off = self.ram.offset(addr, pages * 4096)
        self.ram.data[off:off + pages * 4096] = bytes(pages * 4096)

    def drop_device_mappings(self) -> None:
        """A passed-through BAR moved: every mapping goes (refilled on demand)."""
        self._drop_all()

    def _evict(self) -> None:
        """The pool ran dry: drop every mapping, refill on demand."""
        self.evictions += 1
        self._drop_all()

    def _drop_all(self) -> None:
        self.used = 0
        self._clear(self.root, ROOT_PAGES)
        self.hart.flush_virtual_tlbs()
