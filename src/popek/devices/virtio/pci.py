"""The virtio-pci transport, modern interface (virtio v1.2, 4.1), on one memory BAR.

Why PCI beside MMIO: on a PC, Linux finds virtio-mmio devices only through ACPI
or a kernel option Debian leaves off, while PCI enumeration through ports
0xcf8/0xcfc works in every x86 kernel; kvmtool and Firecracker made the same call.
Legacy (0.9) virtio-pci is not offered: the device is modern-only (PCI device ID
0x1040 + virtio ID, revision 1), like the MMIO transport's version 2.

BAR 0 (0x4000 bytes), each structure announced by a vendor capability:

    0x0000  common configuration   (cfg_type 1)
    0x1000  ISR status             (cfg_type 3; reading clears it and the INTx line)
    0x2000  device configuration   (cfg_type 4)
    0x3000  notifications          (cfg_type 2; queue n at 0x3000 + 4n)

plus the PCI configuration access capability (cfg_type 5), a window onto the BAR
through configuration space.  No MSI-X: the driver falls back to INTx.
"""

from __future__ import annotations

import struct

from popek.devices.pci import Bar, PciFunction
from popek.devices.virtio.transport import VirtioTransport

VIRTIO_VENDOR = 0x1AF4
MODERN_DEVICE_BASE = 0x1040
# QEMU's class codes: blk a SCSI controller, net Ethernet, console "communication,
# other", and the rest (rng) class 0x00, subclass 0xff.
CLASS_CODES = {2: 0x010000, 1: 0x020000, 3: 0x078000}
OTHER_CLASS = 0x00FF00
CAP_VENDOR = 0x09
COMMON, NOTIFY, ISR, DEVICE, PCI_CFG = 1, 2, 3, 4, 5
COMMON_AT, ISR_AT, DEVICE_AT, NOTIFY_AT = 0x0000, 0x1000, 0x2000, 0x3000
NOTIFY_MULTIPLIER = 4
BAR_SIZE = 0x4000
NO_VECTOR = 0xFFFF
PCI_CFG_CAP_AT = 0x90                            # where the cfg_type 5 capability sits

def _cap(cfg_type: int, offset: int, length: int, extra: bytes = b"") -> bytes:
    body = struct.pack("<BBBBBBxxII", CAP_VENDOR, 0, 16 + len(extra), cfg_type, 0, 0,
                       offset, length) + extra
    return body


class VirtioPci(PciFunction):
    def __init__(self, device, mem, irq_line: int, irq, bar_addr: int = 0):
        """``irq`` drives the function's INTA# line (wired to ``irq_line`` on a PC; on
        the RISC-V board, through the host bridge's swizzle); ``bar_addr`` 0 leaves
        BAR 0 for the guest to place, as a board without PCI firmware does."""
        super().__init__(VIRTIO_VENDOR, MODERN_DEVICE_BASE + device.device_id,
                         CLASS_CODES.get(device.device_id, OTHER_CLASS),
                         [Bar(BAR_SIZE, self.bar_read, self.bar_write, addr=bar_addr,
                              name=self.register_name)],
                         irq_line, irq_pin=1, subsystem=(VIRTIO_VENDOR, device.device_id),
                         revision=1)                                # revision 1: modern
        self.t = VirtioTransport(device, mem, irq)
        self.add_capability(0x40, _cap(COMMON, COMMON_AT, 0x38))
        self.add_capability(0x50, _cap(ISR, ISR_AT, 4))
        self.add_capability(0x60, _cap(DEVICE, DEVICE_AT, 0x1000))
        self.add_capability(0x70, _cap(NOTIFY, NOTIFY_AT, 4 * len(self.t.queues),
                                       struct.pack("<I", NOTIFY_MULTIPLIER)))
        self.add_capability(PCI_CFG_CAP_AT, _cap(PCI_CFG, 0, 0, bytes(4)))

    # -- configuration space: the cfg_type 5 window ---------------------------------
    def config_read(self, off: int, size: int) -> int:
        if PCI_CFG_CAP_AT + 16 <= off < PCI_CFG_CAP_AT + 20:
            _, window_off, length = self._window()
            return self.bar_read(window_off, length) if length in (1, 2, 4) else 0
        return super().config_read(off, size)

    def config_write(self, off: int, size: int, value: int) -> None:
        if PCI_CFG_CAP_AT + 4 <= off < PCI_CFG_CAP_AT + 16:       # bar, offset, length
            self.config[off:off + size] = value.to_bytes(size, "little")
        elif PCI_CFG_CAP_AT + 16 <= off < PCI_CFG_CAP_AT + 20:
            _, window_off, length = self._window()
            if length in (1, 2, 4):
                self.bar_write(window_off, length, value)
        else:
            super().config_write(off, size, value)

    def _window(self) -> tuple[int, int, int]:
        bar = self.config[PCI_CFG_CAP_AT + 4]
        off, length = struct.unpack_from("<II", self.config, PCI_CFG_CAP_AT + 8)
        return bar, off, length if bar == 0 else 0

    # -- BAR 0 -------------------------------------------------------------------------
    def register_name(self, off: int) -> str:
        """What the ledger calls an access at ``off`` of BAR 0."""
        what = "notify" if off >= NOTIFY_AT else "device config" if off >= DEVICE_AT else \
            "ISR" if off >= ISR_AT else "common config"
        return f"virtio-{self.t.device.name} {what}"

    def bar_read(self, off: int, size: int) -> int:
        t = self.t
        if off >= NOTIFY_AT:
            return 0
        if off >= DEVICE_AT:
            return t.device.read_config(off - DEVICE_AT, size)
        if off >= ISR_AT:
            isr = t.interrupt_status
            t._ack_interrupt(isr)                      # reading ISR acknowledges it
            return isr if off == ISR_AT else 0
        return self._common_read(off, size)

    def bar_write(self, off: int, size: int, value: int) -> None:
        t = self.t
        if off >= NOTIFY_AT:
            index = (off - NOTIFY_AT) // NOTIFY_MULTIPLIER
            t._notify(index)
        elif off >= DEVICE_AT:
            t.device.write_config(off - DEVICE_AT, size, value)
        elif off < ISR_AT:
            self._common_write(off, size, value)

    def _common_read(self, off: int, size: int) -> int:
        t = self.t
        q = t._queue()
        if off == 0x00:
            return t.device_features_sel
        if off == 0x04:
            return t._device_features_word()
        if off == 0x08:
            return t.driver_features_sel
        if off == 0x0C:
            return (t.driver_features >> (32 * t.driver_features_sel)) & 0xFFFFFFFF \
                if t.driver_features_sel < 2 else 0
        if off in (0x10, 0x1A):
            return NO_VECTOR
        if off == 0x12:
            return len(t.queues)
        if off == 0x14:
            return t.status
        if off == 0x15:
            return t.config_generation
        if off == 0x16:
            return t.queue_sel
        if q is None:
            return 0
        if off == 0x18:
            return q.num
        if off == 0x1C:
            return int(q.ready)
        if off == 0x1E:
            return t.queue_sel                          # queue n notifies at NOTIFY_AT + 4n
        for base, attr in ((0x20, "desc"), (0x28, "avail"), (0x30, "used")):
            if base <= off < base + 8:
                return (getattr(q, attr) >> (8 * (off - base))) & ((1 << (8 * size)) - 1)
        return 0

    def _common_write(self, off: int, size: int, value: int) -> None:
        t = self.t
        q = t._queue()
        if off == 0x00:
            t.device_features_sel = value
        elif off == 0x08:
            t.driver_features_sel = value
        elif off == 0x0C:
            t._set_driver_features_word(value & 0xFFFFFFFF)
        elif off == 0x14:
            t._set_status(value)
        elif off == 0x16:
            t.queue_sel = value
        elif q is None:
            return
        elif off == 0x18:
            # Unlike MMIO, the PCI queue size register starts at the maximum.
            if 0 < value <= q.max_size and not value & (value - 1):
                q.num = value
        elif off == 0x1C:
            q.ready = bool(value & 1)
        else:
            for base, attr in ((0x20, "desc"), (0x28, "avail"), (0x30, "used")):
                if base <= off < base + 8:
                    shift = 8 * (off - base)
                    mask = ((1 << (8 * size)) - 1) << shift
                    setattr(q, attr, (getattr(q, attr) & ~mask) | ((value << shift) & mask))
