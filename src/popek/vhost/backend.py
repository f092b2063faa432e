"""popek's vhost-user virtio-blk backend: a driver domain as a host process
(``popek vhost-user-blk --socket PATH --drive FILE``).

It listens on a UNIX socket for a frontend (popek's KVM machine, or QEMU's
``vhost-user-blk-pci``), which shares the guest's RAM with it (SET_MEM_TABLE: memfd
descriptors it maps) and gives it each queue's rings and two eventfds: *kick* (the
guest notified: KVM signals it directly, through an ioeventfd) and *call* (the backend
completed requests: the frontend raises the guest's interrupt).  Requests are served
by the same virtio-blk model the VMM uses in-process (devices/virtio/blk.py) over the
shared memory.  When the frontend goes away the backend waits for the next one: a
frontend that reconnects sets the rings up again from where its guest is.

Fewer rights than the VMM: it opens its disk and its socket, and then, if it runs as
root, becomes ``nobody`` with no supplementary groups and no way back (no_new_privs):
it holds no descriptor of the VMM's (popek starts it with none) and cannot open a
root-only /dev/kvm or the VMM's files.  ``--crash-after N`` makes it kill itself
with SIGKILL in request N+1, after the request's data reached the disk and before its
completion did (a crash in the middle of a transfer).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
import selectors
import signal
import socket
import stat
import struct
import time

from popek.devices.virtio.blk import VirtioBlk
from popek.devices.virtio.queue import Virtqueue, VirtqueueError
from popek.errors import ConfigError, GuestMemoryError
from popek.vhost import protocol as P

log = logging.getLogger(__name__)

VIRTIO_F_VERSION_1 = 1 << 32
# The requests that carry a vring state or address (the rest are read field by field).
RING_REQUESTS = {P.GET_CONFIG, P.SET_VRING_NUM, P.SET_VRING_BASE, P.GET_VRING_BASE,
                 P.SET_VRING_ENABLE, P.SET_VRING_ADDR, P.SET_VRING_KICK, P.SET_VRING_CALL}
NOBODY = 65534
PR_SET_NO_NEW_PRIVS = 38


class SharedMemory:
    """The guest's RAM as the frontend shared it, addressed by guest-physical address
    (the DMA interface the device models use: contains, read, write, read_int,
    write_int)."""

    def __init__(self):
        self.regions: list[tuple[int, int, int, mmap.mmap]] = []   # gpa, size, uaddr, map

    def close(self) -> None:
        for *_, m in self.regions:
            m.close()
        self.regions = []

    def _at(self, addr: int, length: int) -> tuple[mmap.mmap, int]:
        for gpa, size, _, m in self.regions:
            if gpa <= addr and addr + length <= gpa + size:
                return m, addr - gpa
        raise GuestMemoryError(f"{addr:#x}+{length:#x} is not in the shared guest memory")

    def contains(self, addr: int, length: int = 1) -> bool:
        return any(gpa <= addr and addr + length <= gpa + size
                   for gpa, size, _, _ in self.regions)

    def read(self, addr: int, length: int) -> bytes:
        m, off = self._at(addr, length)
        return m[off:off + length]

    def write(self, addr: int, data: bytes) -> None:
        m, off = self._at(addr, len(data))
        m[off:off + len(data)] = data

    def read_int(self, addr: int, size: int) -> int:
        return int.from_bytes(self.read(addr, size), "little")

    def write_int(self, addr: int, size: int, value: int) -> None:
        self.write(addr, value.to_bytes(size, "little"))

    def gpa(self, uaddr: int, length: int) -> int:
        """The guest-physical address of the frontend's address ``uaddr``."""
        for gpa, size, user, _ in self.regions:
            if user <= uaddr and uaddr + length <= user + size:
                return gpa + uaddr - user
        raise P.ProtocolError(f"ring address {uaddr:#x} is in no memory region")


class Ring:
    def __init__(self, mem, max_size: int):
        self.q = Virtqueue(mem, max_size)
        self.kick = self.call = None
        self.enabled = False
        self.stopped = False

    def close_fds(self) -> None:
        for fd in (self.kick, self.call):
            if fd is not None:
                os.close(fd)
        self.kick = self.call = None


class Backend:
    def __init__(self, sock_path: str, drive: str, readonly: bool = False,
                 crash_after: int | None = None, hang_after: int | None = None):
        self.blk = VirtioBlk(SharedMemory(), drive, readonly)     # (opens and locks it)
        self.path = sock_path
        self.crash_after = crash_after
        self.hang_after = hang_after
        self.served = 0
        try:
            if os.path.lexists(sock_path):
                if not stat.S_ISSOCK(os.lstat(sock_path).st_mode):
                    raise FileExistsError(errno.EEXIST, "exists and is not a socket")
                os.unlink(sock_path)                  # (a dead backend's socket)
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(sock_path)
            self.listener.listen(1)
        except OSError as e:
            self.blk.close()
            raise ConfigError(f"vhost-user-blk: {sock_path}: {e.strerror}") from None
        self.features = self.blk.features | VIRTIO_F_VERSION_1 | P.F_PROTOCOL_FEATURES
        self.protocol_features = P.PROTOCOL_F_CONFIG | P.PROTOCOL_F_MQ
        self._fresh()

    def _fresh(self) -> None:
        """State of a new connection."""
        self.mem = SharedMemory()
        self.blk.mem = self.mem
        self.rings = [Ring(self.mem, 1024)]
        self.acked = 0
        self.acked_protocol = 0

    def drop_rights(self) -> None:
        """If root: nobody, no groups, and no gaining privileges again."""
        if os.getuid() == 0:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

    # -- the loop --------------------------------------------------------------------
    def serve_forever(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            log.info("vhost-user-blk: a frontend connected")
            try:
                self._serve(conn)
            except P.ProtocolError as e:
                log.info("vhost-user-blk: %s", e)
            finally:
                conn.close()
                for r in self.rings:
                    r.close_fds()
                self.mem.close()
                self._fresh()

    def _serve(self, conn: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(conn, selectors.EVENT_READ)
        watched: set[int] = set()
        try:
            while True:
                for key, _ in sel.select():
                    if key.fileobj is conn:
                        self._message(conn)
                    else:
                        try:
                            os.eventfd_read(key.fd)
                        except BlockingIOError:
                            continue
                        self._process(self.rings[key.data])
                kicks = {r.kick: i for i, r in enumerate(self.rings) if r.kick is not None}
                for fd in watched - set(kicks):
                    sel.unregister(fd)
                for fd in set(kicks) - watched:
                    sel.register(fd, selectors.EVENT_READ, kicks[fd])
                watched = set(kicks)
        finally:
            sel.close()

    def _process(self, ring: Ring) -> None:
        """Serve what the guest offered on ``ring``, then signal its call eventfd."""
        q = ring.q
        if not ring.enabled or ring.stopped or not q.ready:
            return
        done = 0
        try:
            while (chain := q.pop()) is not None:
                written = self.blk.process(0, chain)
                if self.crash_after is not None and self.served == self.crash_after:
                    os.kill(os.getpid(), signal.SIGKILL)     # (data written, not completed)
                if self.hang_after is not None and self.served == self.hang_after:
                    log.warning("hanging in request %d (an injected fault)", self.served + 1)
                    while True:                     # alive, its socket open, serving nothing
                        time.sleep(3600)
                q.push(chain.head, written)
                self.served += 1
                done += 1
        except VirtqueueError as e:
            log.warning("vhost-user-blk: the guest broke its queue: %s", e)
            q.ready = False
        if done and ring.call is not None and not q.interrupts_suppressed():
            os.eventfd_write(ring.call, 1)

    # -- messages ----------------------------------------------------------------------
    def _message(self, conn: socket.socket) -> None:
        request, flags, payload, fds = P.receive(conn)
        try:
            reply = self._handle(request, payload, fds)
        except (struct.error, IndexError):
            raise P.ProtocolError(f"{P.NAMES.get(request, request)}: a payload of "
                                  f"{len(payload)} bytes") from None
        finally:
            for fd in fds:                       # (those kept were dup'ed)
                os.close(fd)
        if reply is not None:
            P.send(conn, request, reply, reply=True)
        elif flags & P.FLAG_NEED_REPLY and self.acked_protocol & P.PROTOCOL_F_REPLY_ACK:
            P.send(conn, request, P.U64.pack(0), reply=True)

    def _ring(self, index: int) -> Ring:
        if index >= len(self.rings):
            raise P.ProtocolError(f"queue {index}: the device has {len(self.rings)}")
        return self.rings[index]

    def _handle(self, request: int, payload: bytes, fds: list[int]) -> bytes | None:
        if request == P.GET_FEATURES:
            return P.U64.pack(self.features)
        if request == P.SET_FEATURES:
            self.acked = P.U64.unpack_from(payload)[0] & self.features
            if not self.acked & P.F_PROTOCOL_FEATURES:
                for r in self.rings:
                    r.enabled = True             # (rings start enabled without them)
            return None
        if request == P.GET_PROTOCOL_FEATURES:
            return P.U64.pack(self.protocol_features)
        if request == P.SET_PROTOCOL_FEATURES:
            self.acked_protocol = P.U64.unpack_from(payload)[0] & self.protocol_features
            return None
        if request == P.GET_QUEUE_NUM:
            return P.U64.pack(len(self.rings))
        if request in (P.SET_OWNER, P.RESET_OWNER, P.SET_VRING_ERR, P.SET_CONFIG):
            return None
        if request == P.SET_MEM_TABLE:
            self._mem_table(payload, fds)
            return None
        if request not in RING_REQUESTS:
            log.info("vhost-user-blk: %s ignored", P.NAMES.get(request, request))
            return None
        if request == P.GET_CONFIG:
            offset, size, _ = P.CONFIG_HEADER.unpack_from(payload)
            data = self.blk.config[offset:offset + size].ljust(size, b"\0") \
                if size <= 256 else b""
            return P.CONFIG_HEADER.pack(offset, len(data), 0) + data
        index, num = P.VRING_STATE.unpack_from(payload)
        if request == P.SET_VRING_NUM:
            if not 0 < num <= 32768 or num & (num - 1):
                raise P.ProtocolError(f"queue size {num}")
            self._ring(index).q.num = num
            return None
        if request == P.SET_VRING_BASE:
            self._ring(index).q.last_avail = num & 0xFFFF
            return None
        if request == P.GET_VRING_BASE:           # the ring stops
            r = self._ring(index)
            r.stopped = True
            return P.VRING_STATE.pack(index, r.q.last_avail)
        if request == P.SET_VRING_ENABLE:
            r = self._ring(index)
            r.enabled = bool(num)
            self._process(r)                      # (what was offered while it was off)
            return None
        if request == P.SET_VRING_ADDR:
            index, _, desc, used, avail, _ = P.VRING_ADDR.unpack_from(payload)
            r = self._ring(index)
            q = r.q
            q.desc = self.mem.gpa(desc, 16 * q.num)
            q.avail = self.mem.gpa(avail, 6 + 2 * q.num)
            q.used = self.mem.gpa(used, 6 + 8 * q.num)
            return None
        if request in (P.SET_VRING_KICK, P.SET_VRING_CALL):
            (value,) = P.U64.unpack_from(payload)
            r = self._ring(value & 0xFF)
            fd = None if value & P.VRING_NOFD or not fds else os.dup(fds[0])
            if request == P.SET_VRING_KICK:
                if r.kick is not None:
                    os.close(r.kick)
                r.kick = fd
                r.stopped = False
                r.q.ready = True
                self._process(r)                  # (what was offered before the kick fd)
            else:
                if r.call is not None:
                    os.close(r.call)
                r.call = fd
            return None
        return None

    def _mem_table(self, payload: bytes, fds: list[int]) -> None:
        n, _ = P.MEM_HEADER.unpack_from(payload)
        if not 0 < n <= P.MAX_REGIONS or len(fds) != n:
            raise P.ProtocolError(f"a memory table of {n} regions and {len(fds)} descriptors")
        self.mem.close()
        for i in range(n):
            gpa, size, uaddr, offset = P.MEM_REGION.unpack_from(payload, P.MEM_HEADER.size
                                                                + i * P.MEM_REGION.size)
            try:
                m = mmap.mmap(fds[i], size, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
            except (OSError, ValueError, OverflowError) as e:
                raise P.ProtocolError(f"region {i} cannot be mapped: {e}") from None
            self.mem.regions.append((gpa, size, uaddr, m))


def main(sock_path: str, drive: str, readonly: bool, crash_after: int | None,
         hang_after: int | None = None) -> int:
    """``popek vhost-user-blk``: serve until killed."""
    logging.basicConfig(level=logging.WARNING, format="popek vhost-user-blk: %(message)s")
    backend = Backend(sock_path, drive, readonly, crash_after, hang_after)
    backend.drop_rights()
    print(f"popek vhost-user-blk: serving {drive} on {sock_path} (pid {os.getpid()}, "
          f"uid {os.getuid()})", flush=True)
    try:
        backend.serve_forever()
    except KeyboardInterrupt:
        return 0
    return 0
