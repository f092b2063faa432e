"""KVM's fast path for virtio-pci (``--ioeventfd on``, the default where KVM has it): a
guest's write to a queue's notify address is caught inside KVM, which signals an eventfd
instead of returning to popek; a thread of popek's waits on those eventfds and serves the
queue.  The vCPU that notified never leaves KVM for it, as with QEMU's ``ioeventfd=on``
and Firecracker.

Without it, a notify is an exit to user space: the vCPU thread returns from KVM_RUN,
popek decodes the MMIO write in Python, serves the queue, and enters KVM_RUN again, the
"long path" of a Type 2 hypervisor.  Each notify address has its own eventfd (virtio-pci
gives each queue its own address: notify BAR + 4 × queue index), so the eventfd alone
says which queue.  A function whose BAR moves or stops decoding is re-registered at its
new address (or not at all), so KVM never catches writes to where the device is not; an
address KVM refuses (two BARs laid over each other) is left to the exit path.

A vhost-user device's notify addresses get its backend's kick eventfds instead
(kvm/vhost_user.py): KVM wakes the backend process, and popek is not on the way at all.

Completions go back the same way (irqfd): each function's INTx line is an eventfd that
KVM turns into its GSI (``KVM_IRQFD`` with resampling: a level line, which KVM lowers
at the guest's EOI and then signals a second eventfd, so the thread raises it again if
the device still holds it, the way INTx works through QEMU's irqfd).  The line is
written on a rise only.  What still exits with INTx is the guest's read of the ISR
register in its interrupt handler (MSI-X, which popek does not model, would spare it).
"""

from __future__ import annotations

import logging
import os
import selectors

from popek.devices.pci import CMD_MEMORY, INTERRUPT_LINE
from popek.devices.virtio.pci import NOTIFY_AT, NOTIFY_MULTIPLIER
from popek.kvm.eventthread import EventThread
from popek.kvm.system import KvmError

log = logging.getLogger(__name__)


def _eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


class _Line:
    """One function's INTx as an irqfd: its eventfds, and whether KVM holds it raised."""
    __slots__ = ("transport", "irq_fd", "resample_fd", "gsi", "raised")

    def __init__(self, transport, gsi: int):
        self.transport, self.gsi, self.raised = transport, gsi, False
        self.irq_fd = self.resample_fd = None


class IoEventThread(EventThread):
    """The eventfds of the virtio-pci functions it watches, and the thread serving them.
    ``lock``: the machine's device lock (the vCPU threads take it for their exits);
    ``on_error(why)``: the thread could not serve a device (the machine stops)."""
    NAME = "I/O thread"

    def __init__(self, vm, lock, on_error):
        super().__init__(on_error)
        self.vm, self.lock = vm, lock
        self.queues: dict[int, tuple] = {}          # eventfd → (transport, queue index)
        self.lines: dict[int, _Line] = {}           # resamplefd → its line
        self.assigned: dict[int, int] = {}          # eventfd → address it is assigned at
        self.functions = []
        self.notifies = self.raises = self.resampled = self.rewires = self.refused = 0

    def watch(self, fn) -> None:
        """Give each queue of virtio-pci function ``fn`` an eventfd at its notify address
        (now, and whenever the guest moves the BAR or turns its decoding on or off), and
        its INTx line an irqfd."""
        fds = []
        self.functions.append((fn, fds))           # (recorded first: close() finds them)
        kicks = getattr(fn.t.device, "kick_fds", None)
        if kicks is not None:                       # a vhost-user device: KVM signals its
            fds += kicks                            # backend's kick eventfds directly
        else:
            for index in range(len(fn.t.queues)):
                fd = _eventfd()
                fds.append(fd)
                self.queues[fd] = (fn.t, index)
        bus_changed = fn.on_decode_change

        def changed() -> None:
            bus_changed()
            self._wire(fn, fds)
        fn.on_decode_change = changed
        self._wire(fn, fds)
        self._interrupts(fn)

    def _wire(self, fn, fds) -> None:
        """Each queue's eventfd at its notify address while the BAR decodes, else none
        (a write there reaches no device either).  Called from a vCPU's exit, under the
        lock; bounded: one deassign and one assign per queue."""
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
                try:
                    self.vm.ioeventfd(want, fd)
                except KvmError as e:              # taken (BARs laid over each other):
                    self.refused += 1              # that queue's notifies exit instead
                    if self.refused == 1:
                        log.warning("ioeventfd at %#x refused (%s): notifies there exit", want, e)
                    continue
                self.assigned[fd] = want
                self.rewires += 1

    def _interrupts(self, fn) -> None:
        """The function's INTx line through an irqfd: a rise is a write to it (KVM raises
        the GSI); a fall is nothing (KVM lowers it at the guest's EOI and says so)."""
        line = _Line(fn.t, fn.config[INTERRUPT_LINE])
        line.irq_fd = _eventfd()
        line.resample_fd = _eventfd()
        self.lines[line.resample_fd] = line        # (recorded first: close() finds them)
        self.vm.irqfd(line.irq_fd, line.gsi, line.resample_fd)

        def set_level(level: bool) -> None:
            if level and not line.raised:
                self._raise(line)
        fn.t.irq = set_level

    def _raise(self, line: _Line) -> None:
        line.raised = True
        self.raises += 1
        os.eventfd_write(line.irq_fd, 1)

    def _register(self, sel) -> None:
        for fd in self.lines:                       # (EOIs first: a rise after them counts)
            sel.register(fd, selectors.EVENT_READ)
        for fd in self.queues:
            sel.register(fd, selectors.EVENT_READ)

    def _ready(self, sel, keys) -> None:
        for fd in sorted((key.fd for key in keys), key=lambda fd: fd not in self.lines):
            self._serve(fd)

    def _serve(self, fd: int) -> None:
        try:
            os.eventfd_read(fd)
        except BlockingIOError:
            return
        line = self.lines.get(fd)
        with self.lock:
            if line is not None:                    # the guest's EOI lowered the line
                line.raised = False
                if line.transport.interrupt_status:     # still wanted: raise it again
                    self.resampled += 1
                    self._raise(line)
                return
            transport, index = self.queues[fd]
            self.notifies += 1
            transport._notify(index)
            if transport.pending:
                transport.service()

    def close(self) -> None:
        if self._wake_w is None:
            return                                  # (closed already)
        self.stop()
        if self.running:                            # (still serving: its fds stay open)
            log.warning("the I/O thread did not stop; its eventfds are left open")
            return
        for fd, addr in list(self.assigned.items()):
            try:
                self.vm.ioeventfd(addr, fd, assign=False)
            except (OSError, KvmError):
                pass                                # (the VM may be gone already)
        for line in self.lines.values():
            try:
                self.vm.irqfd(line.irq_fd, line.gsi, 0, assign=False)
            except (OSError, KvmError):
                pass
        for fd in [*self.queues, *(f for line in self.lines.values()
                                   for f in (line.irq_fd, line.resample_fd))]:
            if fd is not None:
                os.close(fd)
        self.queues.clear()
        self.lines.clear()
        self.assigned.clear()
        self._close_pipe()

    def stats(self) -> dict:
        return {"ioeventfd_notifies": self.notifies, "irqfd_raises": self.raises,
                "irqfd_raised_again_at_eoi": self.resampled,
                "ioeventfd_queues": sum(len(fds) for _, fds in self.functions),
                **({"ioeventfd_refused": self.refused} if self.refused else {})}
