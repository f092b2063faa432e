"""An NVMe controller (NVM Express 1.4, the parts a Linux or a small driver uses): a
block device that does its own DMA, so it can be passed through to a VM behind the
IOMMU (vmm/host.py).  QEMU's identity (1b36:0010), class 01:08:02, one namespace of
512-byte blocks backed by a host file, INTx (no MSI-X: Linux's nvme driver falls back
to a single legacy interrupt).

Register file (BAR 0, 16 KiB; a 32-bit memory BAR, where QEMU's is 64-bit: drivers take
its address as they find it)::

    0x00 CAP    MQES 1023, CQR, TO 5 s, DSTRD 0, CSS NVM, MPSMIN = MPSMAX 4 KiB
    0x08 VS     1.4.0
    0x0C INTMS  write one to mask the interrupt   0x10 INTMC  write one to unmask
    0x14 CC     EN, CSS, MPS, SHN, IOSQES, IOCQES  0x1C CSTS   RDY, CFS, SHST
    0x24 AQA    admin queue sizes                  0x28 ASQ, 0x30 ACQ  their bases
    0x1000      doorbells: queue y's submission tail at 0x1000 + 8y, completion head +4

Queues are served when their tail doorbell is written, at most ``MAX_QUEUES`` queues of
at most 1024 entries, so one guest write does bounded work.  Admin commands: Identify
(controller, namespace, active namespaces, namespace descriptors), Create/Delete I/O
submission and completion queue, Set/Get Features (number of queues; the rest accepted
as they are), Get Log Page (zeros), Abort (nothing to abort: each command completes at
once), Asynchronous Event Request (held, never completed: no events).  I/O commands:
Read, Write (PRP1, PRP2 and PRP lists; at most MDTS, 128 KiB), Flush (``fsync``: the
data is on the host file when its completion is posted).  A command the controller
cannot carry out completes with an NVMe status (Invalid Opcode, Invalid Field, LBA Out
of Range, Data Transfer Error), never an exception.
"""

from __future__ import annotations

import logging
import os
import struct

from popek.devices.imagelock import LockedImage
from popek.devices.pci import Bar, PciFunction
from popek.errors import GuestMemoryError
from popek.guestlog import GuestWarnings

log = logging.getLogger(__name__)

REDHAT, QEMU_NVME = 0x1B36, 0x0010
NVME_CLASS = 0x010802
BAR_SIZE = 0x4000
PAGE = 4096
BLOCK = 512
MQES = 1023                      # queue entries at most, 0-based (1024)
MAX_QUEUES = 16                  # I/O queues of each kind
MDTS = 5                         # largest transfer: 2^5 pages, 128 KiB
CAP = MQES | 1 << 16 | 10 << 24 | 1 << 37     # CQR, TO 10 × 500 ms, CSS: NVM
VERSION = 0x00010400

CAP_REG, VS, INTMS, INTMC, CC, CSTS, AQA, ASQ, ACQ = 0x00, 0x08, 0x0C, 0x10, 0x14, 0x1C, \
    0x24, 0x28, 0x30
DOORBELLS = 0x1000
REGISTER_NAMES = {CAP_REG: "CAP", VS: "VS", INTMS: "INTMS", INTMC: "INTMC", CC: "CC",
                  CSTS: "CSTS", AQA: "AQA", ASQ: "ASQ", ACQ: "ACQ"}
CC_EN, CSTS_RDY, CSTS_CFS = 1, 1, 2
SHN_SHIFT, SHST_COMPLETE = 14, 2 << 2

# Status codes (generic command status, SCT 0), and command-specific (SCT 1).
SUCCESS, INVALID_OPCODE, INVALID_FIELD, DATA_TRANSFER_ERROR, INTERNAL_ERROR = 0, 1, 2, 4, 6
LBA_OUT_OF_RANGE = 0x80
INVALID_QUEUE_ID, INVALID_QUEUE_SIZE, CQ_INVALID = (1 << 8) | 1, (1 << 8) | 2, (1 << 8) | 0
DNR = 1 << 14                    # do not retry (in the status field's top bits)

ADMIN_DELETE_SQ, ADMIN_CREATE_SQ, ADMIN_GET_LOG, ADMIN_DELETE_CQ, ADMIN_CREATE_CQ, \
    ADMIN_IDENTIFY, ADMIN_ABORT, ADMIN_SET_FEATURES, ADMIN_GET_FEATURES, ADMIN_AER = \
    0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x0C
IO_FLUSH, IO_WRITE, IO_READ = 0x00, 0x01, 0x02
FEATURE_QUEUES = 0x07


class NvmeError(Exception):
    """A command's failure: its NVMe status (SCT << 8 | SC)."""

    def __init__(self, status: int):
        super().__init__(f"NVMe status {status:#x}")
        self.status = status


class _Queue:
    __slots__ = ("qid", "base", "size", "head", "tail", "phase", "cqid", "irq")

    def __init__(self, qid: int, base: int, size: int, cqid: int = 0, irq: bool = True):
        self.qid, self.base, self.size, self.cqid, self.irq = qid, base, size, cqid, irq
        self.head = self.tail = 0
        self.phase = 1                       # (completion queues: the phase tag to post)


class Nvme(PciFunction):
    """``mem``: where its DMA goes (guest RAM, or an IommuDma); ``irq(level)`` its INTA#."""

    def __init__(self, mem, path: str, irq, readonly: bool = False, serial: str = "popek"):
        super().__init__(REDHAT, QEMU_NVME, NVME_CLASS,
                         [Bar(BAR_SIZE, self.read, self.write, name=self.register_name)],
                         irq_pin=1, subsystem=(REDHAT, QEMU_NVME), revision=2)
        self.mem, self.irq, self.readonly, self.serial = mem, irq, readonly, serial
        self.warnings = GuestWarnings(log)
        self.image = LockedImage(path, readonly)          # (locked as QEMU locks it)
        self.fd = self.image.fd
        self.blocks = self.image.size // BLOCK
        self.stats = {"reads": 0, "writes": 0, "flushes": 0, "bytes_read": 0,
                      "bytes_written": 0, "admin": 0, "errors": 0}
        self.aqa = self.asq = self.acq = 0
        self._reset()

    def queue_counts(self) -> str:
        """For --stats: the queues a driver made, against their bound."""
        return f"{len(self.sqs)} SQ, {len(self.cqs)} CQ (at most {MAX_QUEUES + 1} each)"

    def describe(self) -> str:
        return f"nvme ({self.blocks * BLOCK >> 20} MiB)"

    def close(self) -> None:
        """Unlock and close the image (a second close does nothing)."""
        self.image.close()
        self.fd = None

    # -- registers ------------------------------------------------------------------
    def _reset(self) -> None:
        """A controller reset (CC.EN cleared): the admin queue's registers are kept."""
        self.cc = self.csts = self.intms = 0
        self.sqs: dict[int, _Queue] = {}
        self.cqs: dict[int, _Queue] = {}
        self.queues_wanted = (MAX_QUEUES - 1) | (MAX_QUEUES - 1) << 16
        self._update_irq()

    def register_name(self, off: int) -> str:
        if off >= DOORBELLS:
            y, head = divmod((off - DOORBELLS) // 4, 2)
            return f"nvme {'CQ' if head else 'SQ'}{y}{'HDBL' if head else 'TDBL'}"
        return "nvme " + REGISTER_NAMES.get(off if off in REGISTER_NAMES else off & ~7, "other")

    def read(self, off: int, size: int) -> int:
        regs = {CAP_REG: CAP, VS: VERSION, INTMS: self.intms, INTMC: self.intms, CC: self.cc,
                CSTS: self.csts, AQA: self.aqa, ASQ: self.asq, ACQ: self.acq}
        base = off & ~7 if off & ~7 in (CAP_REG, ASQ, ACQ) else off & ~3
        value = regs.get(base, 0) >> (8 * (off - base))
        return value & ((1 << (8 * size)) - 1)

    def write(self, off: int, size: int, value: int) -> None:
        if off >= DOORBELLS:
            self._doorbell((off - DOORBELLS) // 4, value & 0xFFFF)
        elif off == INTMS:
            self.intms |= value & 1
            self._update_irq()
        elif off == INTMC:
            self.intms &= ~value & 1
            self._update_irq()
        elif off == CC:
            self._write_cc(value & 0xFFFFFFFF)
        elif off == AQA:
            self.aqa = value & 0x0FFF0FFF
        elif off in (ASQ, ASQ + 4, ACQ, ACQ + 4):
            reg = off & ~7
            old = self.asq if reg == ASQ else self.acq
            shift = 32 if off & 4 else 0
            new = (old & ~(((1 << (8 * size)) - 1) << shift)) | (value << shift)
            new &= ~0xFFF & ((1 << 64) - 1)
            if reg == ASQ:
                self.asq = new
            else:
                self.acq = new

    def _write_cc(self, value: int) -> None:
        was = self.cc & CC_EN
        if value >> SHN_SHIFT & 3:                        # a shutdown notification
            self.csts = (self.csts & ~(3 << 2)) | SHST_COMPLETE
        if was and not value & CC_EN:                     # disabled: a controller reset
            self._reset()
            self.cc = value
            return
        self.cc = value
        if not was and value & CC_EN:
            if (value >> 7) & 0xF or (value >> 4) & 7:    # MPS 4 KiB and CSS NVM only
                self.csts |= CSTS_CFS
                return
            asqs, acqs = (self.aqa & 0xFFF) + 1, ((self.aqa >> 16) & 0xFFF) + 1
            if asqs < 2 or acqs < 2:
                self.csts |= CSTS_CFS
                return
            self.sqs[0] = _Queue(0, self.asq, asqs, cqid=0)
            self.cqs[0] = _Queue(0, self.acq, acqs)
            self.csts |= CSTS_RDY

    # -- doorbells and queues ------------------------------------------------------------
    def _doorbell(self, index: int, value: int) -> None:
        qid, head = divmod(index, 2)
        if not self.csts & CSTS_RDY:
            return
        if head:                                          # the host consumed completions
            cq = self.cqs.get(qid)
            if cq is None or value >= cq.size:
                self.warnings.warn("doorbell", "nvme: CQ%d head %d is not a slot", qid, value)
                return
            cq.head = value
            self._update_irq()
            return
        sq = self.sqs.get(qid)
        if sq is None or value >= sq.size:
            self.warnings.warn("doorbell", "nvme: SQ%d tail %d is not a slot", qid, value)
            return
        sq.tail = value
        self._serve(sq)

    def _serve(self, sq: _Queue) -> None:
        """Every command from head to tail (at most a queue's worth: bounded)."""
        for _ in range(sq.size):
            if sq.head == sq.tail or sq.qid not in self.sqs:
                break
            try:
                cmd = self.mem.read(sq.base + sq.head * 64, 64)
            except GuestMemoryError as e:
                self.warnings.warn("sq", "nvme: SQ%d entry unreadable: %s", sq.qid, e)
                self.csts |= CSTS_CFS                     # (a fatal controller status)
                return
            sq.head = (sq.head + 1) % sq.size
            opcode, cid = cmd[0], struct.unpack_from("<H", cmd, 2)[0]
            result, status = 0, SUCCESS
            try:
                result = (self._admin if sq.qid == 0 else self._io)(opcode, cmd)
                if result is None:                        # (held: an event request)
                    continue
            except NvmeError as e:
                status = e.status
                self.stats["errors"] += 1
            self._complete(sq, cid, result, status)

    def _complete(self, sq: _Queue, cid: int, result: int, status: int) -> None:
        cq = self.cqs.get(sq.cqid)
        if cq is None:
            return
        if (cq.tail + 1) % cq.size == cq.head:
            self.warnings.warn("cq full", "nvme: CQ%d full, a completion lost", cq.qid)
            return
        entry = struct.pack("<IIHHHH", result & 0xFFFFFFFF, 0, sq.head, sq.qid, cid,
                            cq.phase | (status << 1))
        try:
            self.mem.write(cq.base + cq.tail * 16, entry)
        except GuestMemoryError as e:
            self.warnings.warn("cq", "nvme: CQ%d entry unwritable: %s", cq.qid, e)
            self.csts |= CSTS_CFS
            return
        cq.tail = (cq.tail + 1) % cq.size
        if cq.tail == 0:
            cq.phase ^= 1
        self._update_irq()

    def _update_irq(self) -> None:
        pending = any(cq.irq and cq.head != cq.tail for cq in self.cqs.values())
        self.irq(pending and not self.intms & 1)

    # -- admin commands ----------------------------------------------------------------
    def _admin(self, opcode: int, cmd: bytes) -> int | None:
        self.stats["admin"] += 1
        cdw10, cdw11 = struct.unpack_from("<II", cmd, 40)
        prp1, prp2 = struct.unpack_from("<QQ", cmd, 24)
        nsid = struct.unpack_from("<I", cmd, 4)[0]
        if opcode == ADMIN_IDENTIFY:
            self._to_host(prp1, prp2, self._identify(cdw10 & 0xFF, nsid))
            return 0
        if opcode == ADMIN_CREATE_CQ:
            qid, size = cdw10 & 0xFFFF, (cdw10 >> 16) + 1
            if not 0 < qid <= MAX_QUEUES or qid in self.cqs:
                raise NvmeError(INVALID_QUEUE_ID | DNR)
            if size < 2 or size > MQES + 1 or not cdw11 & 1 or prp1 % PAGE:
                raise NvmeError(INVALID_QUEUE_SIZE | DNR)
            self.cqs[qid] = _Queue(qid, prp1, size, irq=bool(cdw11 & 2))
            return 0
        if opcode == ADMIN_CREATE_SQ:
            qid, size, cqid = cdw10 & 0xFFFF, (cdw10 >> 16) + 1, cdw11 >> 16
            if not 0 < qid <= MAX_QUEUES or qid in self.sqs:
                raise NvmeError(INVALID_QUEUE_ID | DNR)
            if cqid not in self.cqs or cqid == 0:
                raise NvmeError(CQ_INVALID | DNR)
            if size < 2 or size > MQES + 1 or not cdw11 & 1 or prp1 % PAGE:
                raise NvmeError(INVALID_QUEUE_SIZE | DNR)
            self.sqs[qid] = _Queue(qid, prp1, size, cqid=cqid)
            return 0
        if opcode in (ADMIN_DELETE_SQ, ADMIN_DELETE_CQ):
            table = self.sqs if opcode == ADMIN_DELETE_SQ else self.cqs
            qid = cdw10 & 0xFFFF
            if qid == 0 or qid not in table:
                raise NvmeError(INVALID_QUEUE_ID | DNR)
            del table[qid]
            self._update_irq()
            return 0
        if opcode in (ADMIN_SET_FEATURES, ADMIN_GET_FEATURES):
            if cdw10 & 0xFF == FEATURE_QUEUES:
                if opcode == ADMIN_SET_FEATURES:
                    nsq, ncq = min(cdw11 & 0xFFFF, MAX_QUEUES - 1), min(cdw11 >> 16, MAX_QUEUES - 1)
                    self.queues_wanted = nsq | ncq << 16
                return self.queues_wanted
            return 0                                      # (the rest: as they are, all zero)
        if opcode == ADMIN_GET_LOG:
            dwords = ((cdw10 >> 16) | (struct.unpack_from("<I", cmd, 44)[0] & 0xFFFF) << 16) + 1
            self._to_host(prp1, prp2, bytes(min(dwords * 4, 1 << MDTS << 12)))
            return 0
        if opcode == ADMIN_ABORT:
            return 1                                      # (DW0 bit 0: not aborted)
        if opcode == ADMIN_AER:
            return None
        raise NvmeError(INVALID_OPCODE | DNR)

    def _identify(self, cns: int, nsid: int) -> bytes:
        page = bytearray(PAGE)
        if cns == 1:                                      # the controller
            struct.pack_into("<HH", page, 0, REDHAT, REDHAT)
            page[4:24] = self.serial.encode()[:20].ljust(20)
            page[24:64] = b"popek NVMe".ljust(40)
            page[64:72] = b"1.0".ljust(8)
            page[77] = MDTS
            struct.pack_into("<HI", page, 78, 0, VERSION)
            page[512], page[513] = 0x66, 0x44             # SQ and CQ entries: 64, 16 bytes
            struct.pack_into("<HI", page, 514, 0, 1)      # MAXCMD, NN: one namespace
            page[525] = 1                                 # a volatile write cache (Flush)
            nqn = f"nqn.2019-08.org.qemu:{self.serial}".encode()[:255]
            page[768:768 + len(nqn)] = nqn                # SUBNQN (QEMU's form)
        elif cns == 0:                                    # namespace 1
            if nsid != 1:
                raise NvmeError(INVALID_FIELD | DNR)
            struct.pack_into("<QQQ", page, 0, self.blocks, self.blocks, self.blocks)
            struct.pack_into("<I", page, 128, 9 << 16)    # LBA format 0: 512-byte blocks
        elif cns == 2:                                    # active namespaces after nsid
            if nsid < 1:
                struct.pack_into("<I", page, 0, 1)
        elif cns != 3:                                    # (3: no descriptors: all zero)
            raise NvmeError(INVALID_FIELD | DNR)
        return bytes(page)

    # -- I/O commands ----------------------------------------------------------------
    def _io(self, opcode: int, cmd: bytes) -> int:
        nsid = struct.unpack_from("<I", cmd, 4)[0]
        if opcode == IO_FLUSH:
            os.fsync(self.fd)
            self.stats["flushes"] += 1
            return 0
        if opcode not in (IO_READ, IO_WRITE):
            raise NvmeError(INVALID_OPCODE | DNR)
        if nsid != 1:
            raise NvmeError(INVALID_FIELD | DNR)
        prp1, prp2, slba = struct.unpack_from("<QQQ", cmd, 24)
        blocks = (struct.unpack_from("<I", cmd, 48)[0] & 0xFFFF) + 1
        if slba + blocks > self.blocks:
            raise NvmeError(LBA_OUT_OF_RANGE | DNR)
        length = blocks * BLOCK
        if length > PAGE << MDTS:
            raise NvmeError(INVALID_FIELD | DNR)
        pos = slba * BLOCK
        if opcode == IO_READ:
            self._to_host(prp1, prp2, os.pread(self.fd, length, pos).ljust(length, b"\0"))
            self.stats["reads"] += 1
            self.stats["bytes_read"] += length
        else:
            if self.readonly:
                raise NvmeError((2 << 8) | 0x82 | DNR)     # write to a read-only range
            os.pwrite(self.fd, self._from_host(prp1, prp2, length), pos)
            self.stats["writes"] += 1
            self.stats["bytes_written"] += length
        return 0

    # -- data through PRPs --------------------------------------------------------------
    def _segments(self, prp1: int, prp2: int, length: int) -> list[tuple[int, int]]:
        """(address, length) of each piece of a transfer described by PRP1/PRP2."""
        first = min(length, PAGE - prp1 % PAGE)
        out, left = [(prp1, first)], length - first
        if left <= 0:
            return out
        if left <= PAGE:
            if prp2 % PAGE:
                raise NvmeError(INVALID_FIELD | DNR)
            return out + [(prp2, left)]
        pages = -(-left // PAGE)                        # (at most 2^MDTS: bounded)
        try:
            entries = struct.unpack(f"<{pages}Q", self.mem.read(prp2, 8 * pages)) \
                if prp2 % PAGE + 8 * pages <= PAGE else None
        except GuestMemoryError:
            raise NvmeError(DATA_TRANSFER_ERROR) from None
        if entries is None:                             # a list past its page: not ours
            raise NvmeError(INVALID_FIELD | DNR)
        for addr in entries:
            if addr % PAGE:
                raise NvmeError(INVALID_FIELD | DNR)
            out.append((addr, min(PAGE, left)))
            left -= PAGE
        return out

    def _to_host(self, prp1: int, prp2: int, data: bytes) -> None:
        pos = 0
        try:
            for addr, n in self._segments(prp1, prp2, len(data)):
                self.mem.write(addr, data[pos:pos + n])
                pos += n
        except GuestMemoryError:
            raise NvmeError(DATA_TRANSFER_ERROR) from None

    def _from_host(self, prp1: int, prp2: int, length: int) -> bytes:
        try:
            return b"".join(self.mem.read(addr, n) for addr, n in self._segments(prp1, prp2,
                                                                                 length))
        except GuestMemoryError:
            raise NvmeError(DATA_TRANSFER_ERROR) from None
