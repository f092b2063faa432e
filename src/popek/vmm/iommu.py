"""The VMM's driver for the host's IOMMU (riscv/iommu.py): it programs the IOMMU the
way a host kernel does, through its registers and in-memory structures, never by
reaching into the model.

Its memory is a region of host RAM that belongs to no VM (the *VMM region*, after
every VM and its paging pool):

    page 0        the DDT's root (2LVL: device IDs 0-65535)
    pages 1-2     its leaves for device IDs 0-127 and 128-255 (bus 0)
    page 3        the command queue (256 commands)
    page 4        the fault queue (128 records)
    page 5        the IOFENCE.C completion word
    then          each assigned VM's second-stage tables: a 16 KiB root and the
                  tables below it, mapping the VM's RAM and nothing else (2 MiB
                  megapages where both addresses allow); a driver domain's also map,
                  one 4 KiB page at a time, the guest pages granted to it
                  (vmm/drivers/domain.py) in a window above its RAM

A device assigned to a VM gets a device context whose ``iohgatp`` points at that
VM's tables, with the VM's index as its GSCID; every change is followed by the
invalidations the specification requires (IODIR.INVAL_DDT, IOTINVAL.GVMA) and an
IOFENCE.C whose completion the driver checks.  Fault records are read from the fault
queue by :meth:`IommuDriver.faults` (the VMM polls it between slices).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from popek.errors import ConfigError
from popek.riscv import iommu as hw
from popek.vmm.memory.gstage import (HGATP_SV39X4, LEAF_R, LEAF_RW, MEGA, ROOT_PAGES,
                                     map_page, unmap_page)

PAGE = 4096
GiB = 1 << 30
FIXED_PAGES = 6                     # DDT root and two leaves, the queues, the fence word
CQ_LOG2, FQ_LOG2 = 8, 7             # a page each
FENCE_DONE = 0x600D
CQ_BATCH = 64                       # invalidations submitted before a fence


def tables_pages(memory: int) -> int:
    """Pages of one VM's second-stage tables: a 16 KiB root (and up to 3 pages to align
    it), a table per GiB of RAM (each of its 2 MiB a megapage), and one more for the
    4 KiB pages of a size that is not a whole number of megapages."""
    return ROOT_PAGES + 3 + -(-memory // GiB) + 1


def region_pages(memories, windows: int = 0, window_bytes: int = 0) -> int:
    """Host pages the driver needs for VMs of ``memories`` bytes with assigned devices,
    ``windows`` of them with a grant window of ``window_bytes`` (a table per 2 MiB of
    it, and one above those)."""
    per_window = -(-window_bytes // MEGA) + 1 if windows else 0
    return FIXED_PAGES + sum(tables_pages(m) for m in memories) + windows * per_window


@dataclass(frozen=True)
class FaultRecord:
    cause: int
    ttyp: int
    device_id: int
    iotval: int
    iotval2: int

    @property
    def what(self) -> str:
        return hw.CAUSE_NAMES.get(self.cause, f"cause {self.cause}")

    @property
    def write(self) -> bool:
        return self.ttyp == hw.TTYP_WRITE


class IommuDriver:
    def __init__(self, iommu: hw.RiscvIommu, ram, base: int, pages: int):
        assert base % (ROOT_PAGES * PAGE) == 0
        self.iommu, self.ram = iommu, ram
        self.base, self.pages, self.used = base, pages, FIXED_PAGES
        off = ram.offset(base, pages * PAGE)
        ram.data[off:off + pages * PAGE] = bytes(pages * PAGE)
        self.cq, self.fq, self.fence = base + 3 * PAGE, base + 4 * PAGE, base + 5 * PAGE
        self.cqt = 0
        for leaf in (1, 2):                           # DDT root → the two bus-0 leaves
            ram.write_int(base + (leaf - 1) * 8, 8, ((base + leaf * PAGE) >> 2) | 1)
        w = iommu.write
        w(hw.CQB, 8, (self.cq >> 2) | (CQ_LOG2 - 1))
        w(hw.CQCSR, 4, hw.CQEN)
        w(hw.FQB, 8, (self.fq >> 2) | (FQ_LOG2 - 1))
        w(hw.FQCSR, 4, hw.FQEN | hw.FIE)
        w(hw.DDTP, 8, (base >> 2) | hw.MODE_2LVL)
        self.tables: dict[int, int] = {}              # gscid → root

    # -- tables -------------------------------------------------------------------
    def _alloc(self, pages: int = 1, align: int = 1) -> int | None:
        first = -(-self.used // align) * align
        if first + pages > self.pages:
            return None
        self.used = first + pages
        return self.base + first * PAGE              # (zeroed when the region was made)

    def map_vm(self, gscid: int, guest_base: int, host_base: int, size: int) -> None:
        """Build the second-stage tables of VM ``gscid``: its RAM, ``size`` bytes at
        guest-physical ``guest_base``, is ``host_base`` in host memory."""
        if gscid in self.tables:
            return
        root = self._alloc(ROOT_PAGES, ROOT_PAGES)
        if root is None:
            raise ConfigError("the VMM's IOMMU region is full")
        gpa = guest_base
        while gpa < guest_base + size:
            mega = gpa % MEGA == 0 and (host_base + gpa - guest_base) % MEGA == 0 \
                and gpa + MEGA <= guest_base + size
            if not map_page(self.ram, root, gpa, host_base + gpa - guest_base, self._alloc,
                            leaf=LEAF_RW, mega=mega):
                raise ConfigError("the VMM's IOMMU region is full")
            gpa += MEGA if mega else PAGE
        self.tables[gscid] = root

    def map_page(self, gscid: int, gpa: int, hpa: int, writable: bool) -> bool:
        """Map one more 4 KiB page into VM ``gscid``'s DMA space (a grant: read only
        unless ``writable``).  A new mapping needs no invalidation (nothing cached a
        translation that did not exist: faults are not cached).  False: no table
        page left."""
        return map_page(self.ram, self.tables[gscid], gpa, hpa, self._alloc,
                        leaf=LEAF_RW if writable else LEAF_R)

    def unmap_pages(self, gscid: int, gpas) -> None:
        """Take pages out of VM ``gscid``'s DMA space, and out of the IOTLB: from the
        fence's completion on, no DMA reaches them."""
        gpas = [g for g in gpas if unmap_page(self.ram, self.tables[gscid], g)]
        for i in range(0, len(gpas), CQ_BATCH):
            self.ram.write_int(self.fence, 4, 0)
            for gpa in gpas[i:i + CQ_BATCH]:
                self._submit(hw.IOTINVAL | 1 << 7 | 1 << 10 | 1 << 33 | gscid << 44,
                             (gpa >> 12) << 10)                      # GVMA, AV, GV
            self._fence()

    # -- device contexts ----------------------------------------------------------
    def _context(self, device_id: int) -> int:
        leaf = self.base + (1 + (device_id >> 7)) * PAGE
        return leaf + (device_id & 0x7F) * hw.DC_SIZE

    def attach(self, device_id: int, gscid: int) -> None:
        """Let ``device_id`` DMA into VM ``gscid``'s RAM (map_vm first), and nowhere else."""
        assert 0 <= device_id < 256 and 0 < gscid < 1 << 16
        iohgatp = HGATP_SV39X4 << 60 | gscid << 44 | self.tables[gscid] >> 12
        self.ram.write(self._context(device_id), struct.pack("<QQQQ", hw.TC_V, iohgatp, 0, 0))
        self._sync(device_id, gscid)

    def attach_bare(self, device_id: int) -> None:
        """Let ``device_id`` DMA anywhere in host memory (iohgatp Bare): a device whose
        driver is the VMM itself (``--drivers monolithic``), trusted as the VMM is."""
        self.ram.write(self._context(device_id), struct.pack("<QQQQ", hw.TC_V, 0, 0, 0))
        self.ram.write_int(self.fence, 4, 0)
        self._submit(hw.IODIR | 1 << 33 | device_id << 40, 0)
        self._fence()

    def detach(self, device_id: int, gscid: int) -> None:
        """Block every DMA of ``device_id`` (its context invalid: a fault each)."""
        self.ram.write(self._context(device_id), bytes(hw.DC_SIZE))
        self._sync(device_id, gscid)

    def _sync(self, device_id: int, gscid: int) -> None:
        """The invalidations a changed context needs, and a fence that waits for them."""
        self.ram.write_int(self.fence, 4, 0)
        self._submit(hw.IODIR | 1 << 33 | device_id << 40, 0)               # INVAL_DDT, DV
        self._submit(hw.IOTINVAL | 1 << 7 | 1 << 33 | gscid << 44, 0)       # GVMA, GV
        self._fence()

    def _fence(self) -> None:
        """An IOFENCE.C after the commands submitted, the tail written, and the
        completion word checked (the model completes commands when the tail moves)."""
        self._submit(hw.IOFENCE | 1 << 10 | FENCE_DONE << 32, self.fence >> 2)  # C, AV
        self.iommu.write(hw.CQT, 4, self.cqt)
        if self.ram.read_int(self.fence, 4) != FENCE_DONE:
            raise RuntimeError(f"the IOMMU did not complete its commands "
                               f"(cqcsr {self.iommu.read(hw.CQCSR, 4):#x})")

    def _submit(self, dw0: int, dw1: int) -> None:
        self.ram.write(self.cq + self.cqt * hw.CMD_SIZE, struct.pack("<QQ", dw0, dw1))
        self.cqt = (self.cqt + 1) % (1 << CQ_LOG2)

    # -- faults ---------------------------------------------------------------------
    def faults(self) -> list[FaultRecord]:
        """The records queued since the last call (the queue then empty again).  If it
        overflowed, the IOMMU counted the records it had no room for (records_dropped)
        and records again from now on."""
        io = self.iommu
        head, tail = io.read(hw.FQH, 4), io.read(hw.FQT, 4)
        out = []
        while head != tail:
            dw0, _, iotval, iotval2 = struct.unpack(
                "<QQQQ", self.ram.read(self.fq + head * hw.FAULT_SIZE, hw.FAULT_SIZE))
            out.append(FaultRecord(dw0 & 0xFFF, (dw0 >> 34) & 0x3F, dw0 >> 40, iotval, iotval2))
            head = (head + 1) % (1 << FQ_LOG2)
        io.write(hw.FQH, 4, head)
        csr = io.read(hw.FQCSR, 4)
        if csr & hw.FQOF:
            io.write(hw.FQCSR, 4, csr)                # (write one to clear: recording resumes)
        if io.read(hw.IPSR, 4) & hw.FIP:
            io.write(hw.IPSR, 4, hw.FIP)
        return out
