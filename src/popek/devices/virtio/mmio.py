"""The virtio-mmio transport, version 2 ("modern") only (virtio v1.2, 4.2.2).

Register map (32-bit registers):

    0x000 MagicValue "virt"   0x004 Version 2      0x008 DeviceID    0x00c VendorID
    0x010 DeviceFeatures      0x014 DeviceFeaturesSel
    0x020 DriverFeatures      0x024 DriverFeaturesSel
    0x030 QueueSel  0x034 QueueNumMax  0x038 QueueNum  0x044 QueueReady
    0x050 QueueNotify         0x060 InterruptStatus  0x064 InterruptACK
    0x070 Status
    0x080/0x084 QueueDesc     0x090/0x094 QueueDriver (avail)  0x0a0/0x0a4 QueueDevice (used)
    0x0fc ConfigGeneration    0x100+ device config space
"""

from __future__ import annotations

from popek.devices.virtio.transport import VirtioTransport

MAGIC = 0x74726976          # "virt"
VENDOR = 0x554D4551         # "QEMU", as QEMU's virt board: drivers check it


# What the ledger names: the registers of the data path; set-up registers are "setup"
# (the ledger keeps a bounded number of names per exit kind).
NAMES = {0x050: "QueueNotify", 0x060: "InterruptStatus", 0x064: "InterruptACK",
         0x070: "Status"}


class VirtioMmio(VirtioTransport):
    SIZE = 0x1000

    def register_name(self, off: int) -> str:
        """What the ledger calls an access at ``off``."""
        what = "config" if off >= 0x100 else NAMES.get(off & ~3, "setup")
        return f"virtio-{self.device.name} {what}"

    def read(self, off: int, size: int) -> int:
        if off >= 0x100:
            return self.device.read_config(off - 0x100, size)
        if size != 4:
            return 0
        q = self._queue()
        if off == 0x000:
            return MAGIC
        if off == 0x004:
            return 2
        if off == 0x008:
            return self.device.device_id
        if off == 0x00C:
            return VENDOR
        if off == 0x010:
            return self._device_features_word()
        if off == 0x034:
            return q.max_size if q else 0
        if off == 0x044:
            return int(q.ready) if q else 0
        if off == 0x060:
            return self.interrupt_status
        if off == 0x070:
            return self.status
        if off == 0x0FC:
            return self.config_generation
        if q and off in (0x080, 0x084, 0x090, 0x094, 0x0A0, 0x0A4):
            attr = {0x080: "desc", 0x090: "avail", 0x0A0: "used"}[off & ~4]
            return (getattr(q, attr) >> (32 if off & 4 else 0)) & 0xFFFFFFFF
        return 0

    def write(self, off: int, size: int, value: int) -> None:
        if off >= 0x100:
            self.device.write_config(off - 0x100, size, value)
            return
        if size != 4:
            return
        value &= 0xFFFFFFFF
        q = self._queue()
        if off == 0x014:
            self.device_features_sel = value
        elif off == 0x020:
            self._set_driver_features_word(value)
        elif off == 0x024:
            self.driver_features_sel = value
        elif off == 0x030:
            self.queue_sel = value
        elif off == 0x038:
            if q and 0 < value <= q.max_size and not value & (value - 1):
                q.num = value
        elif off == 0x044:
            if q:
                q.ready = bool(value & 1)
        elif off == 0x050:
            self._notify(value)
        elif off == 0x064:
            self._ack_interrupt(value)
        elif off == 0x070:
            self._set_status(value)
        elif q and off in (0x080, 0x084, 0x090, 0x094, 0x0A0, 0x0A4):
            attr = {0x080: "desc", 0x090: "avail", 0x0A0: "used"}[off & ~4]
            old = getattr(q, attr)
            new = (old & 0xFFFFFFFF) | (value << 32) if off & 4 else (old & ~0xFFFFFFFF) | value
            setattr(q, attr, new)


class EmptyVirtioSlot:
    """A virtio-mmio window with no device behind it.  QEMU's virt board has eight
    slots whether or not a device is plugged in; an empty one answers with the magic
    value, version 2, DeviceID 0 ("no device") and QEMU's VendorID, and ignores
    writes.  Drivers probe every slot the device tree lists (all eight, as QEMU's),
    and programs written for QEMU read them directly."""
    SIZE = 0x1000

    def read(self, off: int, size: int) -> int:
        if size != 4:
            return 0
        return {0x000: MAGIC, 0x004: 2, 0x00C: VENDOR}.get(off, 0)

    def write(self, off: int, size: int, value: int) -> None:
        pass
