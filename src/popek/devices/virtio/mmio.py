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

Requests are processed synchronously when the driver notifies, so a guest's
flush has reached the host file when its used-buffer interrupt arrives.
"""

from __future__ import annotations

import logging

from popek.devices.virtio.queue import Virtqueue, VirtqueueError

log = logging.getLogger(__name__)

MAGIC = 0x74726976          # "virt"
VENDOR = 0x4B45504F         # "OPEK"
VIRTIO_F_VERSION_1 = 1 << 32

STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK = 1, 2, 4
STATUS_FEATURES_OK, STATUS_NEEDS_RESET, STATUS_FAILED = 8, 64, 128
INT_USED_BUFFER, INT_CONFIG_CHANGE = 1, 2


class VirtioMmio:
    SIZE = 0x1000

    def __init__(self, device, mem, irq=None):
        self.device = device
        self.mem = mem
        self.irq = irq or (lambda level: None)
        self.queues = [Virtqueue(mem, device.queue_max) for _ in range(device.num_queues)]
        self.device_features = device.features | VIRTIO_F_VERSION_1
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.driver_features = 0
        self.device_features_sel = self.driver_features_sel = 0
        self.queue_sel = 0
        self.interrupt_status = 0
        self.config_generation = 0
        for q in self.queues:
            q.reset()
        self.device.reset()
        self.irq(False)

    def _queue(self) -> Virtqueue | None:
        return self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None

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
            return (self.device_features >> (32 * self.device_features_sel)) & 0xFFFFFFFF \
                if self.device_features_sel < 2 else 0
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
            if self.driver_features_sel < 2:
                shift = 32 * self.driver_features_sel
                self.driver_features = (self.driver_features & ~(0xFFFFFFFF << shift)) | (value << shift)
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
            self.interrupt_status &= ~value
            self.irq(self.interrupt_status != 0)
        elif off == 0x070:
            self._set_status(value)
        elif q and off in (0x080, 0x084, 0x090, 0x094, 0x0A0, 0x0A4):
            attr = {0x080: "desc", 0x090: "avail", 0x0A0: "used"}[off & ~4]
            old = getattr(q, attr)
            new = (old & 0xFFFFFFFF) | (value << 32) if off & 4 else (old & ~0xFFFFFFFF) | value
            setattr(q, attr, new)

    def _set_status(self, value: int) -> None:
        if value == 0:
            self.reset()
            return
        if value & STATUS_FEATURES_OK and not self.status & STATUS_FEATURES_OK:
            # 3.1.1: the device refuses feature sets it cannot work with.
            unknown = self.driver_features & ~self.device_features
            if unknown or not self.driver_features & VIRTIO_F_VERSION_1:
                value &= ~STATUS_FEATURES_OK
            else:
                self.device.negotiated(self.driver_features)
        self.status = (value & 0xFF) | (self.status & STATUS_NEEDS_RESET)

    def _notify(self, index: int) -> None:
        if index >= len(self.queues) or not self.status & STATUS_DRIVER_OK \
                or self.status & STATUS_NEEDS_RESET:
            return
        q = self.queues[index]
        if not q.ready:
            return
        did_work = False
        try:
            while (chain := q.pop()) is not None:
                written = self.device.process(index, chain)
                q.push(chain.head, written)
                did_work = True
        except VirtqueueError as e:
            log.warning("virtio-%s: %s; device needs reset", self.device.name, e)
            self.status |= STATUS_NEEDS_RESET
            self.interrupt_status |= INT_CONFIG_CHANGE
            self.irq(True)
            return
        if did_work:
            self.interrupt_status |= INT_USED_BUFFER
            self.irq(True)
