"""virtio-net, virtio-rng and the network backends, driven by a driver written in
Python (tests/virtio_driver.py); the options that name them."""

from __future__ import annotations

import struct

import pytest

from popek.devices import net
from popek.devices.memory import GuestMemory
from popek.devices.options import Network, parse_device, parse_netdev, parse_nic
from popek.devices.virtio.mmio import VirtioMmio
from popek.devices.virtio.net import BACKLOG, HDR_LEN, VirtioNet
from popek.devices.virtio.rng import MAX_REQUEST, VirtioRng
from popek.errors import ConfigError
from tests.virtio_driver import MmioDriver

BASE = 0x8000_0000
RX, TX = 0, 1
MAC_A, MAC_B = bytes.fromhex("525400000001"), bytes.fromhex("525400000002")
BROADCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, payload: bytes = b"hello") -> bytes:
    return dst + src + b"\x88\xb5" + payload            # 0x88b5: local experimental


class Nic:
    def __init__(self, mac: bytes, backend, features: int = 1 << 32):
        self.mem = GuestMemory(BASE, 1 << 20)
        self.irqs = []
        self.model = VirtioNet(self.mem, mac, backend)
        self.mmio = VirtioMmio(self.model, self.mem, self.irqs.append)
        self.drv = MmioDriver(self.mmio, self.mem, 2, BASE + 0x10000, features=features)
        self.rx, self.tx = self.drv.queues

    def send(self, data: bytes, hdr_len: int = HDR_LEN) -> None:
        self.tx.offer([(bytes(hdr_len), False), (data, False)])

    def post_rx(self, n: int = 1, size: int = 2048) -> list[int]:
        return [self.rx.offer([(size, True)]) for _ in range(n)]

    def received(self) -> list[bytes]:
        """Frames in the buffers the device used, each after its 12-byte header."""
        self.mmio.service()
        out = []
        for head, length in self.rx.collect():
            data = self.mem.read(self.rx.buffer(head), length)
            if not length:
                out.append(b"")                          # given back empty: a drop
                continue
            assert data[:HDR_LEN] == bytes(10) + b"\x01\x00"     # num_buffers 1
            out.append(data[HDR_LEN:])
        return out


def test_config_space_has_the_mac_and_link_up():
    nic = Nic(MAC_A, net.Loopback("lo"))
    assert bytes(nic.mmio.read(0x100 + i, 1) for i in range(6)) == MAC_A
    assert nic.mmio.read(0x106, 2) == 1                              # VIRTIO_NET_S_LINK_UP
    assert nic.drv.offered & (1 << 5 | 1 << 16) == 1 << 5 | 1 << 16  # F_MAC, F_STATUS


def test_loopback_returns_what_was_sent_with_a_header():
    nic = Nic(MAC_A, net.Loopback("lo"))
    nic.post_rx(2)
    f = frame(MAC_A, MAC_A, b"ping" * 100)
    nic.send(f)
    assert nic.tx.collect() == [(0, 0)]                  # the transmit chain is used
    assert nic.received() == [f]
    assert nic.irqs[-1] is True
    assert nic.model.stats["tx_packets"] == nic.model.stats["rx_packets"] == 1


def test_a_switch_floods_unknown_destinations_and_learns_sources():
    sw = net.Switch()
    a, b, c = (Nic(m, sw.port(f"p{i}")) for i, m in
               enumerate((MAC_A, MAC_B, bytes.fromhex("525400000003"))))
    for n in (a, b, c):
        n.post_rx(4)
    hello = frame(BROADCAST, MAC_A)
    a.send(hello)
    assert b.received() == [hello] and c.received() == [hello] and a.received() == []
    reply = frame(MAC_A, MAC_B, b"reply")
    b.send(reply)                                        # A is known: to A only
    assert a.received() == [reply] and c.received() == []
    again = frame(MAC_B, MAC_A, b"again")
    a.send(again)                                        # B was learnt from its reply
    assert b.received() == [again] and c.received() == []
    assert sw.counts == {"frames": 3, "flooded": 1, "evicted": 0}


def test_the_switch_mac_table_is_bounded_least_recently_used_out():
    sw = net.Switch()
    p, q = sw.port("p"), sw.port("q")
    got = []
    q.connect(got.append)
    p.connect(lambda f: None)
    for i in range(net.MAC_TABLE + 10):
        p.send(frame(BROADCAST, (0x0200_0000_0000 + i).to_bytes(6, "big")))
    assert len(sw.table) == net.MAC_TABLE and sw.counts["evicted"] == 10
    assert (0x0200_0000_0000).to_bytes(6, "big") not in sw.table


def test_frames_without_buffers_wait_in_a_bounded_backlog():
    nic = Nic(MAC_A, net.Loopback("lo"))
    for i in range(BACKLOG + 20):
        nic.model.receive(frame(MAC_A, MAC_B, i.to_bytes(2, "big")))
    assert len(nic.model.backlog) == BACKLOG and nic.model.stats["rx_dropped"] == 20
    nic.post_rx(3)
    got = nic.received()
    assert [g[-2:] for g in got] == [b"\0\0", b"\0\1", b"\0\2"]


def test_a_buffer_too_small_drops_the_frame_not_the_device():
    nic = Nic(MAC_A, net.Loopback("lo"))
    nic.post_rx(1, size=20)
    nic.model.receive(frame(MAC_A, MAC_B, bytes(100)))
    assert nic.received() == [b""]                       # the buffer back, nothing in it
    assert nic.model.stats["rx_dropped"] == 1
    nic.post_rx(1)
    small = frame(MAC_A, MAC_B)
    nic.model.receive(small)
    assert nic.received() == [small]


@pytest.mark.parametrize("pieces", [
    [(bytes(12), False), (b"short", False)],             # no Ethernet header
    [(bytes(12), False), (bytes(20), False), (64, True)],  # a writable buffer in a send
    [(bytes(12), False)] + [(bytes(4096), False)] * 7,   # (fits) ...
])
def test_malformed_transmits_are_dropped_and_counted(pieces):
    nic = Nic(MAC_A, net.Loopback("lo"))
    nic.post_rx(2)
    nic.tx.offer(pieces)
    ok = len(pieces) == 8
    assert nic.model.stats["tx_dropped"] == (0 if ok else 1)
    assert len(nic.received()) == (1 if ok else 0)


def test_a_legacy_driver_gets_the_ten_byte_header():
    nic = Nic(MAC_A, net.Loopback("lo"), features=1 << 5)     # no VERSION_1
    assert nic.model.hdr_len == 10
    nic.rx.offer([(2048, True)])
    f = frame(MAC_A, MAC_A)
    nic.send(f, hdr_len=10)
    nic.mmio.service()
    [(head, length)] = nic.rx.collect()
    assert length == 10 + len(f) and nic.mem.read(nic.rx.buffer(head) + 10, len(f)) == f


def test_rng_fills_buffers_and_caps_a_request():
    mem = GuestMemory(BASE, 1 << 20)
    rng = VirtioRng(mem)
    mmio = VirtioMmio(rng, mem, lambda level: None)
    drv = MmioDriver(mmio, mem, 1, BASE + 0x10000, size=4)
    q = drv.queues[0]
    q.offer([(64, True)])
    [(head, n)] = q.collect()
    assert n == 64 and mem.read(q.buffer(head), 64) != bytes(64)
    big = 0x1000 * 4                    # four pages of buffers: one request of 16 KiB ...
    q.offer([(0x1000, True)] * 4)
    assert q.collect()[0][1] == big
    assert MAX_REQUEST < 0x100000       # ... and a driver asking for more gets MAX_REQUEST


def test_options_parse_as_qemu_spells_them():
    d = parse_device("virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:cc,addr=1a")
    assert d.driver == "virtio-net-pci" and d.options["addr"] == 0x1A and d.transport == "pci"
    assert parse_device("e1000,netdev=n0,addr=10.0").options["addr"] == 0x10   # hex, as QEMU
    assert d.options["mac"] == bytes.fromhex("525400aabbcc")
    assert parse_device("virtio-rng-device").transport == "mmio"
    n = parse_netdev("switch,id=n0,switch=lab")
    assert (n.kind, n.id, n.options) == ("switch", "n0", {"switch": "lab"})
    netdev, dev = parse_nic("switch,model=e1000", 3)
    assert netdev.id == dev.options["netdev"] == "nic3" and dev.driver == "e1000"


@pytest.mark.parametrize("text, message", [
    ("virtio-net-pci", "needs netdev=ID"),
    ("virtio-net-pci,netdev=n0,mac=01:00:00:00:00:01", "multicast"),
    ("virtio-net-pci,netdev=n0,mac=52:54:00", "six hex bytes"),
    ("virtio-net-pci,netdev=n0,addr=0", "1 to 1f in hex"),
    ("virtio-net-pci,netdev=n0,addr=3.5", "function 0 only"),
    ("virtio-net-pci,netdev=n0,addr=1_0", "1 to 1f in hex"),
    ("virtio-rng-device,addr=3", "unknown option"),
    ("virtio-gpu-pci", "popek has"),
    ("virtio-net-pci,netdev", "expected key=value"),
])
def test_bad_device_options_are_one_clear_error(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_device(text)


@pytest.mark.parametrize("text, message", [
    ("user,id=n0", "popek has"),
    ("switch", "needs id="),
    ("tap,id=t0", "needs ifname"),
    ("tap,id=t0,ifname=tap0,script=/etc/qemu-ifup", "runs nothing"),
    ("loopback,id=a b", "an id is"),
])
def test_bad_netdev_options_are_one_clear_error(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_netdev(text)


def test_a_netdev_serves_one_nic_and_must_exist():
    network = Network([parse_netdev("loopback,id=n0")])
    with pytest.raises(ConfigError, match="no --netdev has that id"):
        network.check([parse_device("virtio-net-pci,netdev=n1")])
    with pytest.raises(ConfigError, match="used by two NICs"):
        network.check([parse_device("virtio-net-pci,netdev=n0"),
                       parse_device("e1000,netdev=n0")])
    with pytest.raises(ConfigError, match="given twice"):
        Network([parse_netdev("loopback,id=n0"), parse_netdev("switch,id=n0")])


def test_default_macs_skip_the_ones_given():
    network = Network([parse_netdev("switch,id=a"), parse_netdev("switch,id=b")])
    network.check([parse_device("e1000,netdev=a,mac=52:54:00:12:34:56"),
                   parse_device("e1000,netdev=b")])
    assert net.format_mac(network.mac_for("b")) == "52:54:00:12:34:57"


def test_default_macs_count_up_from_qemus_and_survive_a_reset():
    network = Network([parse_netdev("switch,id=a"), parse_netdev("switch,id=b")])
    assert net.format_mac(network.mac_for("a")) == "52:54:00:12:34:56"
    assert net.format_mac(network.mac_for("b")) == "52:54:00:12:34:57"
    assert net.format_mac(network.mac_for("a")) == "52:54:00:12:34:56"


def test_two_socket_netdevs_carry_frames_both_ways_with_qemus_framing():
    import socket as so
    with so.socket() as s:                               # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    a = net.SocketNet("a", listen=f"127.0.0.1:{port}")
    b = net.SocketNet("b", connect=f"127.0.0.1:{port}")
    got_a, got_b = [], []
    a.connect(got_a.append)
    b.connect(got_b.append)
    try:
        for _ in range(50):                              # both sides connect, polled
            b.poll()
            a.poll()
            if a.conn and b.conn:
                break
        f1, f2 = frame(MAC_B, MAC_A, b"to b"), frame(MAC_A, MAC_B, b"to a" * 300)
        a.send(f1)
        b.send(f2)
        for _ in range(50):
            a.poll()
            b.poll()
            if got_a and got_b:
                break
        assert got_b == [f1] and got_a == [f2]
        b.conn.sendall(struct.pack("!I", 1 << 20))      # not a frame length: hung up on
        for _ in range(50):
            a.poll()
        assert a.conn is None and a.counts["protocol_errors"] == 1
    finally:
        a.close()
        b.close()
