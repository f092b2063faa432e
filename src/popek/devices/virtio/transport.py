"""What every virtio transport shares (virtio v1.2, 2 and 3): feature negotiation,
device status, the virtqueues, notification handling and the interrupt status.
The transports (:mod:`.mmio`, :mod:`.pci`) differ only in their register maps.

Requests are processed synchronously when the driver notifies, so a guest's
flush has reached the host file when its used-buffer interrupt arrives.
"""

from __future__ import annotations

import logging

from popek.devices.virtio.queue import Virtqueue, VirtqueueError

log = logging.getLogger(__name__)

VIRTIO_F_VERSION_1 = 1 << 32

STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK = 1, 2, 4
STATUS_FEATURES_OK, STATUS_NEEDS_RESET, STATUS_FAILED = 8, 64, 128
INT_USED_BUFFER, INT_CONFIG_CHANGE = 1, 2


class VirtioTransport:
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

    def _device_features_word(self) -> int:
        return (self.device_features >> (32 * self.device_features_sel)) & 0xFFFFFFFF \
            if self.device_features_sel < 2 else 0

    def _set_driver_features_word(self, value: int) -> None:
        if self.driver_features_sel < 2:
            shift = 32 * self.driver_features_sel
            self.driver_features = (self.driver_features & ~(0xFFFFFFFF << shift)) | (value << shift)

    def _ack_interrupt(self, bits: int) -> None:
        self.interrupt_status &= ~bits
        self.irq(self.interrupt_status != 0)

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
