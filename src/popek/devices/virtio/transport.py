"""What every virtio transport shares (virtio v1.2, 2 and 3): feature negotiation,
device status, the virtqueues, notification handling and the interrupt status.
The transports (:mod:`.mmio`, :mod:`.pci`) differ only in their register maps.

Requests are processed synchronously when the driver notifies, so a guest's
flush has reached the host file when its used-buffer interrupt arrives.  The work
one notify may cause is bounded (a queue's worth of chains; ``SLICE_BYTES`` of
buffers, plus the chain that crosses it, itself at most ``MAX_CHAIN_BYTES``): what is
left waits for :meth:`VirtioTransport.service`, which the machine calls between run
slices, so a driver cannot hold the VMM inside one store.
"""

from __future__ import annotations

import logging

from popek.devices.virtio.queue import Virtqueue, VirtqueueError
from popek.guestlog import GuestWarnings

log = logging.getLogger(__name__)

VIRTIO_F_VERSION_1 = 1 << 32

STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK = 1, 2, 4
STATUS_FEATURES_OK, STATUS_NEEDS_RESET, STATUS_FAILED = 8, 64, 128
INT_USED_BUFFER, INT_CONFIG_CHANGE = 1, 2
SLICE_BYTES = 16 << 20          # buffer bytes served per notify (or per service) at most
DEFERRED = object()             # what process() returns for a request completed later


class VirtioTransport:
    def __init__(self, device, mem, irq=None):
        self.device = device
        self.mem = mem
        self.irq = irq or (lambda level: None)
        self.queues = [Virtqueue(mem, device.queue_max) for _ in range(device.num_queues)]
        self.device_features = device.features | VIRTIO_F_VERSION_1
        self.pending: set[int] = set()          # queues a notify left work on
        self.warnings = GuestWarnings(log)      # the driver's broken rules: logged once
        # A device with work of its own (a NIC's received frames) says which queue has
        # it; the queue is served between run slices.  ``ready(queue)`` says whether
        # serving a queue has any use now (a receive queue with nothing to receive
        # keeps its buffers).
        if hasattr(device, "kick"):
            device.kick = self.pending.add
        self._ready = getattr(device, "ready", None)
        # A device that completes requests later (a disk served by a driver domain:
        # vmm/drivers/) returns DEFERRED from process() and calls complete() when done.
        if hasattr(device, "complete"):
            device.complete = self.complete
        # A device whose queues another process serves (kvm/vhost_user.py) takes the
        # notifies itself and raises interrupts through the transport.
        if hasattr(device, "transport"):
            device.transport = self
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
        self.pending.clear()
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
            # As QEMU: FEATURES_OK is kept whatever the driver accepted.  A driver that
            # does not accept VIRTIO_F_VERSION_1 still gets the modern device (drivers
            # written for QEMU do this and work); features the device did not offer
            # are masked off (a driver's mistake, logged once).
            unknown = self.driver_features & ~self.device_features
            if unknown:
                self.warnings.warn("features", "virtio-%s: the driver accepted features the "
                                   "device does not offer (%#x): ignored", self.device.name,
                                   unknown)
                self.driver_features &= self.device_features
            self.device.negotiated(self.driver_features)
        self.status = (value & 0xFF) | (self.status & STATUS_NEEDS_RESET)
        started = getattr(self.device, "started", None)
        if started is not None:                 # a device that cares when its driver is up
            started(bool(self.status & STATUS_DRIVER_OK))

    def _notify(self, index: int) -> None:
        if index >= len(self.queues) or not self.status & STATUS_DRIVER_OK \
                or self.status & STATUS_NEEDS_RESET:
            return
        if not self.queues[index].ready:
            return
        if hasattr(self.device, "notify"):
            self.device.notify(index)           # (its backend's kick)
        else:
            self._serve(index)

    def stats(self) -> dict:
        """For --stats: the driver's broken rules (each kind logged once)."""
        return {"guest_errors": self.warnings.total()}

    def service(self) -> None:
        """Between run slices: go on with the queues a notify left work on."""
        for index in sorted(self.pending):
            if self.status & STATUS_DRIVER_OK and not self.status & STATUS_NEEDS_RESET \
                    and self.queues[index].ready:
                self._serve(index)
            else:
                self.pending.discard(index)

    def _serve(self, index: int) -> None:
        """Serve queue ``index``: at most a queue's worth of chains and ``SLICE_BYTES``."""
        q = self.queues[index]
        chains = done_bytes = pushed = 0
        self.pending.discard(index)
        try:
            q.check_layout()
            ready = self._ready
            while (ready is None or ready(index)) and (chain := q.pop()) is not None:
                written = self.device.process(index, chain)
                if written is not DEFERRED:
                    q.push(chain.head, written)
                    pushed += 1
                chains += 1
                done_bytes += chain.length
                if chains >= q.num or done_bytes >= SLICE_BYTES:
                    self.pending.add(index)     # maybe more: the next slice goes on
                    break
        except VirtqueueError as e:
            self._broken(e)
            return
        if pushed and not q.interrupts_suppressed():
            self.interrupt_status |= INT_USED_BUFFER
            self.irq(True)

    def _broken(self, e: VirtqueueError) -> None:
        """The driver broke its queue: the device needs a reset.  Logged once per
        device: a guest that breaks its queue again and again must not flood the
        host's log (--stats counts them all)."""
        self.warnings.warn("queue", "virtio-%s: %s; device needs reset", self.device.name, e)
        self.status |= STATUS_NEEDS_RESET
        self.interrupt_status |= INT_CONFIG_CHANGE
        self.irq(True)

    def complete(self, index: int, head: int, written: int) -> None:
        """A deferred request is done: its chain goes back to the driver, with an
        interrupt unless the driver suppressed them.  (A device reset in between has
        told the device to forget it: it does not call this.)"""
        q = self.queues[index]
        try:
            q.push(head, written)
        except VirtqueueError as e:
            self._broken(e)
            return
        if not q.interrupts_suppressed():
            self.interrupt_status |= INT_USED_BUFFER
            self.irq(True)
