"""virtio-net (virtio v1.2, section 5.1): one receive and one transmit queue.

Config space (5.1.4):

    0x00 mac[6]      0x06 status u16 (VIRTIO_NET_S_LINK_UP = 1)

Features offered: VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS (and VIRTIO_F_VERSION_1, from
the transport).  No checksum or segmentation offload, no mergeable receive
buffers, no control queue: every frame is one whole Ethernet frame behind a
``virtio_net_hdr`` of 12 bytes (10 for a driver that did not accept VERSION_1 and so
speaks the legacy layout; 5.1.6.1), whose offload fields are all zero.

Transmit (queue 1): the chain's readable buffers are the header and the frame; the
frame goes to the NIC's network backend (:mod:`popek.devices.net`).  Receive
(queue 0): frames from the backend wait in a bounded backlog (``BACKLOG`` frames;
beyond that the newest is dropped, as a full NIC ring drops) and each fills one chain
of the driver's writable buffers; a frame larger than the chain is dropped and
the buffer given back empty (Linux counts it as a length error and posts another).
Sizes are checked before a byte is copied, as hostile input.
"""

from __future__ import annotations

import logging
import struct
from collections import deque

from popek.devices.net import MAX_FRAME, MIN_FRAME, format_mac
from popek.devices.virtio.transport import VIRTIO_F_VERSION_1
from popek.errors import GuestMemoryError
from popek.guestlog import GuestWarnings

log = logging.getLogger(__name__)

F_MAC, F_STATUS = 1 << 5, 1 << 16
S_LINK_UP = 1
RX, TX = 0, 1
HDR_LEN, LEGACY_HDR_LEN = 12, 10
BACKLOG = 256                    # received frames waiting for the driver's buffers


class VirtioNet:
    device_id = 1
    name = "net"
    num_queues = 2
    queue_max = 256
    features = F_MAC | F_STATUS

    def __init__(self, mem, mac: bytes, backend):
        self.mem = mem
        self.mac = mac
        self.backend = backend
        self.hdr_len = HDR_LEN
        self.up = False                          # the driver has set DRIVER_OK
        self.backlog: deque[bytes] = deque()
        self.kick = lambda queue: None           # the transport's: a queue has work
        self.stats = {"rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0,
                      "rx_dropped": 0, "tx_dropped": 0}
        self.warnings = GuestWarnings(log)
        backend.connect(self.receive)

    def describe(self) -> str:
        return f"virtio-net {format_mac(self.mac)} on {self.backend.describe()}"

    # -- the transport's interface ---------------------------------------------------
    def reset(self) -> None:
        self.backlog.clear()
        self.hdr_len = HDR_LEN
        self.up = False

    def started(self, driver_ok: bool) -> None:
        """Frames are taken only while the driver is up (DRIVER_OK), as a NIC whose
        receiver is off drops them."""
        self.up = driver_ok

    def negotiated(self, features: int) -> None:
        self.hdr_len = HDR_LEN if features & VIRTIO_F_VERSION_1 else LEGACY_HDR_LEN

    def read_config(self, off: int, size: int) -> int:
        config = self.mac + struct.pack("<H", S_LINK_UP)
        return int.from_bytes(config[off:off + size], "little") if off + size <= len(config) else 0

    def write_config(self, off: int, size: int, value: int) -> None:
        pass                                    # the MAC is read-only without F_CTRL_MAC_ADDR

    def ready(self, queue: int) -> bool:
        """Whether serving ``queue`` has a use: the receive queue only with a frame waiting."""
        return queue != RX or bool(self.backlog)

    def process(self, queue: int, chain) -> int:
        try:
            return self._receive_into(chain) if queue == RX else self._transmit(chain)
        except GuestMemoryError as e:            # (the queue checked the buffers: defensive)
            self.warnings.warn("memory", "virtio-net: %s", e)
            return 0

    # -- transmit ----------------------------------------------------------------------
    def _transmit(self, chain) -> int:
        total = chain.readable_len()
        if chain.writable or not MIN_FRAME <= total - self.hdr_len <= MAX_FRAME:
            self.warnings.warn("tx size", "virtio-net: a transmit chain of %d bytes (%d "
                               "writable buffers) is no frame; dropped", total,
                               len(chain.writable))
            self.stats["tx_dropped"] += 1
            return 0
        data = b"".join(self.mem.read(a, n) for a, n in chain.readable)
        frame = data[self.hdr_len:]
        self.stats["tx_packets"] += 1
        self.stats["tx_bytes"] += len(frame)
        self.backend.send(frame)
        return 0

    # -- receive -----------------------------------------------------------------------
    def receive(self, frame: bytes) -> None:
        """A frame from the network (the backend calls this)."""
        if not self.up or len(self.backlog) >= BACKLOG:
            self.stats["rx_dropped"] += 1
            return
        self.backlog.append(frame)
        self.kick(RX)

    def _receive_into(self, chain) -> int:
        frame = self.backlog[0]
        room = chain.writable_len()
        if chain.readable or room < self.hdr_len + len(frame):
            self.backlog.popleft()
            self.stats["rx_dropped"] += 1
            self.warnings.warn("rx size", "virtio-net: a receive buffer of %d bytes is too "
                               "small for a %d-byte frame; frame dropped", room, len(frame))
            return 0
        self.backlog.popleft()
        header = bytes(self.hdr_len - 2) + (b"\x01\x00" if self.hdr_len == HDR_LEN else b"\0\0")
        data = memoryview(header + frame)
        at = 0
        for addr, length in chain.writable:
            if at >= len(data):
                break
            piece = data[at:at + length]
            self.mem.write(addr, bytes(piece))
            at += len(piece)
        self.stats["rx_packets"] += 1
        self.stats["rx_bytes"] += len(frame)
        return len(data)
