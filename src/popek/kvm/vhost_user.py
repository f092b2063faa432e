"""A virtio-blk whose data path is another process (vhost-user, the frontend's side):
the KVM machine's driver domains (``--drivers domains``: popek starts a ``popek
vhost-user-blk`` per disk) and backends a user started (``--device
vhost-user-blk-pci,socket=PATH``).

popek keeps the PCI function, its registers and feature negotiation (the transport,
devices/virtio/pci.py); the backend gets the guest's RAM (the memfd the machine's RAM
is), the queue's rings, and two eventfds: *kick*, which KVM signals itself when the
guest writes the queue's notify address (an ioeventfd: the vCPU does not leave KVM,
and popek is not on the path at all), and *call*, which the backend signals when it
completed requests: :class:`VhostUserThread` then sets the ISR bit and raises the
function's INTx (through the irqfd, with --ioeventfd on).

If the backend dies (its socket closes), the thread restarts it (if popek started
it) or waits for it to come back (if the user did), reconnects, and sets the ring up
again with its base at the guest's used index: every request the guest offered and
did not see completed is served again (a block read or write, done twice, leaves the
same bytes).  The guest sees a slow request.  ``--stats`` counts reconnects, replayed
requests and the time it took.

A backend may also hang, alive, its socket open: a watchdog in the thread takes one
whose used index has not moved for ``watchdog_ms`` while the guest waits for a
request (wall time) for hung; popek's own is killed, and restarted as above; one
the user started is reported.
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from popek.errors import ConfigError
from popek.kvm.eventthread import EventThread
from popek.vhost import protocol as P

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0            # seconds to wait for a backend's socket
REPLY_TIMEOUT = 5.0               # seconds a backend may take to answer a message
MAX_RECONNECTS = 16               # a backend that keeps dying is given up (the run stops)
# A backend that serves nothing this long (wall time) with requests waiting is hung:
# Linux's block layer times a request out after 30 s, and a host's fsync of much dirty
# data may take seconds.  At most MAX_WATCHDOG_KILLS a run (progress the guest could fake
# re-arms it; each kill costs a reconnect).
DEFAULT_WATCHDOG_MS = 30_000
MAX_WATCHDOG_KILLS = 4
# What popek's virtio-blk transport lets a guest have from a backend: size_max, seg_max,
# ro, blk_size, flush (not multiqueue, discard ... which it does not model).
BLK_FEATURES = 1 << 1 | 1 << 2 | 1 << 5 | 1 << 6 | 1 << 9
CONFIG_SIZE = 60                  # virtio-blk's config space up to the discard fields
VIRTIO_F_VERSION_1 = 1 << 32
INT_USED_BUFFER = 1


def _eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


class VhostUserBlk:
    """The device model under a VirtioPci function (``machine``: its RAM's memfd and
    size, its device lock)."""
    device_id = 2
    name = "blk"
    num_queues = 1
    queue_max = 256

    def __init__(self, machine, ident: str, socket_path: str, spawn: list | None = None,
                 fault=None, watchdog_ms: int = DEFAULT_WATCHDOG_MS):
        """``fault``: a FaultPlan for the first backend popek starts."""
        self.m = machine
        self.id = ident
        self.path = socket_path
        self.spawn = spawn                    # argv of a backend popek starts, or None
        self.fault = fault                    # (its first start only)
        self.watchdog = watchdog_ms / 1000
        self.progress: tuple | None = None    # (the used indices, since when requests wait)
        self.hung_told = False
        self.clock = time.monotonic
        self.proc = None
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()          # (the socket: a vCPU's exit, and the thread)
        self.kick_fds = [_eventfd()]
        self.call_fds = [_eventfd()]
        self.transport = None                 # (set by the machine once plugged)
        self.driver_features = 0
        self.running = False                  # the driver is up: the rings are set up
        self.stats = {"reconnects": 0, "backend_starts": 0, "replayed": 0,
                      "recovery_ms": 0.0, "completions": 0, "hangs": 0}
        try:
            self._start_backend()
            # (Ours may take a moment to listen; one the user started must be there.)
            self._connect(CONNECT_TIMEOUT if spawn is not None else 0)
        except BaseException:
            self.close()
            raise

    # -- the backend ------------------------------------------------------------------
    def _start_backend(self) -> None:
        if self.spawn is None:
            return
        argv = list(self.spawn)
        if self.fault is not None:
            argv += [f"--{self.fault.kind}-after", str(self.fault.after)]
            self.fault = None
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, close_fds=True)
        self.stats["backend_starts"] += 1

    def _connect(self, timeout: float) -> None:
        """Connect and agree on features (the device's features and config come from
        the backend), retrying until ``timeout``: a backend that is starting has no
        socket yet, and one that is dying may still take a connection and reset it."""
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                s.settimeout(REPLY_TIMEOUT)       # (a hung backend must not hang popek)
                self._handshake(s)
                self.sock = s
                return
            except (OSError, P.ProtocolError) as e:
                s.close()
                why = e.strerror if isinstance(e, OSError) else str(e)
                if self.proc is not None and self.proc.poll() is not None:
                    raise ConfigError(f"vhost-user-blk {self.id}: the backend exited "
                                      f"({_status(self.proc.returncode)}) before serving") \
                        from None
                if time.monotonic() > deadline:
                    raise ConfigError(f"vhost-user-blk {self.id}: no backend at {self.path} "
                                      f"({why})") from None
                time.sleep(0.02)

    def _handshake(self, s: socket.socket) -> None:
        offered = P.U64.unpack(P.call(s, P.GET_FEATURES))[0]
        if not offered & P.F_PROTOCOL_FEATURES or not offered & VIRTIO_F_VERSION_1:
            raise ConfigError(f"vhost-user-blk {self.id}: the backend offers no protocol "
                              "features or no VIRTIO_F_VERSION_1")
        protocol = P.U64.unpack(P.call(s, P.GET_PROTOCOL_FEATURES))[0]
        if not protocol & P.PROTOCOL_F_CONFIG:
            raise ConfigError(f"vhost-user-blk {self.id}: the backend cannot give its "
                              "config space")
        P.send(s, P.SET_PROTOCOL_FEATURES, P.U64.pack(P.PROTOCOL_F_CONFIG))
        P.send(s, P.SET_OWNER)
        reply = P.call(s, P.GET_CONFIG, P.CONFIG_HEADER.pack(0, CONFIG_SIZE, 0)
                       + bytes(CONFIG_SIZE))
        if len(reply) != P.CONFIG_HEADER.size + CONFIG_SIZE:
            raise P.ProtocolError(f"a GET_CONFIG reply of {len(reply)} bytes")
        self.config = reply[P.CONFIG_HEADER.size:]
        self.features = offered & BLK_FEATURES

    def _setup_rings(self) -> None:
        """Tell the backend the guest's memory, the features, and each ring: from the
        guest's used index, so what it did not see completed is served (again)."""
        t, m = self.transport, self.m
        s = self.sock
        region = P.MEM_HEADER.pack(1, 0) + P.MEM_REGION.pack(0, m.ram.size, 0, 0)
        P.send(s, P.SET_MEM_TABLE, region, fds=[m.ram_fd])
        P.send(s, P.SET_FEATURES, P.U64.pack(self.driver_features | P.F_PROTOCOL_FEATURES))
        for index, q in enumerate(t.queues):
            used = m.ram.read_int(q.used + 2, 2)
            self.stats["replayed"] += (m.ram.read_int(q.avail + 2, 2) - used) & 0xFFFF
            P.send(s, P.SET_VRING_NUM, P.VRING_STATE.pack(index, q.num))
            P.send(s, P.SET_VRING_BASE, P.VRING_STATE.pack(index, used))
            # (addresses in "the frontend's space" are guest-physical: region uaddr 0)
            P.send(s, P.SET_VRING_ADDR, P.VRING_ADDR.pack(index, 0, q.desc, q.used, q.avail, 0))
            P.send(s, P.SET_VRING_CALL, P.U64.pack(index), fds=[self.call_fds[index]])
            P.send(s, P.SET_VRING_KICK, P.U64.pack(index), fds=[self.kick_fds[index]])
            P.send(s, P.SET_VRING_ENABLE, P.VRING_STATE.pack(index, 1))

    # -- what the transport calls (under the machine's lock) ---------------------------
    def reset(self) -> None:
        with self.lock:
            if self.running and self.sock is not None:
                try:
                    for index in range(self.num_queues):      # stop the rings
                        P.call(self.sock, P.GET_VRING_BASE, P.VRING_STATE.pack(index, 0))
                except P.ProtocolError:
                    pass                        # (gone: the thread reconnects)
            self.running = False
            self.progress = None

    def negotiated(self, features: int) -> None:
        self.driver_features = features

    def started(self, ok: bool) -> None:
        if not ok or self.running:
            return
        with self.lock:
            self.running = True
            self.progress = None
            if self.sock is not None and self._rings_in_ram():
                try:
                    self._setup_rings()
                except P.ProtocolError:
                    pass                        # (gone: set up again when reconnected)

    def _rings_in_ram(self) -> bool:
        """The queues' rings are in guest RAM and apart, as the in-process transport
        checks before serving; else the device needs a reset (and the backend is never
        handed an address outside the guest's memory)."""
        from popek.devices.virtio.queue import VirtqueueError
        try:
            for q in self.transport.queues:
                q.check_layout()
        except VirtqueueError as e:
            self.transport._broken(e)
            self.running = False
            return False
        return True

    def notify(self, index: int) -> None:
        """A notify that exited to popek (no ioeventfd): the backend's kick."""
        if index < len(self.kick_fds):
            os.eventfd_write(self.kick_fds[index], 1)

    def read_config(self, off: int, size: int) -> int:
        return int.from_bytes(self.config[off:off + size], "little") \
            if off + size <= len(self.config) else 0

    def write_config(self, off: int, size: int, value: int) -> None:
        pass

    def process(self, queue: int, chain) -> int:          # (never: the backend serves)
        raise AssertionError("a vhost-user device's queues are the backend's")

    def describe(self) -> str:
        who = f"pid {self.proc.pid}" if self.proc is not None else "started by the user"
        return f"vhost-user-blk {self.id} ({who})"

    # -- the thread's side ---------------------------------------------------------------
    def completed(self, index: int) -> None:
        """The backend signalled ``index``'s call eventfd: the guest's interrupt."""
        self.stats["completions"] += 1
        t = self.transport
        t.interrupt_status |= INT_USED_BUFFER
        t.irq(True)

    def hung_up(self) -> bool:
        """Whether the backend's socket is closed (or sends what nobody asked for).
        Under the socket's lock: a reply being read by a caller is not mistaken for it."""
        with self.lock:
            if self.sock is None:
                return False
            try:
                self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False                    # (nothing there any more)
            except OSError:
                pass
            return True

    def watch(self) -> None:
        """The watchdog (the thread calls it every round): a backend that leaves the
        guest's requests unserved for ``watchdog`` seconds, its used index still, is
        hung.  Ours is killed (its socket closes: :meth:`lost` restarts it).  Once a
        stall: if the restarted backend makes no progress either, the guest's own rings
        are the likelier cause (a backend stops serving a queue the guest broke), and
        killing it again and again would only end the run (MAX_RECONNECTS); a guest
        that fakes progress in its used index gets at most MAX_WATCHDOG_KILLS."""
        if not self.running or not self.watchdog or self.transport is None:
            return
        ram, now = self.m.ram, self.clock()
        try:
            rings = [(ram.read_int(q.avail + 2, 2), ram.read_int(q.used + 2, 2))
                     for q in self.transport.queues]
        except Exception:                         # (the rings are checked at set-up)
            return
        used = tuple(u for _, u in rings)
        if all(a == u for a, u in rings):
            self.progress, self.hung_told = None, False        # nothing waits
            return
        if self.progress is None or self.progress[0] != used:
            self.progress, self.hung_told = (used, now), False  # waiting from now on
            return
        if now - self.progress[1] < self.watchdog or self.hung_told:
            return
        self.hung_told = True
        self.stats["hangs"] += 1
        if self.stats["hangs"] > MAX_WATCHDOG_KILLS:
            log.warning("vhost-user-blk %s: the backend served nothing for %.1f s with "
                        "requests waiting (hung %d times: no longer killed)", self.id,
                        now - self.progress[1], self.stats["hangs"])
        elif self.proc is not None and self.proc.poll() is None:
            log.warning("vhost-user-blk %s: the backend served nothing for %.1f s with "
                        "requests waiting: hung; killing it", self.id, now - self.progress[1])
            self.proc.kill()
        else:
            log.warning("vhost-user-blk %s: the backend at %s served nothing for %.1f s with "
                        "requests waiting (started by the user: left to them)", self.id,
                        self.path, now - self.progress[1])

    def lost(self) -> None:
        """The backend's socket closed: start it again (ours: killed first, if it only
        dropped us) and reconnect; rings set up again if the driver is up.  Raises
        ConfigError if it does not come back, or has died MAX_RECONNECTS times."""
        began = time.perf_counter()
        with self.lock:
            if self.sock is not None:
                self.sock.close()
                self.sock = None
            if self.stats["reconnects"] >= MAX_RECONNECTS:
                raise ConfigError(f"vhost-user-blk {self.id}: the backend went away "
                                  f"{MAX_RECONNECTS + 1} times: given up")
            if self.proc is not None:
                if self.proc.poll() is None:
                    self.proc.kill()            # (alive but not serving us: start anew)
                self.proc.wait()
                log.warning("vhost-user-blk %s: the backend died (%s); starting it again",
                            self.id, _status(self.proc.returncode))
                self._start_backend()
            else:
                log.warning("vhost-user-blk %s: the backend went away; waiting for it at %s",
                            self.id, self.path)
            self._connect(CONNECT_TIMEOUT)
            self.stats["reconnects"] += 1
        # The rings as the guest has them now: under the machine's lock (a vCPU's reset
        # or DRIVER_OK takes it first, then ours), re-checked.
        with self.m.lock, self.lock:
            if self.running and self.sock is not None and self._rings_in_ram():
                try:
                    self._setup_rings()
                except P.ProtocolError:
                    return                      # (gone again: its socket says so next)
                for fd in self.kick_fds:
                    os.eventfd_write(fd, 1)     # (look at what waits)
        self.stats["recovery_ms"] += (time.perf_counter() - began) * 1e3
        # (``progress`` stays: a stall the watchdog killed for goes on being the same
        # stall until the used index moves, and is not killed for again)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in self.kick_fds + self.call_fds:
            os.close(fd)
        self.kick_fds, self.call_fds = [], []


def _status(code: int) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def spawned_backend(ident: str, drive, directory: str) -> tuple[str, list]:
    """Where popek's own backend for ``drive`` listens, and how to start it."""
    path = os.path.join(directory, f"{ident}.sock")
    argv = [sys.executable, "-m", "popek", "vhost-user-blk", "--socket", path,
            "--drive", drive.path] + (["--readonly"] if drive.readonly else [])
    return path, argv


def socket_directory() -> str:
    """A private directory for the backends' sockets (removed by :func:`remove`)."""
    return tempfile.mkdtemp(prefix="popek-vhost-")


def remove(directory: str | None) -> None:
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


class VhostUserThread(EventThread):
    """Waits on the backends' call eventfds (an interrupt for the guest) and sockets (a
    backend that died), for the machine's vhost-user devices."""
    NAME = "vhost-user"
    JOIN_TIMEOUT = CONNECT_TIMEOUT + 5          # (it may be reconnecting)

    def __init__(self, devices, lock, on_error):
        super().__init__(on_error)
        self.devices, self.lock = devices, lock
        self._socks: dict = {}                  # device → the socket registered for it

    def _register(self, sel) -> None:
        self._socks = {}
        for dev in self.devices:
            for index, fd in enumerate(dev.call_fds):
                sel.register(fd, selectors.EVENT_READ, (dev, index))

    def _ready(self, sel, keys) -> None:
        for dev in self.devices:
            dev.watch()
        socks = self._socks
        for key in keys:
            dev, index = key.data
            if index is None:                     # its socket: closed (or junk)
                if not dev.hung_up():
                    continue                      # (a reply, which its caller took)
                sel.unregister(key.fileobj)
                socks[dev] = None
                dev.lost()
                continue
            try:
                os.eventfd_read(key.fd)
            except BlockingIOError:
                continue
            with self.lock:
                dev.completed(index)
        for dev in self.devices:                  # (a socket anew after a reconnect)
            if socks.get(dev) is not dev.sock:
                if socks.get(dev) is not None:
                    sel.unregister(socks[dev])
                socks[dev] = dev.sock
                if dev.sock is not None:
                    sel.register(dev.sock, selectors.EVENT_READ, (dev, None))

    def close(self) -> None:
        if self._wake_w is None:
            return
        self.stop()
        if not self.running:                      # (else it still waits on the pipe)
            self._close_pipe()
