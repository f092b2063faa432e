"""A driver cannot make a device's work endless or huge: rings laid over each
other are refused, one notify does a bounded amount of work (the rest waits for
the next slice, not dropped), and a request the disk refuses costs nothing
however long its buffers.  Driven by the mock driver of test_devices.py."""

from __future__ import annotations

import struct

import pytest

from popek.devices.memory import GuestMemory
from popek.devices.virtio.blk import VirtioBlk
from popek.devices.virtio.mmio import VirtioMmio
from popek.devices.virtio.transport import SLICE_BYTES, STATUS_NEEDS_RESET
from tests.test_devices import BASE, MockDriver

MiB = 1 << 20


@pytest.fixture
def disk(tmp_path):
    img = tmp_path / "disk.img"
    img.write_bytes(bytes(64 * 512))
    return img


def _driver(disk, ram=MiB, qsize=8):
    mem = GuestMemory(BASE, ram)
    dev = VirtioBlk(mem, str(disk))
    mmio = VirtioMmio(dev, mem)

    class Driver(MockDriver):
        QSIZE = qsize
    return Driver(mmio, mem), mmio, mem, dev


def test_used_ring_over_the_avail_ring_is_refused_not_looped(disk):
    """Each completion would bump avail.idx: the device would serve for ever inside
    the driver's one notify store (this froze the VMM and every VM beside it)."""
    drv, mmio, mem, dev = _driver(disk)
    mmio.write(0x044, 4, 0)
    mmio.write(0x0A0, 4, drv.avail & 0xFFFFFFFF)         # used ring := avail ring
    mmio.write(0x044, 4, 1)
    drv.used = drv.avail
    status, _ = drv.request(0, 0, read_len=512)
    assert mmio.read(0x070, 4) & STATUS_NEEDS_RESET
    assert dev.stats["reads"] == 0
    dev.close()


@pytest.mark.parametrize("other", ["desc", "avail"])
def test_any_overlap_of_the_three_areas_is_refused(disk, other):
    drv, mmio, mem, dev = _driver(disk)
    mmio.write(0x044, 4, 0)
    reg = {"desc": 0x080, "avail": 0x090}[other]
    mmio.write(reg, 4, (drv.used + 8) & 0xFFFFFFFF)        # into the used ring
    mmio.write(0x044, 4, 1)
    mmio.write(0x050, 4, 0)
    assert mmio.read(0x070, 4) & STATUS_NEEDS_RESET
    dev.close()


def test_a_ring_outside_ram_is_refused(disk):
    drv, mmio, mem, dev = _driver(disk)
    mmio.write(0x044, 4, 0)
    mmio.write(0x0A0, 4, (BASE + MiB - 16) & 0xFFFFFFFF)  # used ring runs off the end
    mmio.write(0x044, 4, 1)
    mmio.write(0x050, 4, 0)
    assert mmio.read(0x070, 4) & STATUS_NEEDS_RESET
    dev.close()


def test_one_notify_does_a_bounded_amount_of_work_and_the_rest_later(disk):
    """A queue full of requests: one notify serves at most a queue's worth and
    SLICE_BYTES of buffers; the rest is served by service() between slices, in
    order, none dropped."""
    disk.write_bytes(bytes(4 * MiB))
    qsize, big = 256, 512 * 1024
    drv, mmio, mem, dev = _driver(disk, ram=64 * MiB, qsize=qsize)
    hdr, data = BASE + 0x10000, BASE + 0x100000
    mem.write(hdr, struct.pack("<IIQ", 0, 0, 0))           # read 512 KiB from sector 0
    chains = qsize // 2
    for i in range(chains):                                # header, then data + status byte
        drv.set_desc(2 * i, hdr, 16, 1, 2 * i + 1)
        drv.set_desc(2 * i + 1, data, big + 1, 2)
        mem.write_int(drv.avail + 4 + 2 * i, 2, 2 * i)
    mem.write_int(drv.avail + 2, 2, chains)
    mmio.write(0x050, 4, 0)
    served = drv.used_idx()
    assert 0 < served < chains
    assert served * big <= SLICE_BYTES + big
    assert mmio.pending == {0}
    for _ in range(chains):
        if not mmio.pending:
            break
        mmio.service()
    assert drv.used_idx() == chains and not mmio.pending
    assert dev.stats["reads"] == chains
    assert not mmio.read(0x070, 4) & STATUS_NEEDS_RESET
    dev.close()


def test_a_refused_write_costs_no_copy(disk):
    """A write past the disk's end with a 32 MiB buffer: refused before one byte of
    the buffer is read (this stalled the host ~29 s for 256 such chains)."""
    drv, mmio, mem, dev = _driver(disk, ram=48 * MiB)
    reads = []
    real_read = mem.read

    def counting_read(addr, length):
        reads.append(length)
        return real_read(addr, length)
    mem.read = counting_read
    hdr, buf, st = BASE + 0x4000, BASE + MiB, BASE + 0x6000
    mem.write(hdr, struct.pack("<IIQ", 1, 0, 10_000))      # write, far past the end
    drv.set_desc(0, hdr, 16, 1, 1)
    drv.set_desc(1, buf, 32 * MiB, 1, 2)
    drv.set_desc(2, st, 1, 2)
    drv.submit(0)
    assert mem.read(st, 1) == b"\x01"                      # S_IOERR
    assert max(reads) <= 16                                # descriptors and the header only
    dev.close()


def test_input_the_guest_never_reads_is_bounded_and_the_console_still_polled(disk):
    """A guest that never reads its UART: host input waits up to 64 KiB, the rest is
    dropped as a serial line overruns, and the console is still read every time (its
    Ctrl-A x is seen there)."""
    from popek.riscv.platform import MAX_PENDING_INPUT, Platform

    class Owner:
        def shutdown(self, code, why): pass
        def request_reset(self): pass
        def rtc_ns(self): return 0

    class Typist:
        polls = 0
        def poll(self):
            self.polls += 1
            return b"x" * 10_000

    p = Platform(Owner(), GuestMemory(BASE, MiB), lambda data: None, [], [])
    typist = Typist()
    for _ in range(100):
        p.poll_input(typist)
    assert typist.polls == 100
    assert len(p.uart.rx) + len(p.pending_input) <= 4096 + MAX_PENDING_INPUT
    assert p.input_dropped == 100 * 10_000 - len(p.uart.rx) - len(p.pending_input)
