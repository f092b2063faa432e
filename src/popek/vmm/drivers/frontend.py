"""The disk a guest sees when a physical disk's driver is placed by the VMM
(``--vm ...,disk=ID``, vmm/drivers/): an ordinary virtio-blk on virtio-mmio, whose
requests go to the placement's backend (the VMM's own driver, or a driver domain)
instead of a host file.

The guest keeps its virtio driver; the frontend is VMM code and trusts nothing of
it.  It turns a descriptor chain into a :class:`BlockRequest`: the operation, the
sector, and the data as *pieces*, each inside one guest page of the guest's RAM and a
whole number of 512-byte blocks (what a disk's DMA can be pointed at); anything else is
refused with VIRTIO_BLK_S_IOERR before a backend sees it.  The backend completes it,
at once or later (``finish``), and the status byte is written here.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

from popek.devices.virtio.blk import (F_BLK_SIZE, F_FLUSH, F_SEG_MAX, F_SIZE_MAX, S_IOERR,
                                      S_OK, S_UNSUPP, SECTOR, T_FLUSH, T_GET_ID, T_IN, T_OUT,
                                      blk_config, read_header, status_and_data)
from popek.devices.virtio.transport import DEFERRED
from popek.errors import GuestMemoryError
from popek.guestlog import GuestWarnings

log = logging.getLogger(__name__)

PAGE = 4096
SEG_MAX = 32                   # descriptors of data per request (told in the config)
SIZE_MAX = PAGE                # bytes per descriptor: so at most 2 pieces each
MAX_PIECES = 2 * SEG_MAX
OP_READ, OP_WRITE, OP_FLUSH = 0, 1, 2


@dataclass
class BlockRequest:
    """One guest request, as the backends see it."""
    id: int
    op: int
    sector: int
    pieces: list = field(default_factory=list)    # (guest-physical address, length)
    head: int = 0                                  # its chain, for the used ring
    status_addr: int = 0
    data_len: int = 0
    generation: int = 0                            # the device's, when it was made

    @property
    def blocks(self) -> int:
        return self.data_len // SECTOR


class DiskFrontend:
    """A virtio-blk device model for ``vm`` whose requests go to ``backend`` (submit,
    cancel, has_room, capacity, name)."""
    device_id = 2
    name = "blk"
    num_queues = 1
    queue_max = 64

    def __init__(self, vm, backend):
        self.vm = vm                                # the guest's
        self.mem = vm.ram
        self.backend = backend
        self.features = F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH
        self.config = blk_config(backend.capacity, SIZE_MAX, SEG_MAX)
        self.warnings = GuestWarnings(log)
        self.stats = {"reads": 0, "writes": 0, "flushes": 0, "bytes_read": 0,
                      "bytes_written": 0, "refused": 0}
        self.generation = 0
        self.next_id = 1
        self.complete = None                        # (set by the transport)
        self.kick = None                            # (set by the transport)

    def describe(self) -> str:
        return f"virtio-blk on {self.backend.name}"

    def host_address(self, gpa: int) -> int:
        """Where guest-physical ``gpa`` (in the guest's RAM: checked) is in host memory."""
        return self.vm.host_base + (gpa - self.mem.base)

    def note_crash(self, device: str) -> None:
        """The driver of this disk died and is being restarted (the ledger says so)."""
        self.vm.ledger.note("driver_restart", device)

    def close(self) -> None:
        pass

    def reset(self) -> None:
        """The driver reset the device: requests in flight are forgotten (their grants
        revoked now: a late DMA must not land in memory the guest has reused)."""
        self.generation += 1
        self.backend.cancel(self)

    def negotiated(self, features: int) -> None:
        pass

    def read_config(self, off: int, size: int) -> int:
        return int.from_bytes(self.config[off:off + size], "little") \
            if off + size <= len(self.config) else 0

    def write_config(self, off: int, size: int, value: int) -> None:
        pass

    def ready(self, queue: int) -> bool:
        """Take another chain only if the backend has room for a request."""
        return self.backend.has_room(self)

    def process(self, queue: int, chain):
        status_addr, data_in = status_and_data(chain)
        if status_addr is None:
            self.warnings.warn("no status", "virtio-blk: request without a status byte; dropped")
            return 0
        try:
            header = read_header(self.mem, chain)
            if header is None:
                return self._status(status_addr, S_IOERR)
            rtype, _, sector = struct.unpack_from("<IIQ", header)
            if rtype == T_GET_ID:
                return self._get_id(data_in, status_addr)
            if rtype == T_IN:
                op, buffers = OP_READ, data_in
            elif rtype == T_OUT:
                op, buffers = OP_WRITE, _skip(chain.readable, 16)
            elif rtype == T_FLUSH:
                op, buffers = OP_FLUSH, []
            else:
                return self._status(status_addr, S_UNSUPP)
            pieces = self._pieces(buffers)
            if pieces is None:
                return self._status(status_addr, S_IOERR)
            n = sum(length for _, length in pieces)
            if op != OP_FLUSH and (n == 0 or sector + n // SECTOR > self.backend.capacity):
                return self._status(status_addr, S_IOERR)
        except GuestMemoryError as e:
            self.warnings.warn("memory", "virtio-blk: %s", e)
            return self._status(status_addr, S_IOERR)
        req = BlockRequest(self.next_id, op, sector, pieces, chain.head, status_addr, n,
                           self.generation)
        self.next_id += 1
        self.backend.submit(self, req)
        return DEFERRED

    def _pieces(self, buffers) -> list | None:
        """The buffers cut at page boundaries: each piece in the guest's RAM and of
        whole blocks; None (and a warning, once) if they are not."""
        pieces = []
        for addr, length in buffers:
            while length:
                n = min(length, PAGE - addr % PAGE)
                pieces.append((addr, n))
                addr += n
                length -= n
        if len(pieces) > MAX_PIECES:
            self.warnings.warn("pieces", "virtio-blk: a request of %d pieces (at most %d)",
                               len(pieces), MAX_PIECES)
            return None
        for addr, n in pieces:
            if n % SECTOR or not self.mem.contains(addr, n):
                self.warnings.warn("piece", "virtio-blk: a buffer of %d bytes at %#x is not "
                                   "whole blocks in RAM (refused)", n, addr)
                return None
        return pieces

    def _get_id(self, data_in, status_addr: int) -> int:
        ident = f"popek-{self.backend.name}".encode()[:20].ljust(20, b"\0")
        n = 0
        for addr, length in data_in:
            chunk = ident[n:n + length]
            if chunk:
                self.mem.write(addr, chunk)
                n += len(chunk)
        return self._status(status_addr, S_OK, n)

    def _status(self, addr: int, status: int, written: int = 0) -> int:
        if status != S_OK:
            self.stats["refused"] += 1
        try:
            self.mem.write(addr, bytes([status]))
        except GuestMemoryError:
            return written
        return written + 1

    def finish(self, req: BlockRequest, ok: bool) -> None:
        """The backend is done with ``req`` (``ok``: the disk did it)."""
        if req.generation != self.generation:
            return                                  # (the device was reset since)
        if ok:
            key = {OP_READ: "reads", OP_WRITE: "writes", OP_FLUSH: "flushes"}[req.op]
            self.stats[key] += 1
            if req.op == OP_READ:
                self.stats["bytes_read"] += req.data_len
            elif req.op == OP_WRITE:
                self.stats["bytes_written"] += req.data_len
        written = self._status(req.status_addr, S_OK if ok else S_IOERR,
                               req.data_len if ok and req.op == OP_READ else 0)
        self.complete(0, req.head, written)
        if self.kick is not None:
            self.kick(0)                            # (room again: chains may wait)


def _skip(buffers, n: int) -> list:
    """``buffers`` without their first ``n`` bytes (a write's header)."""
    out = []
    for addr, length in buffers:
        if n >= length:
            n -= length
            continue
        out.append((addr + n, length - n))
        n = 0
    return out
