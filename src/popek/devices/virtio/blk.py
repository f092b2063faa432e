"""virtio-blk on a raw image file (virtio v1.2, section 5.2).

Config space (5.2.4): capacity u64 @0 (512-byte sectors), size_max u32 @8,
seg_max u32 @12, geometry @16, blk_size u32 @20.  Requests (5.2.6): a 16-byte
header {type u32, reserved u32, sector u64}, data, and a final status byte.

Writes go to the file with ``os.pwrite``; VIRTIO_BLK_T_FLUSH calls ``os.fsync``,
so data a guest has flushed is on the host file when the flush completes.
The image is locked while it is open, exclusively when writable and shared when
read-only (:mod:`popek.devices.imagelock`): a second writer is refused in one line.
"""

from __future__ import annotations

import logging
import os
import struct

from popek.devices.imagelock import LockedImage
from popek.errors import GuestMemoryError
from popek.guestlog import GuestWarnings

log = logging.getLogger(__name__)

SECTOR = 512
T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2
F_SIZE_MAX, F_SEG_MAX, F_RO, F_BLK_SIZE, F_FLUSH = 1 << 1, 1 << 2, 1 << 5, 1 << 6, 1 << 9
SEG_MAX = 126
SIZE_MAX = 1 << 20


class VirtioBlk:
    device_id = 2
    name = "blk"
    num_queues = 1
    queue_max = 256

    def __init__(self, mem, path: str, readonly: bool = False):
        self.mem = mem
        self.path = path
        self.readonly = readonly
        self.image = LockedImage(path, readonly)
        self.fd = self.image.fd
        self.capacity = self.image.size // SECTOR
        self.features = F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | (F_RO if readonly else 0)
        self.stats = {"reads": 0, "writes": 0, "flushes": 0, "bytes_read": 0, "bytes_written": 0}
        self.warnings = GuestWarnings(log)        # a guest's repeated mistakes: logged once
        self.config = blk_config(self.capacity, SIZE_MAX, SEG_MAX)

    def close(self) -> None:
        """Unlock and close the image (a second close does nothing)."""
        self.image.close()
        self.fd = None

    def reset(self) -> None:
        pass

    def negotiated(self, features: int) -> None:
        pass

    def read_config(self, off: int, size: int) -> int:
        return int.from_bytes(self.config[off:off + size], "little") if off + size <= len(self.config) else 0

    def write_config(self, off: int, size: int, value: int) -> None:
        pass                       # no writable config fields (no F_CONFIG_WCE)

    def process(self, queue: int, chain) -> int:
        """Serve one request; return the number of bytes written into the chain."""
        mem = self.mem
        status_addr, data_out = status_and_data(chain)
        if status_addr is None:
            self.warnings.warn("no status", "virtio-blk: request without a status byte; dropped")
            return 0
        try:
            header = read_header(mem, chain)
            if header is None:
                return self._status(status_addr, S_IOERR)
            rtype, _, sector = struct.unpack_from("<IIQ", header)
            if rtype == T_IN:
                n = sum(length for _, length in data_out)
                if n % SECTOR or sector + n // SECTOR > self.capacity:
                    return self._status(status_addr, S_IOERR)
                pos = sector * SECTOR
                for addr, length in data_out:
                    mem.write(addr, os.pread(self.fd, length, pos))
                    pos += length
                self.stats["reads"] += 1
                self.stats["bytes_read"] += n
                return self._status(status_addr, S_OK, n)
            if rtype == T_OUT:
                # Checked before a byte is copied: a request the disk refuses costs
                # nothing, however long its buffers.
                n = chain.readable_len() - 16
                if self.readonly or n % SECTOR or sector + n // SECTOR > self.capacity:
                    return self._status(status_addr, S_IOERR)
                pos, skip = sector * SECTOR, 16
                for addr, length in chain.readable:
                    if skip >= length:
                        skip -= length
                        continue
                    os.pwrite(self.fd, mem.read(addr + skip, length - skip), pos)
                    pos += length - skip
                    skip = 0
                self.stats["writes"] += 1
                self.stats["bytes_written"] += n
                return self._status(status_addr, S_OK)
            if rtype == T_FLUSH:
                if not self.readonly:
                    os.fsync(self.fd)
                self.stats["flushes"] += 1
                return self._status(status_addr, S_OK)
            if rtype == T_GET_ID:
                ident = b"popek-virtio-blk".ljust(20, b"\0")
                n = 0
                for addr, length in data_out:
                    chunk = ident[n:n + length]
                    if chunk:
                        mem.write(addr, chunk)
                        n += len(chunk)
                return self._status(status_addr, S_OK, n)
            return self._status(status_addr, S_UNSUPP)
        except GuestMemoryError as e:
            self.warnings.warn("memory", "virtio-blk: %s", e)
            return self._status(status_addr, S_IOERR)
        except OSError as e:
            self.warnings.warn("host I/O", "virtio-blk: host I/O error on %s: %s", self.path, e)
            return self._status(status_addr, S_IOERR)

    def _status(self, addr: int, status: int, written: int = 0) -> int:
        self.mem.write(addr, bytes([status]))
        return written + 1


def blk_config(capacity: int, size_max: int, seg_max: int) -> bytes:
    """The device's config space (5.2.4): capacity, size_max, seg_max, no geometry,
    blk_size."""
    return struct.pack("<QIIHBBI", capacity, size_max, seg_max, 0, 0, 0, SECTOR)


def status_and_data(chain) -> tuple:
    """A request's status byte (the last writable byte: None if there is none) and the
    writable buffers before it (a read's data)."""
    if not chain.writable or chain.writable[-1][1] < 1:
        return None, []
    addr, length = chain.writable[-1]
    return addr + length - 1, chain.writable[:-1] + ([(addr, length - 1)] if length > 1 else [])


def read_header(mem, chain) -> bytes | None:
    """A request's 16-byte header, from the first readable buffers (None: too short)."""
    out = b""
    for addr, length in chain.readable:
        out += mem.read(addr, min(length, 16 - len(out)))
        if len(out) == 16:
            return out
    return None
