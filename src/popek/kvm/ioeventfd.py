"""KVM's fast path for virtio notifies (``--ioeventfd on``, the default where KVM has it):
a guest's write to a queue's notify address is caught inside KVM, which signals an
eventfd instead of returning to popek; a thread of popek's waits on those eventfds and
serves the queue.  The vCPU that notified never leaves KVM for it, as with QEMU's
``ioeventfd=on`` and Firecracker.

Without it, a notify is an exit to user space: the vCPU thread returns from KVM_RUN,
popek decodes the MMIO write in Python, serves the queue, and enters KVM_RUN again, the
"long path" of a Type 2 hypervisor.  Each notify address has its own eventfd (virtio-pci
gives each queue its own address: notify BAR + 4 × queue index), so the eventfd alone
says which queue.  A function whose BAR moves or stops decoding is re-registered at its
new address (or not at all), so KVM never catches writes to where the device is not.

Completions go back the same way (irqfd): each function's INTx line is an eventfd
that KVM turns into its GSI (``KVM_IRQFD`` with resampling: a level line, which KVM
lowers at the guest's EOI and then signals a second eventfd, so the thread raises it
again if the device still holds it, the way INTx works through QEMU's irqfd).  So
neither a notify nor its interrupt takes a vCPU out of KVM.
"""

from __future__ import annotations

import logging
import os
import select
import threading

from popek.devices.pci import CMD_MEMORY, INTERRUPT_LINE
from popek.devices.virtio.pci import NOTIFY_AT, NOTIFY_MULTIPLIER

log = logging.getLogger(__name__)


class IoEventThread:
    """The eventfds of the virtio-pci functions it watches, and the thread serving them.
    ``lock``: the machine's device lock (the vCPU threads take it for their exits)."""

    def __init__(self, vm, lock):
        self.vm, self.lock = vm, lock
        self.queues: dict[int, tuple] = {}          # eventfd → (transport, queue index)
        self.resamples: dict[int, tuple] = {}       # resamplefd → (transport, irqfd, gsi)
        self.assigned: dict[int, int] = {}          # eventfd → address it is assigned at
        self.functions = []
        self.notifies = self.injections = self.resampled = 0
        self.rewires = 0
        self._wake_r, self._wake_w = os.pipe()
        self._thread = None

    def watch(self, fn) -> None:
        """Give each queue of virtio-pci function ``fn`` an eventfd at its notify address
        (now, and whenever the guest moves the BAR or turns its decoding on or off)."""
        fds = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in fn.t.queues]
        for index, fd in enumerate(fds):
            self.queues[fd] = (fn.t, index)
        self.functions.append((fn, fds))
        bus_changed = fn.on_decode_change

        def changed() -> None:
            bus_changed()
            self._wire(fn, fds)
        fn.on_decode_change = changed
        self._wire(fn, fds)
        self._interrupts(fn)

    def _interrupts(self, fn) -> None:
        """The function's INTx line through an irqfd: a rise is a write to it (KVM raises
        the GSI); a fall is nothing (KVM lowers it at the guest's EOI and says so)."""
        gsi = fn.config[INTERRUPT_LINE]
        irq_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        resample_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.vm.irqfd(irq_fd, gsi, resample_fd)
        self.resamples[resample_fd] = (fn.t, irq_fd, gsi)
        t = fn.t

        def set_level(level: bool) -> None:
            if level:
                self.injections += 1
                os.eventfd_write(irq_fd, 1)
        t.irq = set_level

    def _wire(self, fn, fds) -> None:
        """Each queue's eventfd at its notify address while the BAR decodes, else none
        (a write there reaches no device either)."""
        base = fn.bars[0].addr if fn.command & CMD_MEMORY else None
        for index, fd in enumerate(fds):
            want = None if base is None else base + NOTIFY_AT + NOTIFY_MULTIPLIER * index
            have = self.assigned.get(fd)
            if have == want:
                continue
            if have is not None:
                self.vm.ioeventfd(have, fd, assign=False)
                del self.assigned[fd]
            if want is not None:
                self.vm.ioeventfd(want, fd)
                self.assigned[fd] = want
                self.rewires += 1

    def start(self, done: threading.Event) -> None:
        self._thread = threading.Thread(target=self._loop, args=(done,), daemon=True)
        self._thread.start()

    def _loop(self, done: threading.Event) -> None:
        fds = [*self.queues, *self.resamples, self._wake_r]
        while not done.is_set():
            ready, _, _ = select.select(fds, [], [], 0.1)
            for fd in ready:
                if fd == self._wake_r:
                    os.read(fd, 64)
                    continue
                try:
                    os.eventfd_read(fd)
                except BlockingIOError:
                    continue
                if fd in self.resamples:                # the guest's EOI lowered the line
                    transport, irq_fd, _ = self.resamples[fd]
                    with self.lock:
                        if transport.interrupt_status:  # still wanted: raise it again
                            self.resampled += 1
                            os.eventfd_write(irq_fd, 1)
                    continue
                transport, index = self.queues[fd]
                with self.lock:
                    self.notifies += 1
                    transport._notify(index)
                    if transport.pending:
                        transport.service()

    def stop(self) -> None:
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        for fd, addr in list(self.assigned.items()):
            try:
                self.vm.ioeventfd(addr, fd, assign=False)
            except OSError:
                pass                                # (the VM may be gone already)
        for resample_fd, (_, irq_fd, gsi) in list(self.resamples.items()):
            try:
                self.vm.irqfd(irq_fd, gsi, 0, assign=False)
            except OSError:
                pass
            os.close(irq_fd)
            os.close(resample_fd)
        self.resamples.clear()
        for fd in self.queues:
            os.close(fd)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.queues.clear()
        self.assigned.clear()

    def stats(self) -> dict:
        return {"ioeventfd_notifies": self.notifies, "irqfd_injections": self.injections,
                "irqfd_raised_again": self.resampled,
                "ioeventfd_queues": sum(len(fds) for _, fds in self.functions)}
