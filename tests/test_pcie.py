"""The virt board's PCIe host bridge (riscv/pcie.py), driven through ECAM and its
windows as a kernel would: enumeration, BAR sizing and placement, memory and I/O
decoding, and INTx through the PLIC with QEMU's swizzle."""

from __future__ import annotations

import pytest

from popek.devices.bus import Bus
from popek.devices.memory import GuestMemory
from popek.devices.pci import Bar, PciFunction
from popek.devices.virtio.pci import VirtioPci
from popek.devices.virtio.rng import VirtioRng
from popek.riscv import pcie
from popek.riscv.plic import Plic

ECAM, MMIO, PIO = pcie.ECAM_BASE, pcie.MMIO_BASE, pcie.PIO_BASE


class Hart:
    def set_irq_line(self, bit, level):
        pass


class Toy(PciFunction):
    """A function with a 4 KiB memory BAR and a 32-byte I/O BAR, echoing offsets."""

    def __init__(self, irq):
        self.irq = irq
        self.log = []
        super().__init__(0x1234, 0x5678, 0x020000, [
            Bar(0x1000, lambda off, size: 0xA000 + off, self._w),
            Bar(0x20, lambda off, size: 0xB000 + off, self._w, io=True)], irq_pin=1)

    def _w(self, off, size, value):
        self.log.append((off, value))


def board():
    bus = Bus()
    plic = Plic([Hart()])
    host = pcie.VirtPcie(plic, 0x8000_0000 + (128 << 20))
    host.attach(bus)

    def cfg(slot, reg, value=None, size=4):
        m = bus.find(ECAM)
        off = (slot << 15) + reg
        if value is None:
            return m.device.read(off, size)
        m.device.write(off, size, value)

    def access(addr, size=4, value=None):
        m = bus.find(addr)
        if value is None:
            return m.device.read(addr - m.base, size)
        m.device.write(addr - m.base, size, value)
    return bus, plic, host, cfg, access


def test_enumeration_through_ecam():
    bus, plic, host, cfg, _ = board()
    mem = GuestMemory(0x8000_0000, 1 << 20)
    host.plug(lambda irq: VirtioPci(VirtioRng(mem), mem, 0, irq))
    assert cfg(0, 0) == 0x0008 << 16 | 0x1B36            # QEMU's PCIe host bridge
    assert cfg(0, 0x08) >> 8 == 0x060000
    assert cfg(1, 0) == 0x1044 << 16 | 0x1AF4            # modern virtio-rng in slot 1
    assert cfg(1, 0x3D, size=1) == 1                     # INTA#
    assert cfg(2, 0) == 0xFFFFFFFF                       # nothing in slot 2
    assert cfg(1, 0x100) == 0                            # no extended capabilities
    assert cfg(1, 0x10) == 0                             # BARs left for the OS to place
    assert bus.find(ECAM + (1 << 20)).name == "pcie-ecam"


def test_bars_are_sized_placed_and_decoded_by_the_command_register():
    bus, plic, host, cfg, access = board()
    toy = host.plug(Toy)
    cfg(1, 0x10, 0xFFFFFFFF)
    cfg(1, 0x14, 0xFFFFFFFF)
    assert cfg(1, 0x10) == 0xFFFFF000                    # 4 KiB, 32-bit memory
    assert cfg(1, 0x14) == 0xFFFFFFE1                    # 32 bytes of I/O
    cfg(1, 0x10, MMIO + 0x10000)
    cfg(1, 0x14, 0x1000)
    assert access(MMIO + 0x10008) == 0xFFFFFFFF          # not decoding yet: master abort
    cfg(1, 0x04, 0x3, size=2)                            # memory and I/O space on
    assert access(MMIO + 0x10008) == 0xA008
    assert access(PIO + 0x1004, 1) == 0xB004
    access(MMIO + 0x10010, 4, 7)
    assert toy.log == [(0x10, 7)]
    assert access(PIO + 0x2000) == 0xFFFFFFFF            # no BAR there
    cfg(1, 0x04, 0x2, size=2)                            # I/O off again
    assert access(PIO + 0x1004, 1) == 0xFF


@pytest.mark.parametrize("slot", [1, 2, 3, 4, 5])
def test_intx_is_swizzled_as_qemus_interrupt_map(slot):
    _, plic, host, *_ = board()
    fns = {}
    for s in range(1, slot + 1):
        fns[s] = host.plug(Toy)
    fns[slot].irq(True)
    assert plic.pending == 1 << (32 + slot % 4)


def test_shared_lines_are_wired_or():
    _, plic, host, *_ = board()
    a = host.plug(Toy, slot=1)
    b = host.plug(Toy, slot=5)                           # 5 % 4 == 1: the same source
    src = pcie.VirtPcie.line(1)
    a.irq(True)
    b.irq(True)
    plic.pending = 0                                     # (as if claimed)
    a.irq(False)                                         # b still holds it: a new request
    assert plic.pending & 1 << src
    b.irq(False)
    assert not plic.pending & 1 << src


def test_a_slot_is_not_taken_twice():
    _, _, host, *_ = board()
    host.plug(Toy, slot=3)
    with pytest.raises(ValueError, match="taken"):
        host.plug(Toy, slot=3)
