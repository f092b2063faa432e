"""A PCI host bridge with configuration mechanism #1 (ports 0xcf8/0xcfc), bus 0 only,
and the type-0 configuration header its functions share.

Software writes ``1 << 31 | bus << 16 | device << 11 | function << 8 | register``
to CONFIG_ADDRESS (0xcf8) and then reads or writes CONFIG_DATA (0xcfc-0xcff).
Functions are placed at fixed slots with their one memory BAR pre-assigned (as
firmware would); a guest may size and move the BAR, and memory decoding follows
the command register's memory-space bit.  Absent functions read as all ones.
"""

from __future__ import annotations

import struct

ENABLE = 1 << 31
VENDOR_ID, DEVICE_ID, COMMAND, STATUS, REVISION = 0x00, 0x02, 0x04, 0x06, 0x08
CLASS_PROG, HEADER_TYPE, BAR0, SUBSYS_VENDOR, SUBSYS_ID = 0x09, 0x0E, 0x10, 0x2C, 0x2E
CAP_PTR, INTERRUPT_LINE, INTERRUPT_PIN = 0x34, 0x3C, 0x3D
CMD_MEMORY = 1 << 1
STATUS_CAP_LIST = 1 << 4
BAR_MEM32 = 0x0


class PciFunction:
    """A type-0 configuration header with one 32-bit memory BAR (or none, with
    ``bar_size`` 0); subclasses (device transports) add capabilities and implement
    the BAR's registers as ``bar_read(off, size)`` / ``bar_write(off, size, value)``."""

    def __init__(self, vendor: int, device: int, class_code: int, bar_size: int = 0,
                 bar_addr: int = 0, irq: int = 0, subsystem: tuple[int, int] = (0, 0)):
        assert bar_size & (bar_size - 1) == 0
        self.config = bytearray(256)
        struct.pack_into("<HH", self.config, VENDOR_ID, vendor, device)
        struct.pack_into("<I", self.config, REVISION, class_code << 8)
        struct.pack_into("<HH", self.config, SUBSYS_VENDOR, *subsystem)
        if irq:
            self.config[INTERRUPT_LINE] = irq
            self.config[INTERRUPT_PIN] = 1                 # INTA#
        self.bar_size = bar_size
        self.bar_addr = bar_addr
        self.command = 0
        self._cap_tail = None

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

    @property
    def decodes(self) -> bool:
        return bool(self.command & CMD_MEMORY) and self.bar_size > 0

    def config_read(self, off: int, size: int) -> int:
        if off == COMMAND and size >= 2:
            return self.command | (int.from_bytes(self.config[STATUS:STATUS + 2], "little") << 16
                                   if size == 4 else 0)
        if BAR0 <= off < BAR0 + 4:
            return ((self.bar_addr | BAR_MEM32) >> (8 * (off - BAR0))) & ((1 << (8 * size)) - 1)
        return int.from_bytes(self.config[off:off + size], "little")

    def config_write(self, off: int, size: int, value: int) -> None:
        if off == COMMAND:
            self.command = value & 0x0547                  # io, mem, master, parity, serr, intx
        elif off == BAR0 and size == 4 and self.bar_size:
            # Writing all ones sizes the BAR: it reads back as ~(size - 1).
            self.bar_addr = value & ~(self.bar_size - 1) & 0xFFFFFFF0
        elif off == INTERRUPT_LINE:
            self.config[INTERRUPT_LINE] = value & 0xFF

    def bar_read(self, off: int, size: int) -> int:
        raise NotImplementedError

    def bar_write(self, off: int, size: int, value: int) -> None:
        raise NotImplementedError


HOST_BRIDGE_CLASS = 0x060000
INTEL, I440FX = 0x8086, 0x1237


class PciHost:
    """Bus 0, with a host bridge in slot 0: Linux's direct-access probe trusts
    mechanism #1 only if it finds a host bridge (or VGA, or an Intel device)."""
    SIZE = 8                       # 0xcf8-0xcff

    def __init__(self):
        self.functions: dict[int, PciFunction] = {0: PciFunction(INTEL, I440FX, HOST_BRIDGE_CLASS)}
        self.address = 0

    def add(self, slot: int, fn: PciFunction) -> None:
        if not 0 < slot < 32 or slot in self.functions:
            raise ValueError(f"PCI slot {slot} is taken or out of range")
        self.functions[slot] = fn

    def _target(self, low: int) -> tuple[PciFunction | None, int]:
        a = self.address
        if not a & ENABLE or (a >> 16) & 0xFF or (a >> 8) & 7:
            return None, 0                                 # bus 0, function 0 only
        return self.functions.get((a >> 11) & 0x1F), (a & 0xFC) + low

    # port-I/O interface: offset 0-3 is CONFIG_ADDRESS, 4-7 CONFIG_DATA
    def read(self, off: int, size: int) -> int:
        if off < 4:
            return self.address if size == 4 else 0xFFFFFFFF >> (32 - 8 * size)
        fn, reg = self._target(off - 4)
        if fn is None:
            return (1 << (8 * size)) - 1
        return fn.config_read(reg, size)

    def write(self, off: int, size: int, value: int) -> None:
        if off < 4:
            if size == 4:
                self.address = value & 0x80FFFFFC
            return
        fn, reg = self._target(off - 4)
        if fn is not None:
            fn.config_write(reg, size, value)

    def irqs(self) -> dict[int, int]:
        """Slot → the IRQ its INTA# is wired to (for the MP table)."""
        return {slot: fn.config[INTERRUPT_LINE] for slot, fn in self.functions.items()
                if fn.config[INTERRUPT_PIN]}

    def find_bar(self, addr: int) -> tuple[PciFunction, int] | None:
        """The function whose (enabled) BAR holds ``addr``, and the offset in it."""
        for fn in self.functions.values():
            if fn.decodes and fn.bar_addr <= addr < fn.bar_addr + fn.bar_size:
                return _BarView(fn), addr - fn.bar_addr
        return None


class _BarView:
    """A function's BAR as a bus device (read/write at offsets)."""
    __slots__ = ("fn",)

    def __init__(self, fn: PciFunction):
        self.fn = fn

    def read(self, off: int, size: int) -> int:
        return self.fn.bar_read(off, size)

    def write(self, off: int, size: int, value: int) -> None:
        self.fn.bar_write(off, size, value)
