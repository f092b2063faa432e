"""Network backends: where a NIC's frames go (QEMU's ``-netdev``).

- :class:`Switch`: a learning Ethernet switch inside popek joining the NICs of one run
  (one machine's, or every VM's under the VMM).  It learns each source MAC's port
  and sends a frame to the port its destination was learnt on, or floods it (to
  every other port) when the destination is unknown, broadcast or multicast.  Its
  MAC table has ``MAC_TABLE`` entries at most; the least recently used is evicted.
  Each port's frames wait in the receiving NIC's own bounded backlog.
- :class:`Loopback`: every frame sent comes back to the sender (for tests).
- :class:`SocketNet`: a TCP stream to another popek or QEMU (QEMU's ``-netdev socket``:
  each frame behind its length, 4 bytes big-endian), one side listening, the other
  connecting (again and again, until the listener is there), non-blocking, polled
  between run slices; at most ``SOCKET_QUEUE`` bytes wait to be sent (beyond, frames
  drop, as a full link drops them), and a length beyond any frame ends the connection.
- :class:`Tap`: a host TAP interface (``/dev/net/tun``, Linux), already created and
  owned by the user or created here when popek may (CAP_NET_ADMIN); read
  non-blocking between run slices, ``TAP_BURST`` frames at a time.

A backend is connected to exactly one NIC (``connect(receive)``) and offers
``send(frame)``, ``poll()`` (between run slices), ``stats()``, ``close()``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import time
from collections import OrderedDict

from popek.errors import ConfigError

MIN_FRAME, MAX_FRAME = 14, 65536 - 14    # an Ethernet header at least; what the NICs take
MAC_TABLE = 1024                         # learnt addresses per switch
TAP_BURST = 64                           # frames read from a TAP device per poll
SOCKET_QUEUE = 1 << 20                   # bytes waiting to go out on a socket netdev
SOCKET_READ = 256 << 10                  # bytes read from a socket per poll
RECONNECT_S = 0.2                        # between a connecting side's attempts


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    try:
        mac = bytes(int(p, 16) for p in parts if len(p) == 2)
    except ValueError:
        mac = b""
    if len(parts) != 6 or len(mac) != 6:
        raise ConfigError(f"mac={text[:40]!r}: give six hex bytes, 52:54:00:12:34:56")
    if mac[0] & 1:
        raise ConfigError(f"mac={text}: a multicast address cannot be a NIC's")
    return mac


class Backend:
    kind = "?"

    def __init__(self, ident: str):
        self.id = ident
        self.deliver = None                   # the NIC's receive(frame)
        self.counts = {"sent": 0, "delivered": 0}

    def connect(self, receive) -> None:
        if self.deliver is not None:
            raise ConfigError(f"netdev {self.id} is already used by another NIC")
        self.deliver = receive

    def describe(self) -> str:
        return f"{self.kind} {self.id}"

    def send(self, frame: bytes) -> None:
        raise NotImplementedError

    def poll(self) -> None:
        pass

    def stats(self) -> dict:
        return dict(self.counts)

    def close(self) -> None:
        pass


class Loopback(Backend):
    kind = "loopback"

    def send(self, frame: bytes) -> None:
        self.counts["sent"] += 1
        if self.deliver is not None:
            self.counts["delivered"] += 1
            self.deliver(frame)


class Switch:
    """A learning switch; each NIC on it has a :class:`SwitchPort` (its netdev)."""

    def __init__(self, name: str = "switch0"):
        self.name = name
        self.ports: list[SwitchPort] = []
        self.table: OrderedDict[bytes, SwitchPort] = OrderedDict()   # MAC → port, LRU first
        self.counts = {"frames": 0, "flooded": 0, "evicted": 0}

    def port(self, ident: str) -> SwitchPort:
        p = SwitchPort(ident, self)
        self.ports.append(p)
        return p

    def forward(self, src_port: SwitchPort, frame: bytes) -> None:
        self.counts["frames"] += 1
        dst, src = frame[0:6], frame[6:12]
        if not src[0] & 1:                            # learn unicast sources only
            self.table[src] = src_port
            self.table.move_to_end(src)
            if len(self.table) > MAC_TABLE:
                self.table.popitem(last=False)
                self.counts["evicted"] += 1
        out = self.table.get(dst) if not dst[0] & 1 else None
        if out is not None:
            if out is not src_port:                   # (a frame to itself goes nowhere)
                out.receive(frame)
            return
        self.counts["flooded"] += 1
        for p in self.ports:
            if p is not src_port:
                p.receive(frame)

    def stats(self) -> dict:
        return {**self.counts, "ports": len(self.ports), "macs": len(self.table),
                "mac_table_max": MAC_TABLE}


class SwitchPort(Backend):
    kind = "switch"

    def __init__(self, ident: str, switch: Switch):
        super().__init__(ident)
        self.switch = switch

    def describe(self) -> str:
        return f"switch {self.switch.name} (netdev {self.id})"

    def send(self, frame: bytes) -> None:
        self.counts["sent"] += 1
        self.switch.forward(self, frame)

    def receive(self, frame: bytes) -> None:
        if self.deliver is not None:
            self.counts["delivered"] += 1
            self.deliver(frame)


TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


class Tap(Backend):
    kind = "tap"

    def __init__(self, ident: str, ifname: str):
        super().__init__(ident)
        if not ifname or len(ifname.encode()) > 15 or "/" in ifname or not ifname.isprintable():
            raise ConfigError(f"netdev {ident}: ifname={ifname[:20]!r}: an interface name is 1 "
                              "to 15 characters")
        self.ifname = ifname
        try:
            self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise ConfigError(f"netdev {ident}: cannot open /dev/net/tun: {e.strerror}") from None
        try:
            fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", ifname.encode(),
                                                        IFF_TAP | IFF_NO_PI))
        except OSError as e:
            os.close(self.fd)
            hint = " (create it with `ip tuntap add dev NAME mode tap user $USER`, or run " \
                   "with CAP_NET_ADMIN)" if e.errno in (errno.EPERM, errno.EACCES) else ""
            raise ConfigError(f"netdev {ident}: cannot attach to TAP {ifname}: "
                              f"{e.strerror}{hint}") from None
        self.counts.update(read_errors=0, write_errors=0)

    def describe(self) -> str:
        return f"tap {self.ifname}"

    def send(self, frame: bytes) -> None:
        self.counts["sent"] += 1
        try:
            os.write(self.fd, frame)
        except OSError:
            self.counts["write_errors"] += 1     # the interface is down, or full: a drop

    def poll(self) -> None:
        for _ in range(TAP_BURST):
            try:
                frame = os.read(self.fd, MAX_FRAME)
            except BlockingIOError:
                return
            except OSError:
                self.counts["read_errors"] += 1
                return
            if len(frame) >= MIN_FRAME and self.deliver is not None:
                self.counts["delivered"] += 1
                self.deliver(frame)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def parse_host_port(text: str, ident: str, listening: bool) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"netdev {ident}: {text[:40]!r}: give HOST:PORT (a TCP port 1-65535)")
    return host or ("0.0.0.0" if listening else "127.0.0.1"), int(port)


class SocketNet(Backend):
    kind = "socket"

    def __init__(self, ident: str, listen: str | None = None, connect: str | None = None):
        super().__init__(ident)
        if (listen is None) == (connect is None):
            raise ConfigError(f"netdev {ident}: a socket netdev takes listen= or connect=")
        self.address = parse_host_port(listen or connect, ident, listen is not None)
        self.side = "listening on" if listen is not None else "connecting to"
        self.listener = self.conn = self.pending = None
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.next_try = 0.0
        self.counts.update(dropped=0, connections=0, protocol_errors=0)
        try:                                        # resolved once, here: no DNS in the loop
            info = socket.getaddrinfo(*self.address, type=socket.SOCK_STREAM)[0]
        except OSError as e:
            raise ConfigError(f"netdev {ident}: {self.address[0]}: {e.strerror}") from None
        self.family, self.sockaddr = info[0], info[4]
        if listen is not None:
            try:
                self.listener = socket.create_server(self.sockaddr[:2], family=self.family)
            except OSError as e:
                raise ConfigError(f"netdev {ident}: cannot listen on {listen}: "
                                  f"{e.strerror}") from None
            self.listener.setblocking(False)

    def describe(self) -> str:
        return f"socket {self.side} {self.address[0]}:{self.address[1]}"

    def send(self, frame: bytes) -> None:
        self.counts["sent"] += 1
        if self.conn is None or len(self.outbuf) + len(frame) + 4 > SOCKET_QUEUE:
            self.counts["dropped"] += 1             # no peer yet, or the link is full
            return
        self.outbuf += struct.pack("!I", len(frame)) + frame
        self._flush()

    def _flush(self) -> None:
        try:
            while self.outbuf:
                n = self.conn.send(self.outbuf)
                del self.outbuf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop_connection()

    def _drop_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.inbuf.clear()
        self.outbuf.clear()

    def _connect(self) -> None:
        """Accept the peer (listening), or go on connecting (without blocking: a connect
        in progress is finished when its socket is writable)."""
        if self.listener is not None:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            self._connected(conn)
            return
        if self.pending is None:
            now = time.monotonic()
            if now < self.next_try:
                return
            self.next_try = now + RECONNECT_S
            self.pending = socket.socket(self.family, socket.SOCK_STREAM)
            self.pending.setblocking(False)
            self.pending.connect_ex(self.sockaddr)
        if not select.select([], [self.pending], [], 0)[1]:
            return                                  # still connecting
        if self.pending.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.pending.close()                    # refused: again later
        else:
            self._connected(self.pending)
        self.pending = None

    def _connected(self, conn) -> None:
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = conn
        self.counts["connections"] += 1

    def poll(self) -> None:
        if self.conn is None:
            self._connect()
            if self.conn is None:
                return
        self._flush()
        try:
            data = self.conn.recv(SOCKET_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop_connection()                 # the peer went away: wait for another
            return
        self.inbuf += data
        while len(self.inbuf) >= 4:
            n = struct.unpack_from("!I", self.inbuf)[0]
            if n > MAX_FRAME:
                self.counts["protocol_errors"] += 1
                self._drop_connection()             # not a popek or QEMU peer
                return
            if len(self.inbuf) < 4 + n:
                break
            frame = bytes(self.inbuf[4:4 + n])
            del self.inbuf[:4 + n]
            if n >= MIN_FRAME and self.deliver is not None:
                self.counts["delivered"] += 1
                self.deliver(frame)

    def close(self) -> None:
        self._drop_connection()
        if self.pending is not None:
            self.pending.close()
            self.pending = None
        if self.listener is not None:
            self.listener.close()
            self.listener = None
