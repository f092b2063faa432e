"""The virt board's devices behind a CPU, shared by the bare board and by VMs.

:class:`VirtLayout` is the address map (QEMU's hw/riscv/virt.c); :class:`Platform`
builds the devices at those addresses on a bus: the test/syscon device, the
goldfish RTC, the PLIC, the UART and the virtio-blk disks.  The bare board adds
the reset ROM and the CLINT (M-mode devices); a VM under the VMM gets just this.
"""

from __future__ import annotations

from popek.clock import TIMEBASE_HZ
from popek.devices.bus import Bus
from popek.devices.goldfish_rtc import GoldfishRtc
from popek.devices.syscon import SysCon
from popek.devices.uart16550 import Uart16550
from popek.devices.virtio.blk import VirtioBlk
from popek.devices.virtio.mmio import EmptyVirtioSlot, VirtioMmio
from popek.errors import ConfigError
from popek.riscv import plic as plic_mod
from popek.riscv.plic import Plic


MAX_PENDING_INPUT = 64 << 10    # host input waiting for the guest's UART to take it


class VirtLayout:
    ROM_BASE = 0x1000
    TEST_BASE = 0x100000
    RTC_BASE, RTC_IRQ = 0x101000, 11
    CLINT_BASE = 0x2000000
    PLIC_BASE, PLIC_SIZE, PLIC_NDEV = 0xC000000, plic_mod.SIZE, plic_mod.NUM_SOURCES
    UART_BASE, UART_IRQ = 0x10000000, 10
    VIRTIO_BASE, VIRTIO_IRQ, VIRTIO_SLOTS = 0x10001000, 1, 8
    RAM_BASE = 0x80000000
    TIMEBASE_HZ = TIMEBASE_HZ

    def virtio_slots(self):
        """Every virtio-mmio slot, as QEMU's device tree lists them: with a device or
        empty (DeviceID 0)."""
        return [(self.VIRTIO_BASE + 0x1000 * i, self.VIRTIO_IRQ + i)
                for i in range(self.VIRTIO_SLOTS)]


class Platform:
    """Devices on a bus.  ``owner`` provides shutdown(code, why), request_reset()
    and rtc_ns(); ``interrupt_targets`` are what the PLIC drives (harts or vCPUs)."""

    def __init__(self, owner, ram, console_write, drives, interrupt_targets, bus=None):
        L = VirtLayout
        self.bus = bus if bus is not None else Bus()
        self.plic = Plic(interrupt_targets)
        self.uart = Uart16550(console_write, self._irq(L.UART_IRQ))
        self.rtc = GoldfishRtc(owner.rtc_ns, self._irq(L.RTC_IRQ))
        self.syscon = SysCon(owner)
        if len(drives) > L.VIRTIO_SLOTS:      # before any is opened (and locked)
            raise ConfigError(f"at most {L.VIRTIO_SLOTS} drives (the board's virtio-mmio "
                              "slots)")
        self.drives = []
        self.pending_input = bytearray()      # typed, not yet taken by the UART
        self.input_dropped = 0
        try:
            for d in drives:
                if getattr(d, "interface", "virtio") == "virtio-pci":
                    raise ConfigError(f"{d.path}: the virt board has virtio-mmio only "
                                      "(if=virtio-pci is for --backend kvm)")
                self.drives.append(VirtioBlk(ram, d.path, d.readonly))
        except BaseException:
            self.close()                      # the disks opened so far, and their locks
            raise
        self.virtio = [VirtioMmio(blk, ram, self._irq(L.VIRTIO_IRQ + i))
                       for i, blk in enumerate(self.drives)]
        bus = self.bus
        bus.add(L.TEST_BASE, SysCon.SIZE, self.syscon, "test")
        bus.add(L.RTC_BASE, GoldfishRtc.SIZE, self.rtc, "rtc")
        bus.add(L.PLIC_BASE, L.PLIC_SIZE, self.plic, "plic")
        bus.add(L.UART_BASE, Uart16550.SIZE, self.uart, "uart")
        for i in range(L.VIRTIO_SLOTS):
            dev = self.virtio[i] if i < len(self.virtio) else EmptyVirtioSlot()
            bus.add(L.VIRTIO_BASE + 0x1000 * i, VirtioMmio.SIZE, dev, f"virtio{i}")

    def poll_input(self, console) -> None:
        """Host input typed at ``console`` into the UART as it has room.  The console is
        read every time (its Ctrl-A x must work even when the guest never reads its
        UART); what the UART has no room for waits, up to ``MAX_PENDING_INPUT`` bytes,
        and beyond that is dropped, as a serial line overruns."""
        data = console.poll()
        if data:
            room = MAX_PENDING_INPUT - len(self.pending_input)
            self.pending_input += data[:room]
            self.input_dropped += max(0, len(data) - room)
        if self.pending_input and self.uart.wants_input():
            before = len(self.uart.rx)
            self.uart.push_input(bytes(self.pending_input))
            del self.pending_input[:len(self.uart.rx) - before]

    def disk_stats(self) -> list[dict]:
        """Each disk's I/O, and how many mistakes its driver made (each kind logged once)."""
        return [{**d.stats, "guest_errors": t.warnings.total() + d.warnings.total()}
                for d, t in zip(self.drives, self.virtio)]

    def poll_devices(self) -> None:
        """Between run slices: the RTC's alarm, and device work a notify left over."""
        self.rtc.poll()
        for t in self.virtio:
            t.service()

    def _irq(self, src: int):
        return lambda level: self.plic.set_level(src, level)

    def close(self) -> None:
        for d in self.drives:
            d.close()
