"""Property-based tests of the virtqueue parser and the virtio transport, driven as
a hostile driver would: random queue addresses and sizes, random descriptor
tables and rings, random requests.  Whatever the guest puts there, a notify
returns having done a bounded amount of work, only guest RAM is touched, and the
device either serves, refuses with an error status, or marks itself
DEVICE_NEEDS_RESET; no exception escapes (virtio v1.2, 2.7; queue.py's rules).

Reproducible: derandomized, so CI runs the same examples each time.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from popek.devices.memory import GuestMemory
from popek.devices.virtio.blk import VirtioBlk
from popek.devices.virtio.mmio import VirtioMmio
from popek.devices.virtio.queue import VirtqueueError

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
BASE, SIZE = 0x80000000, 1 << 20
# Addresses a hostile driver would try: inside RAM, at its edges, outside, on top of
# each other, overflowing.
ADDRESSES = st.one_of(st.integers(BASE, BASE + SIZE - 1),
                      st.sampled_from([0, BASE - 16, BASE + SIZE - 8, BASE + SIZE, 2 ** 63,
                                       2 ** 64 - 16, 0x10000000]),
                      st.integers(0, 2 ** 64 - 1))
DESC = st.tuples(ADDRESSES, st.sampled_from([0, 1, 16, 512, 513, 4096, 2 ** 32 - 1])
                 | st.integers(0, 2 ** 32 - 1),
                 st.integers(0, 7), st.integers(0, 2 ** 16 - 1))


def _machine(tmp_path):
    img = tmp_path / "fuzz.img"
    if not img.exists():
        img.write_bytes(bytes(range(256)) * 32)               # 16 sectors
    mem = GuestMemory(BASE, SIZE)
    dev = VirtioBlk(mem, str(img))
    irqs = []
    return mem, dev, VirtioMmio(dev, mem, irqs.append), img


def _setup(mmio, num, desc, avail, used):
    mmio.write(0x070, 4, 1 | 2)
    mmio.write(0x024, 4, 1)
    mmio.write(0x020, 4, 1)                                 # VIRTIO_F_VERSION_1
    mmio.write(0x070, 4, 1 | 2 | 8)
    mmio.write(0x030, 4, 0)
    mmio.write(0x038, 4, num)
    for reg, addr in ((0x080, desc), (0x090, avail), (0x0A0, used)):
        mmio.write(reg, 4, addr & 0xFFFFFFFF)
        mmio.write(reg + 4, 4, (addr >> 32) & 0xFFFFFFFF)
    mmio.write(0x044, 4, 1)
    mmio.write(0x070, 4, 1 | 2 | 8 | 4)


@FUZZ
@given(num=st.sampled_from([0, 1, 2, 3, 8, 255, 256, 257, 65535]),
       desc=ADDRESSES, avail=ADDRESSES, used=ADDRESSES,
       descs=st.lists(DESC, min_size=1, max_size=16),
       ring=st.lists(st.integers(0, 2 ** 16 - 1), min_size=1, max_size=8),
       avail_idx=st.integers(0, 2 ** 16 - 1), header=st.binary(min_size=16, max_size=16),
       used_over_avail=st.booleans())
def test_any_queue_layout_and_contents(tmp_path, num, desc, avail, used, descs, ring,
                                       avail_idx, header, used_over_avail):
    mem, dev, mmio, img = _machine(tmp_path)
    if used_over_avail:                                     # every completion a new request
        used = avail
    before = img.read_bytes()
    _setup(mmio, num, desc, avail, used)
    hdr = BASE + 0x80000                                    # a request header in RAM
    mem.write(hdr, header)

    def put(addr, data):                                    # only what lands in RAM
        if mem.contains(addr, len(data)):
            mem.write(addr, data)
    for i, (addr, length, flags, nxt) in enumerate(descs):
        put(desc + 16 * i, struct.pack("<QIHH", addr if i else hdr, length, flags, nxt))
    for i, head in enumerate(ring):
        put(avail + 4 + 2 * i, struct.pack("<H", head))
    put(avail + 2, struct.pack("<H", avail_idx))
    q = mmio.queues[0]
    served = []
    real_process = dev.process
    dev.process = lambda index, chain: served.append(chain) or real_process(index, chain)
    mmio.write(0x050, 4, 0)                                 # notify: must return
    assert len(served) <= q.num                            # a queue's worth at most
    for chain in served:                                    # every buffer was guest RAM
        for addr, length in chain.readable + chain.writable:
            assert mem.contains(addr, length)
    for _ in range(4):                                      # what was left: more slices
        mmio.service()
    status = mmio.read(0x070, 4)
    if status & 0x40:                                       # refused: the device waits for a reset
        mmio.write(0x070, 4, 0)
        assert mmio.read(0x070, 4) == 0 and not mmio.pending
    assert len(img.read_bytes()) == len(before)            # the image never grows
    dev.close()


@FUZZ
@given(num=st.sampled_from([1, 2, 4, 8]), descs=st.lists(DESC, min_size=1, max_size=12),
       head=st.integers(0, 2 ** 16 - 1))
def test_the_chain_walk_refuses_or_returns_a_chain_in_ram(tmp_path, num, descs, head):
    """The parser alone: a chain it returns lies wholly in guest RAM, is no longer than
    the queue, and has its readable buffers before its writable ones; anything else is
    a VirtqueueError."""
    mem, dev, mmio, _ = _machine(tmp_path)
    q = mmio.queues[0]
    q.num, q.desc, q.avail, q.used = num, BASE, BASE + 0x1000, BASE + 0x2000
    for i, (addr, length, flags, nxt) in enumerate(descs[:num]):
        mem.write(BASE + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))
    mem.write(q.avail + 2, struct.pack("<H", 1))
    mem.write(q.avail + 4, struct.pack("<H", head))
    try:
        chain = q.pop()
    except VirtqueueError:
        dev.close()
        return
    assert chain is not None
    assert len(chain.readable) + len(chain.writable) <= num
    for addr, length in chain.readable + chain.writable:
        assert mem.contains(addr, length)
    dev.close()
