"""Device models driven directly, without a guest: the bus, PLIC, UART, and
virtio-blk fed by a mock driver, including hostile descriptor chains."""

from __future__ import annotations

import os
import struct

import pytest

from popek.devices.bus import Bus
from popek.devices.memory import GuestMemory
from popek.devices.uart16550 import Uart16550
from popek.devices.virtio.blk import VirtioBlk
from popek.devices.virtio.mmio import VirtioMmio
from popek.devices.virtio.transport import (STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK,
                                            STATUS_FEATURES_OK, STATUS_NEEDS_RESET)
from popek.errors import GuestMemoryError

BASE = 0x80000000


def test_bus_refuses_overlaps_and_finds_devices():
    bus = Bus()
    bus.add(0x1000, 0x100, "a")
    bus.add(0x2000, 0x100, "b")
    with pytest.raises(ValueError):
        bus.add(0x10F0, 0x20, "c")
    with pytest.raises(ValueError):
        bus.add(0x0F00, 0x200, "d")
    assert bus.find(0x1050).device == "a"
    assert bus.find(0x1100) is None
    assert bus.find(0x20FF).device == "b"


def test_guest_memory_refuses_out_of_range_access():
    mem = GuestMemory(BASE, 0x10000)
    mem.write(BASE + 0xFFF8, b"12345678")
    with pytest.raises(GuestMemoryError):
        mem.read(BASE + 0xFFF9, 8)
    with pytest.raises(GuestMemoryError):
        mem.write(BASE - 1, b"x")
    with pytest.raises(GuestMemoryError):
        mem.read(2**64 - 4, 8)


def test_uart_rx_interrupt_and_loopback():
    out, levels = [], []
    u = Uart16550(out.append, levels.append)
    u.write(1, 1, 0x01)                    # IER: rx data available
    u.push_input(b"hi")
    assert levels[-1] is True
    assert u.read(5, 1) & 1                # LSR.DR
    assert u.read(0, 1) == ord("h")
    assert u.read(0, 1) == ord("i")
    assert levels[-1] is False
    u.write(0, 1, ord("A"))
    assert out == [b"A"]


class MockDriver:
    """Just enough of a virtio driver to put requests on queue 0."""
    QSIZE = 8

    def __init__(self, dev: VirtioMmio, mem: GuestMemory):
        self.dev, self.mem = dev, mem
        self.desc, self.avail, self.used = BASE + 0x1000, BASE + 0x2000, BASE + 0x3000
        self.avail_idx = 0
        dev.write(0x070, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER)
        dev.write(0x024, 4, 1)
        dev.write(0x020, 4, 1)                     # VIRTIO_F_VERSION_1 (bit 32)
        dev.write(0x070, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK)
        assert dev.read(0x070, 4) & STATUS_FEATURES_OK
        dev.write(0x030, 4, 0)
        dev.write(0x038, 4, self.QSIZE)
        for reg, addr in ((0x080, self.desc), (0x090, self.avail), (0x0A0, self.used)):
            dev.write(reg, 4, addr & 0xFFFFFFFF)
            dev.write(reg + 4, 4, addr >> 32)
        dev.write(0x044, 4, 1)
        dev.write(0x070, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK)

    def set_desc(self, i, addr, length, flags, nxt=0):
        self.mem.write(self.desc + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def submit(self, head):
        self.mem.write_int(self.avail + 4 + 2 * (self.avail_idx % self.QSIZE), 2, head)
        self.avail_idx += 1
        self.mem.write_int(self.avail + 2, 2, self.avail_idx)
        self.dev.write(0x050, 4, 0)

    def used_idx(self):
        return self.mem.read_int(self.used + 2, 2)

    def request(self, rtype, sector, data=b"", read_len=0):
        """A three-descriptor request; returns (status, data read)."""
        hdr, buf, st = BASE + 0x4000, BASE + 0x5000, BASE + 0x6000
        self.mem.write(hdr, struct.pack("<IIQ", rtype, 0, sector))
        if data:
            self.mem.write(buf, data)
        self.set_desc(0, hdr, 16, 1, 1)
        n = len(data) or read_len
        self.set_desc(1, buf, n, 1 | (2 if read_len else 0), 2)
        self.set_desc(2, st, 1, 2)
        self.mem.write(st, b"\xff")
        self.submit(0)
        return self.mem.read(st, 1)[0], self.mem.read(buf, n)


@pytest.fixture
def blk(tmp_path):
    img = tmp_path / "disk.img"
    img.write_bytes(bytes(range(256)) * 16)          # 8 sectors
    mem = GuestMemory(BASE, 0x100000)
    dev = VirtioBlk(mem, str(img))
    irqs = []
    mmio = VirtioMmio(dev, mem, irqs.append)
    yield MockDriver(mmio, mem), img, mmio, irqs
    dev.close()


def test_blk_identity_and_capacity(blk):
    drv, img, mmio, _ = blk
    assert mmio.read(0x000, 4) == 0x74726976
    assert mmio.read(0x004, 4) == 2
    assert mmio.read(0x008, 4) == 2
    assert mmio.read(0x100, 4) == 8                  # capacity in sectors


def test_blk_read_write_flush_reach_the_file(blk):
    drv, img, mmio, irqs = blk
    status, data = drv.request(0, 1, read_len=512)  # read sector 1
    assert status == 0 and data == (bytes(range(256)) * 2)
    assert irqs[-1] is True and mmio.read(0x060, 4) & 1
    pattern = b"\xA5\x5A" * 256
    status, _ = drv.request(1, 3, data=pattern)      # write sector 3
    assert status == 0
    status, _ = drv.request(4, 0)                    # flush
    assert status == 0
    with open(img, "rb") as f:
        f.seek(3 * 512)
        assert f.read(512) == pattern
    assert drv.used_idx() == 3


def test_blk_rejects_out_of_range_sectors(blk):
    drv, img, _, _ = blk
    status, _ = drv.request(0, 8, read_len=512)       # one past the end
    assert status == 1
    status, _ = drv.request(1, 7, data=bytes(1024))    # crosses the end
    assert status == 1
    assert os.path.getsize(img) == 8 * 512


@pytest.mark.parametrize("attack", ["loop", "outside_ram", "indirect", "huge_len", "bad_index",
                                    "read_after_write"])
def test_hostile_chains_mark_the_device_broken_not_popek(blk, attack):
    drv, img, mmio, _ = blk
    if attack == "loop":
        drv.set_desc(0, BASE + 0x4000, 16, 1, 1)
        drv.set_desc(1, BASE + 0x4000, 16, 1, 0)        # 0 → 1 → 0 → ...
    elif attack == "outside_ram":
        drv.set_desc(0, 0x1000, 16, 0)                  # host address, not guest RAM
    elif attack == "indirect":
        drv.set_desc(0, BASE + 0x4000, 32, 4)
    elif attack == "huge_len":
        drv.set_desc(0, BASE + 0x4000, 0xFFFFFFFF, 0)
    elif attack == "bad_index":
        drv.set_desc(0, BASE + 0x4000, 16, 1, 200)      # next beyond queue size
    elif attack == "read_after_write":
        drv.set_desc(0, BASE + 0x4000, 16, 2 | 1, 1)     # writable, then...
        drv.set_desc(1, BASE + 0x5000, 16, 0)           # ...readable: not allowed
    before = img.read_bytes()
    drv.submit(0)
    assert mmio.read(0x070, 4) & STATUS_NEEDS_RESET
    assert img.read_bytes() == before
    # A reset brings the device back.
    mmio.write(0x070, 4, 0)
    assert mmio.read(0x070, 4) == 0


def test_avail_index_running_too_far_ahead_is_refused(blk):
    drv, _, mmio, _ = blk
    drv.mem.write_int(drv.avail + 2, 2, 100)
    mmio.write(0x050, 4, 0)
    assert mmio.read(0x070, 4) & STATUS_NEEDS_RESET


def test_features_without_version_1_are_accepted_as_qemu_does(tmp_path):
    """QEMU's virt board keeps FEATURES_OK for a driver on the modern transport that did
    not accept VIRTIO_F_VERSION_1 (teaching kernels do this), and masks off features it
    did not offer: so must popek, or those guests stop at the disk."""
    img = tmp_path / "d.img"
    img.write_bytes(bytes(512))
    mem = GuestMemory(BASE, 0x10000)
    dev = VirtioMmio(VirtioBlk(mem, str(img)), mem)
    assert dev.read(0x00C, 4) == 0x554D4551                       # VendorID "QEMU"
    dev.write(0x070, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER)
    dev.write(0x024, 4, 0)
    dev.write(0x020, 4, 1 << 30)                                  # a feature never offered
    dev.write(0x070, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK)
    assert dev.read(0x070, 4) & STATUS_FEATURES_OK
    assert dev.driver_features == 0
    assert dev.stats()["guest_errors"] == 1

def test_rtc_alarm_is_one_request_not_one_per_poll():
    """The PLIC takes every raise as a request (as QEMU's): the RTC raises its line
    when the alarm fires, not again at every poll while it stays unacknowledged."""
    from popek.devices.goldfish_rtc import GoldfishRtc
    from popek.riscv.plic import Plic

    class Target:
        def set_irq_line(self, bit, level):
            pass

    plic = Plic([Target()])
    now = [1000]
    rtc = GoldfishRtc(lambda: now[0], lambda level: plic.set_level(11, level))
    plic.write(11 * 4, 4, 1)                                # priority
    plic.write(0x2080, 4, 1 << 11)                         # enabled in hart 0's S context
    rtc.write(0x10, 4, 1)                                  # alarm interrupt enabled
    rtc.write(0x0C, 4, 0)
    rtc.write(0x08, 4, 2000)                               # alarm at t=2000
    rtc.poll()
    assert plic.read(0x201004, 4) == 0                     # not yet
    now[0] = 2500
    rtc.poll()
    assert plic.read(0x201004, 4) == 11                    # fired: claimed
    plic.write(0x201004, 4, 11)                            # completed, line still high
    for _ in range(3):
        rtc.poll()
    assert plic.read(0x201004, 4) == 0                     # no new request without an event
