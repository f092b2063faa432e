"""Guest RAM: one object with bounds-checked, typed access.

The RAM is a single anonymous memory mapping: the host kernel hands out zeroed
pages as the guest first touches them, so a guest of N MiB costs at most N MiB
of host memory and nothing is spent zeroing it up front (a 128 MiB
``bytearray`` took ~60 ms to make, longer than a small test program runs).  The
CPU's fast paths index it directly through the ``m8..m64`` memoryviews; device
models (DMA) use :meth:`read` / :meth:`write`, which refuse anything outside
guest RAM, so a hostile descriptor can never reach host memory.

Stores into pages that hold decoded code must invalidate that code.  Code-page
tracking lives here because both the CPU's slow store path and DMA write RAM.
"""

from __future__ import annotations

import mmap

from popek.errors import GuestMemoryError

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT


class GuestMemory:
    def __init__(self, base: int, size: int, backing=None):
        """``backing``: a buffer to use (the KVM backend's mmap), else a new anonymous mmap."""
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError(f"guest RAM size must be a positive multiple of {PAGE_SIZE}")
        self.base = base
        self.size = size
        self.end = base + size
        self.data = backing if backing is not None else mmap.mmap(-1, size)
        self.data_offset = 0          # where base lives in self.data (non-zero in a window)
        self.parent = None
        view = memoryview(self.data)
        self.m8 = view
        self.m16 = view.cast("H")
        self.m32 = view.cast("I")
        self.m64 = view.cast("Q")
        # Pages (numbered from base) whose writes someone must hear about: decoded
        # code (to invalidate it) or a device register living in RAM (HTIF's
        # tohost).  CPUs keep watched pages out of their fast store paths.
        self.watchers: dict[int, list] = {}
        # Called with no arguments when a page becomes watched: the CPUs that cache
        # fast store translations drop them (a watched page must not be written past
        # its watchers).
        self.on_watch: list = []

    def contains(self, addr: int, length: int = 1) -> bool:
        return self.base <= addr and addr + length <= self.end and length >= 0

    def offset(self, addr: int, length: int = 1) -> int:
        """Offset in ``data`` of guest-physical ``addr``; raises if the range leaves RAM."""
        if not (self.base <= addr and addr + length <= self.end and length >= 0):
            raise GuestMemoryError(f"guest-physical range {addr:#x}+{length:#x} is outside RAM")
        return addr - self.base + self.data_offset

    def window(self, base: int, host_addr: int, size: int) -> "GuestMemory":
        """A VM's RAM: ``size`` bytes of this memory at ``host_addr``, seen at ``base``.

        It shares the bytes (no copy) and reports writes to this memory's watchers,
        so a device's DMA into a VM invalidates the host CPU's decoded code too.
        """
        w = GuestMemory.__new__(GuestMemory)
        w.base, w.size, w.end = base, size, base + size
        w.data = self.data
        w.data_offset = self.offset(host_addr, size)
        w.m8, w.m16, w.m32, w.m64 = self.m8, self.m16, self.m32, self.m64  # index: addr - base + data_offset
        w.parent = self
        w.watchers = {}
        w.on_watch = []
        return w

    # -- bulk access (loaders, DMA) ----------------------------------------
    def read(self, addr: int, length: int) -> bytes:
        off = self.offset(addr, length)
        return bytes(self.data[off:off + length])

    def write(self, addr: int, data: bytes) -> None:
        off = self.offset(addr, len(data))
        self.data[off:off + len(data)] = data
        self.note_write(off, len(data))

    # -- typed access (little endian, any alignment) -------------------------
    def read_int(self, addr: int, size: int) -> int:
        off = self.offset(addr, size)
        return int.from_bytes(self.data[off:off + size], "little")

    def write_int(self, addr: int, size: int, value: int) -> None:
        off = self.offset(addr, size)
        self.data[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        self.note_write(off, size)

    def watch(self, page: int, callback) -> None:
        """Call ``callback(offset, length)`` after every write that touches ``page``."""
        fns = self.watchers.get(page)
        if fns is None:
            fns = self.watchers[page] = []
            for forget in self.on_watch:
                forget()
        fns.append(callback)

    def unwatch(self, page: int, callback) -> None:
        fns = self.watchers.get(page)
        if fns and callback in fns:
            fns.remove(callback)
            if not fns:
                del self.watchers[page]

    def note_write(self, off: int, length: int) -> None:
        """Tell watchers about a write to offsets ``off..off+length`` of ``data``."""
        if self.parent is not None:
            self.parent.note_write(off, length)
            return
        if not self.watchers or length <= 0:
            return
        for page in range(off >> PAGE_SHIFT, ((off + length - 1) >> PAGE_SHIFT) + 1):
            fns = self.watchers.get(page)
            if fns:
                for fn in list(fns):
                    fn(off, length)
