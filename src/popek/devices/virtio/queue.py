"""The split virtqueue (virtio v1.2, section 2.7), read as hostile input.

Every number here comes from the guest, so a chain walk has a step budget equal
to the queue size (a loop in the ``next`` links ends it), addresses and lengths
are checked for overflow and for lying inside guest RAM (GuestMemory refuses
anything else), the total length of a chain is capped, indirect descriptors are
not offered (so none may appear), and readable descriptors must all come before
writable ones (2.7.4.2).  The three areas of a queue (descriptor table, avail
ring, used ring) must lie in guest RAM and apart (:meth:`Virtqueue.check_layout`):
a used ring laid over the avail ring would make every completion offer a new
request, and the device's work endless.  A broken chain or layout raises
:class:`VirtqueueError`; the transport then marks the device DEVICE_NEEDS_RESET
(2.1.2) and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass

from popek.errors import GuestMemoryError

DESC_F_NEXT, DESC_F_WRITE, DESC_F_INDIRECT = 1, 2, 4
AVAIL_F_NO_INTERRUPT = 1
DESC_SIZE = 16
MAX_CHAIN_BYTES = 64 << 20          # no request of ours needs more


class VirtqueueError(Exception):
    """The driver broke the virtqueue rules; the device needs a reset."""


@dataclass
class Chain:
    head: int
    readable: list[tuple[int, int]]      # (guest address, length), device reads
    writable: list[tuple[int, int]]      # device writes
    length: int = 0                      # all of its buffers' bytes

    def writable_len(self) -> int:
        return sum(n for _, n in self.writable)

    def readable_len(self) -> int:
        return sum(n for _, n in self.readable)


class Virtqueue:
    def __init__(self, mem, max_size: int = 256):
        self.mem = mem
        self.max_size = max_size
        self.reset()

    def reset(self) -> None:
        self.num = self.max_size
        self.ready = False
        self.desc = self.avail = self.used = 0
        self.last_avail = 0

    # 2.7.6: avail ring = flags u16, idx u16, ring[num] u16, used_event u16
    # 2.7.8: used ring  = flags u16, idx u16, ring[num] {id u32, len u32}, avail_event u16
    def areas(self) -> list[tuple[str, int, int]]:
        """(name, guest address, bytes) of the descriptor table and the two rings."""
        n = self.num
        return [("descriptor table", self.desc, DESC_SIZE * n), ("avail ring", self.avail, 6 + 2 * n),
                ("used ring", self.used, 6 + 8 * n)]

    def check_layout(self) -> None:
        """The three areas in guest RAM and apart, or :class:`VirtqueueError`."""
        areas = self.areas()
        for name, addr, size in areas:
            if not self.mem.contains(addr, size):
                raise VirtqueueError(f"{name} {addr:#x}+{size:#x} outside guest RAM")
        for i, (a, start_a, size_a) in enumerate(areas):
            for b, start_b, size_b in areas[i + 1:]:
                if start_a < start_b + size_b and start_b < start_a + size_a:
                    raise VirtqueueError(f"{a} and {b} overlap")

    def pop(self) -> Chain | None:
        """The next available chain, or None when the driver has offered nothing new."""
        mem = self.mem
        try:
            avail_idx = mem.read_int(self.avail + 2, 2)
            if avail_idx == self.last_avail:
                return None
            if (avail_idx - self.last_avail) & 0xFFFF > self.num:
                raise VirtqueueError(f"avail idx {avail_idx} runs {self.num}+ ahead of the device")
            head = mem.read_int(self.avail + 4 + 2 * (self.last_avail % self.num), 2)
            self.last_avail = (self.last_avail + 1) & 0xFFFF
            return self._walk(head)
        except GuestMemoryError as e:
            raise VirtqueueError(f"ring outside guest RAM: {e}") from None

    def _walk(self, head: int) -> Chain:
        chain = Chain(head, [], [])
        idx, total = head, 0
        for _ in range(self.num):                       # step budget: 2.7.5.2
            if idx >= self.num:
                raise VirtqueueError(f"descriptor index {idx} >= queue size {self.num}")
            raw = self.mem.read(self.desc + DESC_SIZE * idx, DESC_SIZE)
            addr = int.from_bytes(raw[0:8], "little")
            length = int.from_bytes(raw[8:12], "little")
            flags = int.from_bytes(raw[12:14], "little")
            nxt = int.from_bytes(raw[14:16], "little")
            if flags & DESC_F_INDIRECT:                 # 2.7.5.3: not negotiated
                raise VirtqueueError("indirect descriptor without VIRTIO_F_INDIRECT_DESC")
            if addr + length > (1 << 64) or not self.mem.contains(addr, length):
                raise VirtqueueError(f"buffer {addr:#x}+{length:#x} outside guest RAM")
            total += length
            if total > MAX_CHAIN_BYTES:
                raise VirtqueueError("descriptor chain longer than the device accepts")
            if flags & DESC_F_WRITE:
                chain.writable.append((addr, length))
            elif chain.writable:                        # 2.7.4.2: readable after writable
                raise VirtqueueError("device-readable descriptor after a writable one")
            else:
                chain.readable.append((addr, length))
            if not flags & DESC_F_NEXT:
                chain.length = total
                return chain
            idx = nxt
        raise VirtqueueError("descriptor chain loops (longer than the queue)")

    def interrupts_suppressed(self) -> bool:
        """The driver's VIRTQ_AVAIL_F_NO_INTERRUPT (2.7.7): no interrupt for used buffers
        of this queue (EVENT_IDX, its finer form, is not offered)."""
        try:
            return bool(self.mem.read_int(self.avail, 2) & AVAIL_F_NO_INTERRUPT)
        except GuestMemoryError:
            return False

    def push(self, head: int, written: int) -> None:
        """Return a chain to the driver in the used ring (2.7.8)."""
        mem = self.mem
        try:
            used_idx = mem.read_int(self.used + 2, 2)
            slot = self.used + 4 + 8 * (used_idx % self.num)
            mem.write_int(slot, 4, head)
            mem.write_int(slot + 4, 4, written)
            mem.write_int(self.used + 2, 2, (used_idx + 1) & 0xFFFF)
        except GuestMemoryError as e:
            raise VirtqueueError(f"used ring outside guest RAM: {e}") from None
