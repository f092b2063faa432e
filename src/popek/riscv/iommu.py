"""A RISC-V IOMMU (the ratified v1.0 specification): every DMA a device makes is
translated and checked against the tables the hypervisor programmed, and one that
breaks them is blocked and reported as a fault record.

What this model has (``capabilities``):

* the base device-context format (32 bytes), the device directory table (DDT) in
  Off, Bare, 1LVL, 2LVL and 3LVL modes, indexed by the device ID (a PCI function's
  requester ID: bus << 8 | device << 3 | function);
* second-stage translation only (``iohgatp`` Sv39x4 or Sv48x4: guest-physical to
  system-physical, the G-stage of the H extension, walked by the hart's one page
  walk, ``mmu.walk``); the first stage (``fsc``) must be Bare.  No A/D updates by
  hardware (no AMO_HWAD): a leaf without A, or without D for a write, faults;
* an IOTLB (bounded, least recently used out) and a device-context cache, both
  invalidated only by commands (IOTINVAL.GVMA, IODIR.INVAL_DDT), as the hardware's;
* the command queue (IOTINVAL.VMA/GVMA, IOFENCE.C, IODIR.INVAL_DDT/PDT) and the
  fault queue (32-byte records: cause, transaction type, device ID, address),
  both in memory, with wired interrupts (IGS = WSI: ``fctl.WSI`` reads one).

No ATS/PRI, MSI remapping, process contexts, performance counters or debug
interface: their capability bits are zero and their registers read zero.

Register file (4 KiB; 4- and 8-byte accesses)::

    0x00  capabilities  RO   version 0x10, Sv39x4, Sv48x4, IGS=WSI, PAS=56
    0x08  fctl          WARL WSI=1 (hardwired: wired interrupts only), BE=0, GXL=0
    0x10  ddtp          mode[3:0] (Off, Bare, 1LVL, 2LVL, 3LVL), busy 4, PPN[53:10]
    0x18  cqb           LOG2SZ-1[4:0], PPN[53:10]     command queue base
    0x20  cqh           RO   index of the next command the IOMMU reads
    0x24  cqt           index software writes past its last command
    0x28  fqb           LOG2SZ-1[4:0], PPN[53:10]     fault queue base
    0x30  fqh           index software has read up to
    0x34  fqt           RO   index of the next record the IOMMU writes
    0x48  cqcsr         cqen 0, cie 1, cqmf 8, cmd_to 9, cmd_ill 10, fence_w_ip 11 (RW1C),
                        cqon 16, busy 17
    0x4C  fqcsr         fqen 0, fie 1, fqmf 8, fqof 9 (RW1C), fqon 16, busy 17
    0x54  ipsr          RW1C cip 0, fip 1
    0x2F8 icvec         civ[3:0], fiv[7:4]

A queue is processed at once when its registers are written (the command queue at
each ``cqt`` write): the model has no time of its own.  Queues hold at most 4,096
entries (LOG2SZ is WARL), so the work of one write is bounded.
"""

from __future__ import annotations

import logging
import struct
from collections import OrderedDict

from popek.errors import GuestMemoryError
from popek.guestlog import GuestWarnings
from popek.riscv import mmu
from popek.riscv.traps import Trap

log = logging.getLogger(__name__)

SIZE = 0x1000

# Registers.
CAPABILITIES, FCTL, DDTP, CQB, CQH, CQT, FQB, FQH, FQT = 0x00, 0x08, 0x10, 0x18, 0x20, 0x24, \
    0x28, 0x30, 0x34
CQCSR, FQCSR, IPSR, ICVEC = 0x48, 0x4C, 0x54, 0x2F8
WIDE = {CAPABILITIES, DDTP, CQB, FQB, ICVEC}     # the 8-byte registers (the rest are 4)

VERSION_1_0 = 0x10
CAP_SV39X4, CAP_SV48X4 = 1 << 17, 1 << 18
IGS_WSI = 1 << 28
PAS = 56
CAPS = VERSION_1_0 | CAP_SV39X4 | CAP_SV48X4 | IGS_WSI | (PAS << 32)
FCTL_WSI = 1 << 1

MODE_OFF, MODE_BARE, MODE_1LVL, MODE_2LVL, MODE_3LVL = range(5)
DDTP_MODE_NAMES = {0: "Off", 1: "Bare", 2: "1LVL", 3: "2LVL", 4: "3LVL"}
PPN_FIELD = ((1 << 44) - 1) << 10          # bits 53:10 of ddtp, cqb, fqb
MAX_LOG2SZ = 12                            # queues of at most 4,096 entries

CQEN, CIE, CQMF, CMD_TO, CMD_ILL, FENCE_W_IP, CQON = 1, 2, 1 << 8, 1 << 9, 1 << 10, 1 << 11, \
    1 << 16
FQEN, FIE, FQMF, FQOF, FQON = 1, 2, 1 << 8, 1 << 9, 1 << 16
CIP, FIP = 1, 2

# Device context (base format: four doublewords).
DC_SIZE = 32
DDI_BITS = {1: 7, 2: 16, 3: 24}            # device-ID bits a DDT of 1, 2, 3 levels indexes
DDI_BITS_BY_MODE = {2: 7, 3: 16, 4: 24}    # the same by ddtp mode (1LVL, 2LVL, 3LVL)
TC_V, TC_DTF, TC_PDTV, TC_DPE = 1, 1 << 4, 1 << 5, 1 << 9
TC_NEEDS_CAPS = 0x1CE                      # EN_ATS, EN_PRI, T2GPA, PRPR, GADE, SADE: no caps
# SBE must equal fctl.BE (0: no big-endian), SXL must be 0 (GXL 0, not writable); the
# bits above SXL are reserved (or custom, which this IOMMU has none of).
TC_MUST_BE_ZERO = TC_NEEDS_CAPS | 1 << 10 | ~0x7FF
IOHGATP_BARE, IOHGATP_SV39X4, IOHGATP_SV48X4 = 0, 8, 9

# Causes (fault record CAUSE) and transaction types (TTYP).
READ_ACCESS_FAULT, WRITE_ACCESS_FAULT = 5, 7
READ_GUEST_PAGE_FAULT, WRITE_GUEST_PAGE_FAULT = 21, 23
ALL_DISALLOWED, DDT_LOAD_FAULT, DDT_INVALID, DDT_MISCONFIGURED, TTYPE_DISALLOWED = \
    256, 257, 258, 259, 260
CAUSE_NAMES = {5: "read access fault", 7: "write access fault",
               21: "read guest-page fault", 23: "write guest-page fault",
               256: "all inbound transactions disallowed", 257: "DDT entry load access fault",
               258: "DDT entry not valid", 259: "DDT entry misconfigured",
               260: "transaction type disallowed"}
REPORTED_DESPITE_DTF = {256, 257, 258, 259, 268, 272, 273}
TTYP_READ, TTYP_WRITE = 2, 3               # untranslated read, untranslated write/AMO

# Commands.
IOTINVAL, IOFENCE, IODIR = 1, 2, 3
CMD_SIZE, FAULT_SIZE = 16, 32
# Reserved bits of each command's first doubleword (set: the command is illegal).
CMD_RESERVED = {IOTINVAL: 1 << 11 | 0x3FF << 34 | 0xF << 60,
                IOFENCE: 0x3FFFF << 14,
                IODIR: 3 << 10 | 1 << 32 | 0x3F << 34}
IOTINVAL_DW1_RESERVED = 0x3FF | 3 << 62

IOTLB_ENTRIES = 512                        # leaves the IOTLB keeps (then least recent out)
LEAF_SIZES = (1 << 12, 1 << 21, 1 << 30, 1 << 39)   # page, mega, giga, tera (Sv48x4)
DC_CACHE_ENTRIES = 64                      # device contexts cached
MAX_PROBE = 64 << 20                       # the longest range a device may ask about at once


class DmaFault(GuestMemoryError):
    """A DMA the IOMMU blocked (the device sees an error, as a PCIe Unsupported Request);
    the fault record, if any, is in the fault queue."""

    def __init__(self, cause: int, device_id: int, iova: int):
        super().__init__(f"IOMMU: {CAUSE_NAMES.get(cause, cause)} for device "
                         f"{device_id:#x} at {iova:#x}")
        self.cause, self.device_id, self.iova = cause, device_id, iova


class _Blocked(Exception):
    def __init__(self, cause: int, iotval2: int = 0, dtf: bool = False):
        self.cause, self.iotval2, self.dtf = cause, iotval2, dtf


class RiscvIommu:
    """The IOMMU of the simulated host.  ``ram``: system memory (where its tables and
    queues live, and where translated DMA goes); ``irq(level)``: its wired interrupt
    line; ``costs``: what a translation costs (IOTLB_HIT, IOMMU_WALK_REF), added up in
    ``stats["modelled_cycles"]``: latency a DMA waits for, not CPU time, so no hart pays."""

    def __init__(self, ram, irq=None, costs=None):
        self.ram = ram
        self.irq = irq or (lambda level: None)
        self.hit_cost = costs.IOTLB_HIT if costs else 0
        self.ref_cost = costs.IOMMU_WALK_REF if costs else 0
        self.warnings = GuestWarnings(log)
        self.ddtp = 0
        self.cqb = self.cqh = self.cqt = 0
        self.fqb = self.fqh = self.fqt = 0
        self.cqcsr = self.fqcsr = self.ipsr = 0
        self.icvec = 0
        # (gscid, a leaf's guest-physical base, its size) → (its host base, writable)
        self.iotlb: OrderedDict = OrderedDict()
        self.dc_cache: OrderedDict = OrderedDict()  # device id → (tc, iohgatp)
        self.walk_stats = mmu.WalkStats()
        self.probe_walks = mmu.WalkStats()          # (a probe's walks: not the device's)
        self._probing = False
        self.stats = {"translations": 0, "iotlb_hits": 0, "iotlb_misses": 0,
                      "iotlb_evictions": 0, "ddt_reads": 0, "faults": 0,
                      "fault_records": 0, "records_dropped": 0, "commands": 0,
                      "modelled_cycles": 0}
        self.fault_counts: dict[int, int] = {}

    # -- registers ------------------------------------------------------------
    def read(self, off: int, size: int) -> int:
        if size == 8:
            return self._read8(off) if off in WIDE else self._read4(off) | self._read4(off + 4) << 32
        if size != 4:                                       # (unspecified: the bytes of the word)
            return (self.read(off & ~3, 4) >> (8 * (off & 3))) & ((1 << (8 * size)) - 1)
        if off & ~7 in WIDE:
            return (self._read8(off & ~7) >> (32 if off & 4 else 0)) & 0xFFFFFFFF
        return self._read4(off)

    def _read8(self, off: int) -> int:
        return {CAPABILITIES: CAPS, DDTP: self.ddtp, CQB: self.cqb, FQB: self.fqb,
                ICVEC: self.icvec}.get(off, 0)

    def _read4(self, off: int) -> int:
        return {FCTL: FCTL_WSI, CQH: self.cqh, CQT: self.cqt, FQH: self.fqh, FQT: self.fqt,
                CQCSR: self.cqcsr, FQCSR: self.fqcsr, IPSR: self.ipsr}.get(off, 0)

    def write(self, off: int, size: int, value: int) -> None:
        if size == 8:
            if off in WIDE:
                self._write8(off, value)
            else:
                self._write4(off, value & 0xFFFFFFFF)
                self._write4(off + 4, value >> 32)
        elif size == 4 and off & ~7 in WIDE:                # half of a doubleword register
            old, shift = self._read8(off & ~7), 32 if off & 4 else 0
            self._write8(off & ~7, (old & ~(0xFFFFFFFF << shift)) | value << shift)
        elif size == 4:
            self._write4(off, value)
        else:
            self.warnings.warn("narrow", "IOMMU: a %d-byte write at %#x ignored", size, off)

    def _write8(self, off: int, value: int) -> None:
        if off == DDTP:
            self._write_ddtp(value)
        elif off == CQB and not self.cqcsr & CQON:
            self.cqb = self._queue_base(value)
            self.cqt &= self._entries(self.cqb) - 1
        elif off == FQB and not self.fqcsr & FQON:
            self.fqb = self._queue_base(value)
            self.fqh &= self._entries(self.fqb) - 1
        elif off == ICVEC:
            self.icvec = value & 0xFF

    def _write4(self, off: int, value: int) -> None:
        if off == CQT:
            self.cqt = value & (self._entries(self.cqb) - 1)
            self._run_commands()
        elif off == FQH:
            self.fqh = value & (self._entries(self.fqb) - 1)
        elif off == CQCSR:
            self._write_cqcsr(value)
        elif off == FQCSR:
            self._write_fqcsr(value)
        elif off == IPSR:
            self.ipsr &= ~(value & (CIP | FIP))
            self._update_ipsr()

    def _write_ddtp(self, value: int) -> None:
        mode = value & 0xF
        if mode > MODE_3LVL:
            mode = self.ddtp & 0xF                 # an illegal mode: the old one stays (WARL)
        self.ddtp = (value & PPN_FIELD) | mode
        self.dc_cache.clear()                      # (a new table: nothing cached is of it)

    @staticmethod
    def _queue_base(value: int) -> int:
        return (value & PPN_FIELD) | min(value & 0x1F, MAX_LOG2SZ - 1)

    @staticmethod
    def _entries(base: int) -> int:
        return 1 << ((base & 0x1F) + 1)

    def _write_cqcsr(self, value: int) -> None:
        cs = self.cqcsr & ~(value & (CQMF | CMD_TO | CMD_ILL | FENCE_W_IP))
        if value & CQEN and not cs & CQEN:
            self.cqh = 0
            cs &= ~(CQMF | CMD_TO | CMD_ILL | FENCE_W_IP)
        cs = (cs & ~(CQEN | CIE)) | (value & (CQEN | CIE))
        cs = cs | CQON if cs & CQEN else cs & ~CQON
        self.cqcsr = cs
        self._update_ipsr()
        self._run_commands()                      # (a cleared error lets the queue go on)

    def _write_fqcsr(self, value: int) -> None:
        cs = self.fqcsr & ~(value & (FQMF | FQOF))
        if value & FQEN and not cs & FQEN:
            self.fqt = 0
            cs &= ~(FQMF | FQOF)
        cs = (cs & ~(FQEN | FIE)) | (value & (FQEN | FIE))
        cs = cs | FQON if cs & FQEN else cs & ~FQON
        self.fqcsr = cs
        self._update_ipsr()

    def _update_ipsr(self) -> None:
        """Pending bits set again while their condition holds (writing one to clear them
        does not clear the condition)."""
        if self.cqcsr & CIE and self.cqcsr & (CQMF | CMD_TO | CMD_ILL | FENCE_W_IP):
            self.ipsr |= CIP
        if self.fqcsr & FIE and self.fqcsr & (FQOF | FQMF):
            self.ipsr |= FIP
        self.irq(bool(self.ipsr & (CIP | FIP)))

    # -- the command queue ------------------------------------------------------
    def _run_commands(self) -> None:
        """Execute the commands from cqh to cqt (at most the queue's size: bounded)."""
        if not self.cqcsr & CQON or self.cqcsr & (CQMF | CMD_TO | CMD_ILL):
            return
        n = self._entries(self.cqb)
        base = (self.cqb & PPN_FIELD) << 2
        while self.cqh != self.cqt:
            try:
                raw = self.ram.read(base + self.cqh * CMD_SIZE, CMD_SIZE)
            except GuestMemoryError:
                self.cqcsr |= CQMF
                break
            dw0, dw1 = struct.unpack("<QQ", raw)
            if not self._command(dw0, dw1):
                break
            self.stats["commands"] += 1
            self.cqh = (self.cqh + 1) % n
        self._update_ipsr()

    def _command(self, dw0: int, dw1: int) -> bool:
        """Execute one command; False if it stopped the queue (cmd_ill, cqmf)."""
        opcode, func3 = dw0 & 0x7F, (dw0 >> 7) & 7
        if opcode == IOTINVAL and func3 in (0, 1):
            av, pscv, gv = dw0 >> 10 & 1, dw0 >> 32 & 1, dw0 >> 33 & 1
            if func3 == 1 and pscv:                        # GVMA with a PSCID: illegal
                return self._illegal(dw0)
            if dw0 & CMD_RESERVED[IOTINVAL] or dw1 & IOTINVAL_DW1_RESERVED:
                return self._illegal(dw0)
            gscid, page = (dw0 >> 44) & 0xFFFF, ((dw1 >> 10) & ((1 << 52) - 1)) << 12
            # (GVMA: without GV every second-stage entry goes, whatever AV says)
            self._invalidate_iotlb(gscid if gv else None, page if av and gv else None)
            return True
        if opcode == IOFENCE and func3 == 0:
            if dw0 & CMD_RESERVED[IOFENCE] or dw1 >> 62:
                return self._illegal(dw0)
            if dw0 >> 11 & 1:                              # WSI=1: set fence_w_ip
                self.cqcsr |= FENCE_W_IP
            if dw0 >> 10 & 1:                              # AV=1: write DATA at ADDR
                try:
                    self.ram.write_int((dw1 & ((1 << 62) - 1)) << 2, 4, dw0 >> 32)
                except GuestMemoryError:
                    self.cqcsr |= CQMF
                    return False
            return True
        if opcode == IODIR and func3 in (0, 1):
            dv, did = dw0 >> 33 & 1, dw0 >> 40
            mode = self.ddtp & 0xF
            if dw0 & CMD_RESERVED[IODIR] or dw1 or (func3 == 1 and not dv) \
                    or (func3 == 0 and (dw0 >> 12) & 0xFFFFF) \
                    or (dv and mode in DDI_BITS_BY_MODE and did >> DDI_BITS_BY_MODE[mode]):
                return self._illegal(dw0)
            if dv:
                self.dc_cache.pop(did, None)
            else:
                self.dc_cache.clear()
            return True
        return self._illegal(dw0)

    def _illegal(self, dw0: int) -> bool:
        self.warnings.warn("cmd_ill", "IOMMU: illegal command %#x: the queue stops", dw0)
        self.cqcsr |= CMD_ILL
        return False

    def _invalidate_iotlb(self, gscid: int | None, page: int | None) -> None:
        if gscid is None and page is None:
            self.iotlb.clear()
            return
        for key in [k for k in self.iotlb
                    if (gscid is None or k[0] == gscid)
                    and (page is None or k[1] <= page < k[1] + k[2])]:
            del self.iotlb[key]

    # -- the fault queue ----------------------------------------------------------
    def _record(self, cause: int, ttyp: int, device_id: int, iotval: int, iotval2: int) -> None:
        self.stats["faults"] += 1
        self.fault_counts[cause] = self.fault_counts.get(cause, 0) + 1
        cs = self.fqcsr
        if not cs & FQON or cs & (FQMF | FQOF):
            self.stats["records_dropped"] += 1
            return
        n = self._entries(self.fqb)
        if (self.fqt + 1) % n == self.fqh:
            self.fqcsr |= FQOF
            self.stats["records_dropped"] += 1
        else:
            record = struct.pack("<QQQQ", cause | ttyp << 34 | device_id << 40, 0,
                                 iotval, iotval2)
            try:
                self.ram.write(((self.fqb & PPN_FIELD) << 2) + self.fqt * FAULT_SIZE, record)
                self.fqt = (self.fqt + 1) % n
                self.stats["fault_records"] += 1
            except GuestMemoryError:
                self.fqcsr |= FQMF
        if self.fqcsr & FIE:
            self.ipsr |= FIP
        self._update_ipsr()

    # -- translation ------------------------------------------------------------
    def translate(self, device_id: int, iova: int, write: bool) -> int:
        """The system-physical address of ``device_id``'s DMA to ``iova``; raises
        DmaFault (after queueing the fault record) if the IOMMU blocks it."""
        self.stats["translations"] += 1
        try:
            return self._translate(device_id, iova, write)
        except _Blocked as b:
            if not b.dtf or b.cause in REPORTED_DESPITE_DTF:
                self._record(b.cause, TTYP_WRITE if write else TTYP_READ, device_id, iova,
                             b.iotval2)
            else:
                self.stats["faults"] += 1
            raise DmaFault(b.cause, device_id, iova) from None

    def probe(self, device_id: int, iova: int, write: bool) -> bool:
        """Whether the DMA would pass (a device checking a ring before it uses it): no
        DMA happens, so nothing is counted, charged, recorded or put in the IOTLB."""
        self._probing = True
        try:
            self._translate(device_id, iova, write)
            return True
        except _Blocked:
            return False
        finally:
            self._probing = False

    def _count(self, name: str, n: int = 1) -> None:
        if not self._probing:
            self.stats[name] += n

    def _translate(self, device_id: int, iova: int, write: bool) -> int:
        mode = self.ddtp & 0xF
        if mode == MODE_OFF:
            raise _Blocked(ALL_DISALLOWED)
        if mode == MODE_BARE:
            return iova
        tc, iohgatp = self._device_context(device_id, mode)
        dtf = bool(tc & TC_DTF)
        if iohgatp >> 60 == IOHGATP_BARE:
            return iova
        gscid = (iohgatp >> 44) & 0xFFFF
        for size in LEAF_SIZES:                       # one entry per leaf, of its size
            key = (gscid, iova & ~(size - 1), size)
            hit = self.iotlb.get(key)
            if hit is not None:
                break
        if hit is not None and (hit[1] or not write):
            if not self._probing:
                self.iotlb.move_to_end(key)
            self._count("iotlb_hits")
            self._count("modelled_cycles", self.hit_cost)
            return hit[0] | (iova & (size - 1))
        self._count("iotlb_misses")
        stats = self.probe_walks if self._probing else self.walk_stats
        refs = stats.pte_reads
        access = mmu.STORE if write else mmu.LOAD
        try:
            spa, pte = mmu.walk(self.ram, iohgatp & ~(0xFFFF << 44), iova, access, 0, False,
                                False, stats, update_ad=False, g_stage=True)
        except Trap as t:
            raise _Blocked(t.cause, iova & ~3 if t.cause in (21, 23) else 0, dtf) from None
        finally:
            self._count("modelled_cycles", self.ref_cost * (stats.pte_reads - refs))
        if not pte & mmu.PTE_A or (write and not pte & mmu.PTE_D):
            raise _Blocked(WRITE_GUEST_PAGE_FAULT if write else READ_GUEST_PAGE_FAULT,
                           iova & ~3, dtf)                       # (no A/D updates: GADE=0)
        if not self._probing:
            # One entry for the whole leaf, as an IOTLB caches a superpage: a megapage
            # misses once, however many of its pages the device touches.
            leaf = 1 << (12 + 9 * stats.leaf_level)
            self.iotlb.pop(key, None)                 # (a read-only entry a write missed)
            self.iotlb[(gscid, iova & ~(leaf - 1), leaf)] = (
                spa & ~(leaf - 1), bool(pte & mmu.PTE_W and pte & mmu.PTE_D))
            if len(self.iotlb) > IOTLB_ENTRIES:
                self.iotlb.popitem(last=False)
                self.stats["iotlb_evictions"] += 1
        return spa

    def _device_context(self, device_id: int, mode: int) -> tuple[int, int]:
        """(tc, iohgatp) of ``device_id``'s context: cached, or read from the DDT."""
        cached = self.dc_cache.get(device_id)
        if cached is not None:
            self.dc_cache.move_to_end(device_id)
            return cached
        levels = mode - 1
        if device_id >> DDI_BITS[levels]:
            raise _Blocked(TTYPE_DISALLOWED)               # too wide for the table's depth
        addr = (self.ddtp & PPN_FIELD) << 2
        for level in range(levels - 1, 0, -1):
            index = (device_id >> 7) & 0x1FF if level == 1 else device_id >> 16
            entry = self._load(addr + index * 8, 8)
            if not entry & 1:
                raise _Blocked(DDT_INVALID)
            if entry & ~(PPN_FIELD | 1):
                raise _Blocked(DDT_MISCONFIGURED)
            addr = (entry & PPN_FIELD) << 2
        dc = addr + (device_id & 0x7F) * DC_SIZE
        tc, iohgatp, ta, fsc = struct.unpack("<QQQQ", self._load(dc, DC_SIZE, raw=True))
        if not tc & TC_V:
            raise _Blocked(DDT_INVALID)
        if not self._well_formed(tc, iohgatp, ta, fsc):
            raise _Blocked(DDT_MISCONFIGURED)
        self.dc_cache[device_id] = (tc, iohgatp)
        if len(self.dc_cache) > DC_CACHE_ENTRIES:
            self.dc_cache.popitem(last=False)
        return tc, iohgatp

    @staticmethod
    def _well_formed(tc: int, iohgatp: int, ta: int, fsc: int) -> bool:
        """The misconfiguration checks that apply to what this IOMMU has."""
        mode = iohgatp >> 60
        return not (tc & TC_MUST_BE_ZERO or (tc & TC_DPE and not tc & TC_PDTV)
                    or mode not in (IOHGATP_BARE, IOHGATP_SV39X4, IOHGATP_SV48X4)
                    or (mode != IOHGATP_BARE and iohgatp & 3)    # a 16 KiB aligned root
                    or ta & ~(0xFFFFF << 12)
                    or fsc >> 60 != 0)                   # no first stage here: Bare only

    def _load(self, addr: int, size: int, raw: bool = False):
        self._count("ddt_reads")
        self._count("modelled_cycles", self.ref_cost)
        try:
            return self.ram.read(addr, size) if raw else self.ram.read_int(addr, size)
        except GuestMemoryError:
            raise _Blocked(DDT_LOAD_FAULT) from None

    def report(self) -> dict:
        """Counts for --stats."""
        out = dict(self.stats)
        out["iotlb_entries"] = f"{len(self.iotlb):,} (at most {IOTLB_ENTRIES:,})"
        out["context_cache"] = f"{len(self.dc_cache):,} (at most {DC_CACHE_ENTRIES:,})"
        out["walk_pte_reads"] = self.walk_stats.pte_reads
        for cause, n in sorted(self.fault_counts.items()):
            out[f"fault {CAUSE_NAMES.get(cause, cause)}"] = n
        return out


class IommuDma:
    """What a device behind the IOMMU sees as memory: the interface of GuestMemory for
    DMA (contains, read, write, read_int, write_int), every access translated page by
    page for ``device_id``.  A blocked access raises DmaFault, a GuestMemoryError, which
    the device models already treat as a bad address from their driver."""

    def __init__(self, iommu: RiscvIommu, device_id: int):
        self.iommu, self.device_id = iommu, device_id
        self.ram = iommu.ram

    def _pieces(self, addr: int, length: int, write: bool):
        """(system-physical address, length) of each page the range touches."""
        if length < 0 or addr < 0 or addr + length > 1 << 64:
            raise GuestMemoryError(f"DMA range {addr:#x}+{length:#x} is not an address")
        out, end = [], addr + length
        while addr < end:
            n = min(end, (addr | 0xFFF) + 1) - addr
            out.append((self.iommu.translate(self.device_id, addr, write), n))
            addr += n
        return out

    def contains(self, addr: int, length: int = 1) -> bool:
        if length < 0 or addr < 0 or length > MAX_PROBE:
            return False
        page, end = addr & ~0xFFF, addr + length
        while page < end:
            if not self.iommu.probe(self.device_id, page, False):
                return False
            page += 0x1000
        return True

    def read(self, addr: int, length: int) -> bytes:
        return b"".join(self.ram.read(spa, n) for spa, n in self._pieces(addr, length, False))

    def write(self, addr: int, data: bytes) -> None:
        pieces = self._pieces(addr, len(data), True)      # all translated before any lands
        pos = 0
        for spa, n in pieces:
            self.ram.write(spa, data[pos:pos + n])
            pos += n

    def read_int(self, addr: int, size: int) -> int:
        return int.from_bytes(self.read(addr, size), "little")

    def write_int(self, addr: int, size: int, value: int) -> None:
        self.write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
