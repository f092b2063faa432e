"""The PCI host bridge and the virtio-pci transport, driven as a driver would
through configuration mechanism #1 (no KVM needed)."""

from __future__ import annotations

import mmap

from popek.devices.memory import GuestMemory
from popek.devices.pci import PciHost
from popek.devices.virtio.blk import VirtioBlk
from popek.devices.virtio.pci import NOTIFY_AT, VirtioPci

BAR = 0xE0004000


def cfg(host: PciHost, slot: int, reg: int, value: int | None = None, size: int = 4) -> int:
    host.write(0, 4, 0x80000000 | (slot << 11) | (reg & 0xFC))
    if value is None:
        return host.read(4 + (reg & 3), size)
    host.write(4 + (reg & 3), size, value)
    return 0


def make(tmp_path):
    disk = tmp_path / "d.img"
    disk.write_bytes(b"hello pci\n" + bytes(4096 - 10))
    mem = GuestMemory(0, 1 << 20, mmap.mmap(-1, 1 << 20))
    irqs = []
    host = PciHost()
    host.add(1, VirtioPci(VirtioBlk(mem, str(disk)), mem, 5, irqs.append, BAR))
    return host, mem, irqs, disk


def test_enumeration_ids_capabilities_and_absent_slots(tmp_path):
    host, *_ = make(tmp_path)
    assert cfg(host, 2, 0) == 0xFFFFFFFF                 # nothing in slot 2
    assert cfg(host, 0, 0x08) >> 8 == 0x060000           # a host bridge in slot 0
    assert cfg(host, 1, 0) == 0x1042 << 16 | 0x1AF4      # modern virtio-blk
    assert cfg(host, 1, 0x08) >> 8 == 0x010000 and cfg(host, 1, 0x08) & 0xFF == 1
    assert cfg(host, 1, 0x3C) & 0xFFFF == 0x0105         # INTA#, IRQ 5
    types, cap = [], cfg(host, 1, 0x34) & 0xFF
    while cap:
        head = cfg(host, 1, cap)
        assert head & 0xFF == 0x09
        types.append(head >> 24)
        cap = (head >> 8) & 0xFF
    assert types == [1, 3, 4, 2, 5]                      # common, ISR, device, notify, pci_cfg


def test_bar_sizing_and_memory_decode(tmp_path):
    host, *_ = make(tmp_path)
    assert cfg(host, 1, 0x10) == BAR
    assert host.find_bar(BAR) is None                    # memory decoding still off
    cfg(host, 1, 0x04, 0x2, size=2)
    assert host.find_bar(BAR + 0x14)[1] == 0x14
    cfg(host, 1, 0x10, 0xFFFFFFFF)
    assert cfg(host, 1, 0x10) == 0xFFFFC000              # 16 KiB
    cfg(host, 1, 0x10, 0xE0100000)
    assert host.find_bar(BAR) is None and host.find_bar(0xE0100000) is not None


def test_a_read_request_through_the_common_config_and_notify(tmp_path):
    host, mem, irqs, _ = make(tmp_path)
    cfg(host, 1, 0x04, 0x2, size=2)
    dev, _ = host.find_bar(BAR)
    w = dev.write
    for status in (1, 3):
        w(0x14, 1, status)
    w(0x00, 4, 1)
    assert dev.read(0x04, 4) & 1                         # VIRTIO_F_VERSION_1
    w(0x08, 4, 1)
    w(0x0C, 4, 1)
    w(0x14, 1, 11)
    assert dev.read(0x14, 1) & 8                         # FEATURES_OK kept
    desc, avail, used = 0x1000, 0x2000, 0x3000
    w(0x16, 2, 0)
    w(0x18, 2, 8)
    for off, addr in ((0x20, desc), (0x28, avail), (0x30, used)):
        w(off, 4, addr)
        w(off + 4, 4, 0)
    w(0x1C, 2, 1)
    w(0x14, 1, 15)
    mem.write(0x4000, (0).to_bytes(4, "little") + bytes(4) + (0).to_bytes(8, "little"))
    for i, (addr, length, flags) in enumerate(((0x4000, 16, 1), (0x5000, 512, 3), (0x6000, 1, 2))):
        mem.write(desc + 16 * i, addr.to_bytes(8, "little") + length.to_bytes(4, "little")
                  + flags.to_bytes(2, "little") + (i + 1 if flags & 1 else 0).to_bytes(2, "little"))
    mem.write_int(avail + 4, 2, 0)
    mem.write_int(avail + 2, 2, 1)
    w(NOTIFY_AT + 4 * dev.read(0x1E, 2), 2, 0)
    assert mem.read_int(used + 2, 2) == 1 and mem.read(0x6000, 1) == b"\0"
    assert mem.read(0x5000, 10) == b"hello pci\n"
    assert irqs[-1] is True
    assert dev.read(0x1000, 1) == 1 and irqs[-1] is False    # ISR read acknowledges


def test_pci_cfg_window_reaches_the_bar(tmp_path):
    host, *_ = make(tmp_path)
    cap = 0x90
    cfg(host, 1, cap + 4, 0, size=1)                     # BAR 0
    cfg(host, 1, cap + 8, 0x12)                          # offset: num_queues
    cfg(host, 1, cap + 12, 2)                            # length
    assert cfg(host, 1, cap + 16) == 1


def test_narrow_reads_of_wide_registers_are_cut_to_size(tmp_path):
    from popek.kvm.machine import _fit
    host, *_ = make(tmp_path)
    cfg(host, 1, 0x04, 0x2, size=2)
    dev, _ = host.find_bar(BAR)
    assert _fit(dev.read(0x04, 1), 1) == bytes([dev.read(0x04, 4) & 0xFF])
