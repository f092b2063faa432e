"""PCI: functions with a type-0 configuration header, a bus of them, and the two ways
a CPU reaches configuration space: mechanism #1 ports (a PC; :class:`PciHost`) and
ECAM, memory-mapped (QEMU's RISC-V ``virt`` board; :class:`PciEcam`).

Type-0 header (the registers a function answers; the rest read from ``config``):

    0x00 vendor ID / device ID     0x04 command / status     0x08 revision / class code
    0x0e header type               0x10-0x27 BAR 0-5         0x2c subsystem vendor / ID
    0x34 capability pointer        0x3c interrupt line / pin

A function's BARs are 32-bit memory or I/O windows of a power-of-two size; a guest
sizes one by writing all ones and reads back ``~(size - 1)`` plus the kind bits, and
moves it by writing an address.  Memory BARs decode only while the command
register's memory-space bit is set, I/O BARs while its I/O-space bit is.  Bus 0,
function 0 of each slot only; absent functions read as all ones (a master abort).
"""

from __future__ import annotations

import struct

ENABLE = 1 << 31
VENDOR_ID, DEVICE_ID, COMMAND, STATUS, REVISION = 0x00, 0x02, 0x04, 0x06, 0x08
CLASS_PROG, HEADER_TYPE, BAR0, SUBSYS_VENDOR, SUBSYS_ID = 0x09, 0x0E, 0x10, 0x2C, 0x2E
CAP_PTR, INTERRUPT_LINE, INTERRUPT_PIN = 0x34, 0x3C, 0x3D
NUM_BARS = 6
CMD_IO, CMD_MEMORY, CMD_MASTER = 1 << 0, 1 << 1, 1 << 2
INTX_DISABLE = 1 << 10
COMMAND_WRITABLE = 0x0547          # io, mem, master, parity, serr, intx disable
STATUS_CAP_LIST = 1 << 4
BAR_IO = 0x1                       # bit 0 of an I/O BAR; a 32-bit memory BAR's low bits are 0
HOST_BRIDGE_CLASS = 0x060000


class Bar:
    """One base address register: ``size`` bytes of memory (or of I/O ports, ``io``)
    served by ``read(off, size)`` / ``write(off, size, value)``; ``name(off)`` says
    which register an offset is (for the exit ledger)."""
    __slots__ = ("size", "read", "write", "io", "addr", "name")

    def __init__(self, size: int, read, write, io: bool = False, addr: int = 0, name=None):
        assert size >= (4 if io else 16) and size & (size - 1) == 0
        self.size, self.read, self.write, self.io, self.addr = size, read, write, io, addr
        self.name = name or (lambda off: f"BAR+{off:#x}")

    def register(self) -> int:
        return self.addr | BAR_IO if self.io else self.addr

    def program(self, value: int) -> None:
        # Writing all ones sizes the BAR: the address bits below its size stay zero.
        self.addr = value & ~(self.size - 1) & (0xFFFFFFFC if self.io else 0xFFFFFFF0)


class PciFunction:
    """A type-0 configuration header; subclasses (devices, device transports) give it
    their BARs and capabilities.  ``irq_pin`` 1 is INTA# (0: no interrupt pin)."""

    def __init__(self, vendor: int, device: int, class_code: int, bars=(), irq_line: int = 0,
                 irq_pin: int = 0, subsystem: tuple[int, int] = (0, 0), revision: int = 0):
        assert len(bars) <= NUM_BARS
        self.config = bytearray(256)
        struct.pack_into("<HH", self.config, VENDOR_ID, vendor, device)
        struct.pack_into("<I", self.config, REVISION, class_code << 8 | revision)
        struct.pack_into("<HH", self.config, SUBSYS_VENDOR, *subsystem)
        self.config[INTERRUPT_LINE] = irq_line
        self.config[INTERRUPT_PIN] = irq_pin
        self.bars: list[Bar | None] = list(bars) + [None] * (NUM_BARS - len(bars))
        self.command = 0
        self._cap_tail = None
        self.on_decode_change = lambda: None            # the bus's, when it is plugged in

    def add_capability(self, at: int, body: bytes) -> None:
        """Link a capability (``body`` starts with its ID byte, then a next-pointer
        placeholder) into the capability list at config offset ``at``."""
        self.config[at:at + len(body)] = body
        self.config[at + 1] = 0
        if self._cap_tail is None:
            self.config[CAP_PTR] = at
            struct.pack_into("<H", self.config, STATUS, STATUS_CAP_LIST)
        else:
            self.config[self._cap_tail + 1] = at
        self._cap_tail = at

    def decoding(self) -> list[Bar]:
        """The BARs answering on the bus now (their space enabled)."""
        return [b for b in self.bars if b is not None
                and self.command & (CMD_IO if b.io else CMD_MEMORY)]

    def config_read(self, off: int, size: int) -> int:
        if off >= len(self.config):
            return 0                                   # PCIe extended space: nothing
        if COMMAND <= off < COMMAND + 4:
            word = self.command | int.from_bytes(self.config[STATUS:STATUS + 2], "little") << 16
            return (word >> (8 * (off - COMMAND))) & ((1 << (8 * size)) - 1)
        if BAR0 <= off < BAR0 + 4 * NUM_BARS:
            bar = self.bars[(off - BAR0) // 4]
            value = bar.register() if bar else 0
            return (value >> (8 * (off & 3))) & ((1 << (8 * size)) - 1)
        return int.from_bytes(self.config[off:off + size], "little")

    def config_write(self, off: int, size: int, value: int) -> None:
        if off == COMMAND:
            self.command = value & COMMAND_WRITABLE
            self.on_decode_change()
        elif BAR0 <= off < BAR0 + 4 * NUM_BARS and off % 4 == 0 and size == 4:
            bar = self.bars[(off - BAR0) // 4]
            if bar is not None:
                bar.program(value)
                self.on_decode_change()
        elif off == INTERRUPT_LINE:
            self.config[INTERRUPT_LINE] = value & 0xFF


class BarAllocator:
    """Places BARs as firmware (or a host kernel) would: each at the next address of its
    window aligned to its size.  ``io`` None: I/O BARs are left where they are (a host
    with no I/O window)."""

    def __init__(self, mem: tuple[int, int], io: tuple[int, int] | None = None):
        self.next_mem, self.mem_end = mem
        self.next_io, self.io_end = io if io is not None else (None, None)

    def place(self, fn: "PciFunction") -> None:
        """Place ``fn``'s BARs; ValueError if the windows cannot hold them."""
        for bar in fn.bars:
            if bar is None or (bar.io and self.next_io is None):
                continue
            if bar.io:
                addr = -(-self.next_io // bar.size) * bar.size
                self.next_io = addr + bar.size
            else:
                addr = -(-self.next_mem // bar.size) * bar.size
                self.next_mem = addr + bar.size
            bar.addr = addr
            if self.next_mem > self.mem_end or (self.next_io or 0) > (self.io_end or 0):
                raise ValueError("the devices' BARs do not fit the PCI window")


class PciBus:
    """Bus 0: functions by slot (slot 0 is the host bridge), and the BAR a memory or
    I/O address falls in (a list rebuilt when a command register or BAR changes)."""

    def __init__(self, bridge: PciFunction):
        self.functions: dict[int, PciFunction] = {}
        self._windows: list[tuple[int, int, bool, Bar]] | None = None
        self.add(0, bridge, bridge=True)

    def add(self, slot: int, fn: PciFunction, bridge: bool = False) -> None:
        if not (bridge or 0 < slot < 32) or slot in self.functions:
            raise ValueError(f"PCI slot {slot} is taken or out of range")
        self.functions[slot] = fn
        fn.on_decode_change = self._changed
        self._windows = None

    def free_slot(self) -> int:
        for slot in range(1, 32):
            if slot not in self.functions:
                return slot
        raise ValueError("no free PCI slot (31 devices at most)")

    def _changed(self) -> None:
        self._windows = None

    def config_read(self, bus: int, slot: int, function: int, off: int, size: int) -> int:
        fn = self.functions.get(slot) if bus == 0 and function == 0 else None
        if fn is None:
            return (1 << (8 * size)) - 1
        return fn.config_read(off, size)

    def config_write(self, bus: int, slot: int, function: int, off: int, size: int,
                     value: int) -> None:
        fn = self.functions.get(slot) if bus == 0 and function == 0 else None
        if fn is not None:
            fn.config_write(off, size, value)

    def find(self, addr: int, io: bool = False) -> tuple[Bar, int] | None:
        """The decoding BAR holding ``addr`` (in memory or I/O space), and the offset in it."""
        if self._windows is None:
            self._windows = [(b.addr, b.addr + b.size, b.io, b)
                             for fn in self.functions.values() for b in fn.decoding()]
        for start, end, is_io, bar in self._windows:
            if start <= addr < end and is_io == io:
                return bar, addr - start
        return None


class PciHost(PciBus):
    """Configuration mechanism #1 (ports 0xcf8-0xcff), as a PC has it: software writes
    ``1 << 31 | bus << 16 | device << 11 | function << 8 | register`` to CONFIG_ADDRESS
    and then reads or writes CONFIG_DATA.  Slot 0 is an Intel host bridge: Linux's
    direct-access probe trusts mechanism #1 only if it finds one (or VGA, or an Intel
    device)."""
    SIZE = 8                       # 0xcf8-0xcff

    def __init__(self):
        super().__init__(PciFunction(0x8086, 0x1237, HOST_BRIDGE_CLASS))    # i440FX
        self.address = 0

    def _target(self) -> tuple[int, int, int, int] | None:
        a = self.address
        if not a & ENABLE:
            return None
        return (a >> 16) & 0xFF, (a >> 11) & 0x1F, (a >> 8) & 7, a & 0xFC

    # port-I/O interface: offset 0-3 is CONFIG_ADDRESS, 4-7 CONFIG_DATA
    def read(self, off: int, size: int) -> int:
        if off < 4:
            return self.address if size == 4 else 0xFFFFFFFF >> (32 - 8 * size)
        t = self._target()
        if t is None:
            return (1 << (8 * size)) - 1
        bus, slot, function, reg = t
        return self.config_read(bus, slot, function, reg + off - 4, size)

    def write(self, off: int, size: int, value: int) -> None:
        if off < 4:
            if size == 4:
                self.address = value & 0x80FFFFFC
            return
        t = self._target()
        if t is not None:
            bus, slot, function, reg = t
            self.config_write(bus, slot, function, reg + off - 4, size, value)

    def irqs(self) -> dict[int, int]:
        """Slot → the IRQ its INTA# is wired to (for the MP table)."""
        return {slot: fn.config[INTERRUPT_LINE] for slot, fn in self.functions.items()
                if fn.config[INTERRUPT_PIN]}

    def find_bar(self, addr: int):
        """The memory BAR holding ``addr`` as a bus device, and the offset in it."""
        hit = self.find(addr)
        return (hit[0], hit[1]) if hit else None


class PciEcam:
    """ECAM (PCIe's enhanced configuration access): a function's 4 KiB of
    configuration space at ``bus << 20 | device << 15 | function << 12`` in a memory
    window, one access per load or store (naturally aligned, 1, 2 or 4 bytes)."""

    def __init__(self, bus: PciBus, buses: int = 256):
        self.bus = bus
        self.SIZE = buses << 20

    def register_name(self, off: int) -> str:
        _, slot, _, _ = self._split(off)
        return f"ecam slot {slot}"

    @staticmethod
    def _split(off: int) -> tuple[int, int, int, int]:
        return off >> 20, (off >> 15) & 0x1F, (off >> 12) & 7, off & 0xFFF

    def read(self, off: int, size: int) -> int:
        if size not in (1, 2, 4) or off % size:
            return (1 << (8 * size)) - 1
        return self.bus.config_read(*self._split(off), size)

    def write(self, off: int, size: int, value: int) -> None:
        if size in (1, 2, 4) and not off % size:
            self.bus.config_write(*self._split(off), size, value & ((1 << (8 * size)) - 1))


class PciWindow:
    """A range of CPU addresses onto PCI memory or I/O space (a host bridge's
    ``ranges``): an access at ``off`` goes to the BAR holding ``pci_base + off``;
    nothing there reads as all ones and drops writes, as a master abort."""

    def __init__(self, bus: PciBus, pci_base: int, size: int, io: bool = False):
        self.bus, self.pci_base, self.SIZE, self.io = bus, pci_base, size, io

    def read(self, off: int, size: int) -> int:
        hit = self.bus.find(self.pci_base + off, self.io)
        if hit is None:
            return (1 << (8 * size)) - 1
        bar, at = hit
        return bar.read(at, size)

    def write(self, off: int, size: int, value: int) -> None:
        hit = self.bus.find(self.pci_base + off, self.io)
        if hit is not None:
            bar, at = hit
            bar.write(at, size, value)

    def register_name(self, off: int) -> str:
        hit = self.bus.find(self.pci_base + off, self.io)
        return hit[0].name(hit[1]) if hit else "(nothing)"
