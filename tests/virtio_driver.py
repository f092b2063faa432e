"""A virtio driver written in Python for device tests: it negotiates, sets up any
number of split queues over a virtio-mmio transport, and offers and collects
buffers, as a guest's driver would (tests/test_net.py, tests/test_hostile_devices.py)."""

from __future__ import annotations

import struct

from popek.devices.virtio.transport import (STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK,
                                            STATUS_FEATURES_OK)

F_NEXT, F_WRITE = 1, 2


class Queue:
    def __init__(self, driver, index: int, base: int, size: int):
        self.d, self.index, self.size = driver, index, size
        self.desc, self.avail, self.used = base, base + 0x1000, base + 0x2000
        self.buffers = base + 0x3000                    # size pages of buffers, one each
        self.avail_idx = self.seen_used = self.next_desc = 0

    def buffer(self, i: int) -> int:
        return self.buffers + 0x1000 * i

    def offer(self, pieces, notify: bool = True) -> int:
        """A chain of (bytes to put | int length, writable) pieces; returns its head."""
        mem, head = self.d.mem, self.next_desc
        for n, (data, writable) in enumerate(pieces):
            i = (head + n) % self.size
            addr = self.buffer(i)
            length = data if isinstance(data, int) else len(data)
            if not isinstance(data, int):
                mem.write(addr, data)
            flags = (F_WRITE if writable else 0) | (F_NEXT if n + 1 < len(pieces) else 0)
            mem.write(self.desc + 16 * i, struct.pack("<QIHH", addr, length, flags,
                                                      (i + 1) % self.size))
        self.next_desc = (head + len(pieces)) % self.size
        mem.write_int(self.avail + 4 + 2 * (self.avail_idx % self.size), 2, head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        mem.write_int(self.avail + 2, 2, self.avail_idx)
        if notify:
            self.d.dev.write(0x050, 4, self.index)
        return head

    def collect(self) -> list[tuple[int, int]]:
        """(head, length) of every chain the device used since the last collect."""
        mem, out = self.d.mem, []
        used_idx = mem.read_int(self.used + 2, 2)
        while self.seen_used != used_idx:
            slot = self.used + 4 + 8 * (self.seen_used % self.size)
            out.append((mem.read_int(slot, 4), mem.read_int(slot + 4, 4)))
            self.seen_used = (self.seen_used + 1) & 0xFFFF
        return out


class MmioDriver:
    def __init__(self, dev, mem, queues: int, base: int, size: int = 8, features: int = 1 << 32):
        self.dev, self.mem = dev, mem
        w = dev.write
        w(0x070, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER)
        self.offered = dev.read(0x010, 4)
        for sel in (0, 1):
            w(0x024, 4, sel)
            w(0x020, 4, (features >> (32 * sel)) & 0xFFFFFFFF)
        w(0x070, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK)
        self.queues = []
        for i in range(queues):
            q = Queue(self, i, base + 0x10000 * i, size)
            w(0x030, 4, i)
            w(0x038, 4, size)
            for reg, addr in ((0x080, q.desc), (0x090, q.avail), (0x0A0, q.used)):
                w(reg, 4, addr & 0xFFFFFFFF)
                w(reg + 4, 4, addr >> 32)
            w(0x044, 4, 1)
            self.queues.append(q)
        w(0x070, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK)
