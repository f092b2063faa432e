"""The vhost-user wire format: a 12-byte header (request, flags, payload size), a
payload, and file descriptors in SCM_RIGHTS ancillary data.  Only what a virtio-blk
frontend and backend use is named here; every message is checked for its size
before a field is read."""

from __future__ import annotations

import array
import socket
import struct

GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_LOG_BASE, SET_LOG_FD, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE = 6, 7, 8, 9, 10
GET_VRING_BASE, SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 11, 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE = 15, 16, 17, 18
GET_CONFIG, SET_CONFIG = 24, 25
NAMES = {v: k for k, v in list(globals().items()) if k.isupper() and isinstance(v, int)}

VERSION = 1
FLAG_REPLY, FLAG_NEED_REPLY = 1 << 2, 1 << 3
F_PROTOCOL_FEATURES = 1 << 30            # a virtio feature bit the backend offers
PROTOCOL_F_MQ, PROTOCOL_F_REPLY_ACK, PROTOCOL_F_CONFIG = 1 << 0, 1 << 3, 1 << 9
VRING_NOFD = 1 << 8                      # SET_VRING_KICK/CALL: no descriptor comes
MAX_REGIONS = 8
MAX_PAYLOAD = 4096 + 12                  # (GET_CONFIG's is the largest we take)

HEADER = struct.Struct("<III")
U64 = struct.Struct("<Q")
VRING_STATE = struct.Struct("<II")                 # index, num
VRING_ADDR = struct.Struct("<IIQQQQ")              # index, flags, desc, used, avail, log
MEM_HEADER = struct.Struct("<II")                  # nregions, padding
MEM_REGION = struct.Struct("<QQQQ")                # guest phys, size, user addr, mmap offset
CONFIG_HEADER = struct.Struct("<III")              # offset, size, flags


class ProtocolError(Exception):
    """The other side broke the protocol (or went away): the connection is over."""


def send(sock: socket.socket, request: int, payload: bytes = b"", fds=(),
         reply: bool = False, need_reply: bool = False) -> None:
    flags = VERSION | (FLAG_REPLY if reply else 0) | (FLAG_NEED_REPLY if need_reply else 0)
    data = HEADER.pack(request, flags, len(payload)) + payload
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    try:
        sock.sendmsg([data], anc)
    except OSError as e:
        raise ProtocolError(f"send {NAMES.get(request, request)}: {e.strerror}") from None


def receive(sock: socket.socket) -> tuple[int, int, bytes, list[int]]:
    """One message: (request, flags, payload, fds).  The fds are the caller's to close."""
    try:
        data, anc, _, _ = sock.recvmsg(HEADER.size, socket.CMSG_SPACE(4 * MAX_REGIONS))
    except OSError as e:
        raise ProtocolError(f"receive: {e.strerror}") from None
    fds = []
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(raw[:len(raw) - len(raw) % a.itemsize])
            fds += list(a)
    if len(data) < HEADER.size:
        _close(fds)
        raise ProtocolError("the other side closed the connection" if not data
                            else "a truncated header")
    request, flags, size = HEADER.unpack(data)
    if flags & 3 != VERSION or size > MAX_PAYLOAD:
        _close(fds)
        raise ProtocolError(f"a bad header (flags {flags:#x}, size {size})")
    payload = b""
    while len(payload) < size:
        try:
            chunk = sock.recv(size - len(payload))
        except OSError as e:
            _close(fds)
            raise ProtocolError(f"receive: {e.strerror}") from None
        if not chunk:
            _close(fds)
            raise ProtocolError("the other side closed the connection mid-message")
        payload += chunk
    return request, flags, payload, fds


def _close(fds) -> None:
    import os
    for fd in fds:
        os.close(fd)


def call(sock: socket.socket, request: int, payload: bytes = b"") -> bytes:
    """A request that has a reply (GET_*): the reply's payload."""
    send(sock, request, payload)
    got, flags, reply, fds = receive(sock)
    _close(fds)
    if got != request or not flags & FLAG_REPLY:
        raise ProtocolError(f"expected the reply to {NAMES.get(request, request)}, got "
                            f"{NAMES.get(got, got)}")
    return reply
