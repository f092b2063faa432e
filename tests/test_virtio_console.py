"""virtio-console: the guest's writes reach the machine's console, host input reaches
the guest's receive buffers (bounded), emerg_wr writes at once; and the board gives
host input to it once its driver is ready."""

from __future__ import annotations

from popek.console import ScriptedConsole
from popek.devices.memory import GuestMemory
from popek.devices.options import parse_device
from popek.devices.virtio.console import MAX_INPUT, VirtioConsole
from popek.devices.virtio.mmio import VirtioMmio
from popek.riscv.board import BoardConfig, VirtBoard
from tests.conftest import ROOT
from tests.virtio_driver import MmioDriver

BASE = 0x8000_0000


def console():
    mem = GuestMemory(BASE, 1 << 20)
    out = []
    dev = VirtioConsole(mem, out.append)
    mmio = VirtioMmio(dev, mem, lambda level: None)
    drv = MmioDriver(mmio, mem, 2, BASE + 0x10000)
    return dev, mmio, drv, mem, out


def test_writes_reach_the_console_and_input_the_guest():
    dev, mmio, drv, mem, out = console()
    rx, tx = drv.queues
    tx.offer([(b"hello, ", False), (b"hvc0\n", False)])
    assert out == [b"hello, hvc0\n"]
    assert mmio.read(0x100, 2) == 80 and mmio.read(0x102, 2) == 25
    dev.push_input(b"ls\n")
    head = rx.offer([(64, True)])
    mmio.service()
    assert rx.collect() == [(head, 3)] and mem.read(rx.buffer(head), 3) == b"ls\n"


def test_emergency_write_and_bounded_input():
    dev, mmio, drv, mem, out = console()
    mmio.write(0x108, 4, ord("!"))
    assert out == [b"!"]
    dev.push_input(bytes(MAX_INPUT + 100))
    assert len(dev.input) == MAX_INPUT and dev.stats["input_dropped"] == 100


def test_the_board_lists_it_on_pcie():
    board = VirtBoard(BoardConfig(bios=None, kernel=str(ROOT / "guests/build/kernel.elf"),
                                  devices=[parse_device("virtio-serial-pci")]),
                      console=ScriptedConsole())
    try:
        fn = board.platform.pcie.bus.functions[1]
        assert fn.config_read(0, 4) == 0x1043 << 16 | 0x1AF4
        assert fn.config_read(0x08, 4) >> 8 == 0x078000
        assert board.platform.virtio_console is not None
    finally:
        board.close()
