"""The emulated e1000 (82540EM), driven register by register as Linux's e1000 driver
drives it: the EEPROM bit-banged through EECD, the PHY through MDIC, legacy and
offload transmit descriptors, the receive ring, ICR/IMS interrupts; and as a
hostile driver would."""

from __future__ import annotations

import struct

import pytest

from popek.devices import e1000 as E
from popek.devices import net, offload
from popek.devices.memory import GuestMemory

BASE = 0x8000_0000
MAC = bytes.fromhex("525400123456")
PEER = bytes.fromhex("525400abcdef")
RX_RING, TX_RING, BUFS = BASE + 0x1000, BASE + 0x2000, BASE + 0x10000


class Driver:
    def __init__(self, backend=None, ring=8):
        self.mem = GuestMemory(BASE, 1 << 20)
        self.levels = []
        self.backend = backend or net.Loopback("lo")
        self.nic = E.E1000(self.mem, MAC, self.backend, self.levels.append)
        self.ring = ring

    def r(self, reg):
        return self.nic.read(reg, 4)

    def w(self, reg, value):
        self.nic.write(reg, 4, value)

    # The EEPROM, as e1000_read_eeprom does it for a Microwire part.
    def eeprom_word(self, addr):
        def out(bit):
            eecd = (self.r(E.EECD) & ~(E.EECD_DI | E.EECD_SK)) | (E.EECD_DI if bit else 0)
            self.w(E.EECD, eecd)
            self.w(E.EECD, eecd | E.EECD_SK)
            self.w(E.EECD, eecd)
        self.w(E.EECD, E.EECD_REQ)
        assert self.r(E.EECD) & E.EECD_GNT
        self.w(E.EECD, E.EECD_REQ | E.EECD_CS)
        for i in range(2, -1, -1):
            out(0b110 >> i & 1)
        for i in range(5, -1, -1):
            out(addr >> i & 1)
        word = 0
        for _ in range(16):
            eecd = self.r(E.EECD)
            self.w(E.EECD, eecd | E.EECD_SK)
            word = word << 1 | (1 if self.r(E.EECD) & E.EECD_DO else 0)
            self.w(E.EECD, self.r(E.EECD) & ~E.EECD_SK)
        self.w(E.EECD, E.EECD_REQ)                       # chip select off
        return word

    def phy_read(self, reg):
        self.w(E.MDIC, E.MDIC_OP_READ | E.PHY_ADDR << 21 | reg << 16)
        v = self.r(E.MDIC)
        assert v & E.MDIC_READY and not v & E.MDIC_ERROR
        return v & 0xFFFF

    def up(self):
        n = self.ring
        for i in range(n):
            self.mem.write(RX_RING + 16 * i, struct.pack("<Q", BUFS + 0x800 * i) + bytes(8))
        self.w(E.RDBAL, RX_RING & 0xFFFFFFFF)
        self.w(E.RDBAH, RX_RING >> 32)
        self.w(E.RDLEN, 16 * n)
        self.w(E.RDH, 0)
        self.w(E.RDT, n - 1)
        self.w(E.TDBAL, TX_RING & 0xFFFFFFFF)
        self.w(E.TDBAH, 0)
        self.w(E.TDLEN, 16 * n)
        self.w(E.TDH, 0)
        self.w(E.TDT, 0)
        self.w(E.RCTL, E.RCTL_EN | E.RCTL_BAM)
        self.w(E.TCTL, E.TCTL_EN)
        self.w(E.IMS, E.ICR_RXT0 | E.ICR_TXDW | E.ICR_LSC)
        self.tdt = 0

    def send(self, *descs):
        """Descriptors as raw 16-byte strings; buffers at BUFS + 0x40000 + ..."""
        for d in descs:
            self.mem.write(TX_RING + 16 * self.tdt, d)
            self.tdt = (self.tdt + 1) % self.ring
        self.w(E.TDT, self.tdt)

    def legacy(self, data: bytes, at: int, eop=True) -> bytes:
        addr = BUFS + 0x40000 + at
        self.mem.write(addr, data)
        cmd = E.TXD_RS | (E.TXD_EOP if eop else 0)
        return struct.pack("<QHBBBBH", addr, len(data), 0, cmd, 0, 0, 0)

    def received(self):
        out = []
        for i in range(self.ring):
            raw = self.mem.read(RX_RING + 16 * i, 16)
            length, _, status = struct.unpack_from("<HHB", raw, 8)
            if status & E.RXD_DD:
                out.append(self.mem.read(BUFS + 0x800 * i, length))
        return out


def test_eeprom_through_microwire_has_the_mac_and_a_valid_checksum():
    d = Driver()
    words = [d.eeprom_word(i) for i in range(64)]
    assert struct.pack("<3H", *words[:3]) == MAC
    assert sum(words) & 0xFFFF == 0xBABA
    assert words[0x0D] == 0x100E


def test_eerd_reads_the_same_words():
    d = Driver()
    d.w(E.EERD, 1 << 8 | E.EERD_START)
    v = d.r(E.EERD)
    assert v & E.EERD_DONE and v >> 16 == struct.unpack("<3H", MAC)[1]


def test_the_phy_is_the_m88_linux_expects_with_link_up():
    d = Driver()
    assert d.phy_read(2) << 16 | d.phy_read(3) == 0x01410C20
    assert d.phy_read(1) & 0x24 == 0x24                  # link up, autonegotiation complete
    d.w(E.MDIC, E.MDIC_OP_READ | 3 << 21)                # PHY 3: nobody there
    assert d.r(E.MDIC) & E.MDIC_ERROR
    assert d.r(E.STATUS) & 0x83 == 0x83                  # full duplex, link up, 1000 Mb/s


def test_interrupts_follow_icr_and_ims_and_reading_icr_clears():
    d = Driver()
    d.w(E.ICS, E.ICR_LSC)
    assert d.levels[-1] is False                         # masked
    d.w(E.IMS, E.ICR_LSC)
    assert d.levels[-1] is True
    assert d.r(E.ICR) == E.ICR_LSC | E.ICR_ASSERTED
    assert d.levels[-1] is False and d.r(E.ICR) == 0


def test_a_frame_goes_out_and_comes_back_through_the_rings():
    d = Driver()
    d.up()
    frame = MAC + PEER + b"\x08\x00" + bytes(range(100))
    d.send(d.legacy(frame, 0))
    assert d.r(E.TDH) == 1
    assert d.mem.read(TX_RING + 12, 1)[0] & 1            # DD written back
    [got] = d.received()
    assert got[:-4] == frame and len(got) == len(frame) + 4      # with its FCS
    assert d.r(E.RDH) == 1
    assert d.r(E.ICR) & (E.ICR_RXT0 | E.ICR_TXDW) == E.ICR_RXT0 | E.ICR_TXDW
    assert d.r(E.GPTC) == 1 and d.r(E.GPRC) == 1 and d.r(E.GPTC) == 0   # read clears


def test_a_packet_in_several_descriptors_is_one_frame():
    d = Driver()
    d.up()
    frame = MAC + PEER + b"\x08\x00" + bytes(200)
    d.send(d.legacy(frame[:50], 0, eop=False), d.legacy(frame[50:], 0x100))
    assert d.nic.stats["tx_packets"] == 1 and d.received()[0][:-4] == frame


def test_receive_filters_by_address_broadcast_and_promiscuous():
    sw = net.Switch()
    d = Driver(sw.port("a"))
    d.up()
    other = sw.port("b")
    other.connect(lambda f: None)
    other.send(bytes.fromhex("525400999999") + PEER + b"\x08\x00" + bytes(50))
    assert d.received() == []                            # not ours
    other.send(b"\xff" * 6 + PEER + b"\x08\x06" + bytes(50))
    assert len(d.received()) == 1                        # broadcast (BAM)
    d.w(E.RCTL, E.RCTL_EN | E.RCTL_UPE)
    other.send(bytes.fromhex("525400999999") + PEER + b"\x08\x00" + bytes(50))
    assert len(d.received()) == 2


def test_frames_wait_for_descriptors_and_the_ring_never_overruns():
    d = Driver()
    d.up()                                               # 7 free descriptors
    for i in range(10):
        d.nic.receive(MAC + PEER + b"\x08\x00" + bytes([i]) * 50)
    assert d.r(E.RDH) == 7 and len(d.nic.backlog) == 3
    d.w(E.RDT, 6)                                        # the driver gives 7 more back
    assert len(d.nic.backlog) == 0


def _tcp_packet(payload: bytes) -> tuple[bytes, offload.Context]:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 7, 0, 64, 6, 0, bytes([10, 0, 0, 1]),
                     bytes([10, 0, 0, 2]))
    seed = offload.ones_sum(ip[12:20] + struct.pack("!BB", 0, 6))    # pseudo-header, no length
    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1000, 0, 5 << 4, 0x18 | 0x01, 65535, seed, 0)
    hdr = PEER + MAC + b"\x08\x00" + ip + tcp
    ctx = offload.Context(14, 24, 33, 34, 50, 0, offload.TUCMD_TCP | offload.TUCMD_IP,
                          len(hdr), 100)
    return hdr + payload, ctx


def _valid(frame: bytes) -> bool:
    ip = frame[14:34]
    tcp_len = len(frame) - 34
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, tcp_len)
    return offload.ones_sum(ip) == 0xFFFF and offload.ones_sum(pseudo + frame[34:]) == 0xFFFF


def test_tso_cuts_a_tcp_packet_into_mss_frames_with_right_checksums():
    payload = bytes(range(256)) * 1 + b"tail"
    packet, ctx = _tcp_packet(payload)
    frames = offload.segment(packet, ctx, offload.POPTS_IXSM | offload.POPTS_TXSM)
    assert [len(f) - 54 for f in frames] == [100, 100, 60]
    assert b"".join(f[54:] for f in frames) == payload
    assert all(_valid(f) for f in frames)
    seqs = [struct.unpack_from("!I", f, 38)[0] for f in frames]
    assert seqs == [1000, 1100, 1200]
    assert [f[47] & 0x09 for f in frames] == [0, 0, 0x09]     # FIN and PSH on the last only
    assert [struct.unpack_from("!H", f, 18)[0] for f in frames] == [7, 8, 9]   # IP IDs


def test_a_tso_send_through_the_ring():
    d = Driver()
    d.up()
    packet, ctx = _tcp_packet(bytes(250))
    context = struct.pack("<BBHBBHIBBH", ctx.ipcss, ctx.ipcso, ctx.ipcse, ctx.tucss,
                          ctx.tucso, ctx.tucse,
                          len(packet) - ctx.hdrlen | (ctx.tucmd | offload.TUCMD_IP) << 24
                          | E.TXD_DEXT << 24 | 1 << 26, 0, ctx.hdrlen, ctx.mss)
    addr = BUFS + 0x40000
    d.mem.write(addr, packet)
    data = struct.pack("<QIBBH", addr, len(packet) | 1 << 20 | (E.TXD_DEXT | E.TXD_TSE
                       | E.TXD_EOP | E.TXD_RS) << 24, 0, 3, 0)
    d.w(E.RCTL, E.RCTL_EN | E.RCTL_UPE)                 # (the frames are to PEER)
    d.send(context, data)
    assert d.nic.stats["tso_segments"] == 3
    got = d.received()
    assert len(got) == 3 and all(_valid(f[:-4]) for f in got)


@pytest.mark.parametrize("regs", [
    {E.TDBAL: 0x1000, E.TDLEN: 0x1000},                  # a ring outside RAM
    {E.TDH: 500},                                        # a head beyond the ring
    {E.TDLEN: 0x7FFFFF80},                               # a ring longer than any
])
def test_hostile_transmit_rings_stop_the_ring_not_popek(regs):
    d = Driver()
    d.up()
    for reg, value in regs.items():
        d.w(reg, value)
    d.w(E.TDT, 3)
    assert d.nic.stats["tx_packets"] == 0 and d.nic.warnings.total() >= 1


def test_one_tail_write_moves_a_bounded_number_of_descriptors():
    d = Driver(ring=1024)
    d.up()
    frame = MAC + PEER + b"\x08\x00" + bytes(50)
    addr = BUFS + 0x40000
    d.mem.write(addr, frame)
    for i in range(1000):
        d.mem.write(TX_RING + 16 * i, struct.pack("<QHBBBBH", addr, len(frame), 0,
                                                  E.TXD_EOP, 0, 0, 0))
    d.w(E.TDLEN, 16 * 1024)
    d.w(E.TDT, 1000)
    assert d.r(E.TDH) == E.TX_BURST
    while d.nic.tx_pending:
        d.nic.service()
    assert d.r(E.TDH) == 1000 and d.nic.stats["tx_packets"] == 1000


def test_a_descriptor_pointing_outside_ram_drops_the_packet():
    d = Driver()
    d.up()
    d.send(struct.pack("<QHBBBBH", 0x1000, 64, 0, E.TXD_EOP | E.TXD_RS, 0, 0, 0))
    assert d.nic.stats["tx_packets"] == 0 and d.r(E.TDH) == 1


def test_registers_have_the_manuals_names():
    assert E.E1000.register_name(E.TDT) == "e1000 TDT"
    assert E.E1000.register_name(E.ICR + 2) == "e1000 ICR"
    assert E.E1000.register_name(0x4074) == "e1000 STATS"


# -- what a review found (each crashed popek or misbehaved before) -----------------------

def test_a_receive_buffer_outside_ram_drops_that_frame_only():
    d = Driver()
    d.up()
    d.mem.write(RX_RING, struct.pack("<Q", 0x10))         # descriptor 0: no RAM there
    d.nic.receive(MAC + PEER + b"\x08\x00" + bytes(50))   # (one frame: popek used to crash)
    assert d.nic.stats["rx_dropped"] == 1 and d.nic.warnings.total() == 1


def test_a_tso_context_making_impossible_lengths_is_a_dropped_packet():
    d = Driver()
    d.up()
    packet, ctx = _tcp_packet(bytes(3000))
    for ipcss, tucss, hdrlen, tucmd, mss in ((14, 34, 54, 3, 65535),     # IPv4 length > 64K
                                             (0, 1, 21, 1, 64)):         # IPv6 without 40 bytes
        context = struct.pack("<BBHBBHIBBH", ipcss, 24, 33, tucss, 50, 0,
                              (len(packet) - hdrlen) | (tucmd | E.TXD_DEXT) << 24, 0, hdrlen, mss)
        addr = BUFS + 0x40000
        d.mem.write(addr, packet)
        data = struct.pack("<QIBBH", addr, len(packet) | 1 << 20 | (E.TXD_DEXT | E.TXD_TSE
                           | E.TXD_EOP | E.TXD_RS) << 24, 0, 3, 0)
        d.send(context, data)
    assert d.nic.stats["tx_dropped"] >= 1 and d.nic.stats["tso_segments"] == 0


def test_frames_longer_than_the_receiver_takes_are_dropped():
    d = Driver()
    d.up()
    d.nic.receive(MAC + PEER + b"\x08\x00" + bytes(2000))  # more than 1522 with its FCS
    assert d.received() == [] and d.nic.stats["rx_dropped"] == 1
    d.w(E.RCTL, E.RCTL_EN | E.RCTL_LPE)                    # long packets on: 16 KiB
    d.nic.receive(MAC + PEER + b"\x08\x00" + bytes(2000))
    assert len(d.nic.backlog) == 0 and d.nic.stats["rx_packets"] == 1


def test_eeprom_garbage_stays_bounded_and_a_later_read_still_works():
    d = Driver()
    d.w(E.EECD, E.EECD_CS)
    for i in range(5000):                                  # clocking bits in, not a read
        d.w(E.EECD, E.EECD_CS | E.EECD_SK | E.EECD_DI * (i & 1))
        d.w(E.EECD, E.EECD_CS | E.EECD_DI * (i & 1))
    assert d.nic.ee["value"] < 1 << 9
    d.w(E.EECD, 0)
    assert struct.pack("<H", d.eeprom_word(0)) == MAC[:2]


def test_one_tail_write_sends_a_bounded_number_of_tso_frames():
    d = Driver(ring=256)
    d.up()
    packet, _ = _tcp_packet(bytes(64 * 1000))
    context = struct.pack("<BBHBBHIBBH", 14, 24, 33, 34, 50, 0,
                          (len(packet) - 54) | (3 | E.TXD_DEXT) << 24, 0, 54, 64)
    addr = BUFS + 0x40000
    d.mem.write(addr, packet)
    data = struct.pack("<QIBBH", addr, len(packet) | 1 << 20 | (E.TXD_DEXT | E.TXD_TSE
                       | E.TXD_EOP) << 24, 0, 3, 0)
    d.w(E.TDLEN, 16 * 256)
    for i in range(0, 200, 2):
        d.mem.write(TX_RING + 16 * i, context)
        d.mem.write(TX_RING + 16 * (i + 1), data)
    d.w(E.TDT, 200)
    assert d.nic.tx_pending and d.nic.stats["tx_packets"] <= E.TX_FRAMES + 1000


def test_the_rest_of_a_dropped_packet_is_not_sent_as_a_packet():
    d = Driver()
    d.up()
    big = d.legacy(bytes(60), 0, eop=False)[:8] + struct.pack("<HBBBBH", 0xFFFF, 0, E.TXD_RS,
                                                             0, 0, 0)
    tail = d.legacy(MAC + PEER + b"\x08\x00" + bytes(46), 0x1000, eop=True)
    d.send(big, big, tail)                                 # (the packet would pass 64 KiB)
    d.send(d.legacy(MAC + PEER + b"\x08\x00" + bytes(46), 0x2000))
    assert d.nic.stats["tx_packets"] == 1                  # only the good one after it


def test_vlan_tags_are_inserted_when_the_driver_asks():
    d = Driver()
    d.up()
    d.w(E.CTRL, d.r(E.CTRL) | E.CTRL_VME)
    d.w(E.RCTL, E.RCTL_EN | E.RCTL_UPE)
    frame = MAC + PEER + b"\x08\x00" + bytes(50)
    addr = BUFS + 0x40000
    d.mem.write(addr, frame)
    d.send(struct.pack("<QHBBBBH", addr, len(frame), 0, E.TXD_EOP | E.TXD_RS | E.TXD_VLE, 0, 0,
                       42))
    [got] = d.received()
    assert got[12:16] == b"\x81\x00\x00\x2a" and got[16:18] == b"\x08\x00"


def test_a_narrow_write_to_icr_clears_only_its_bytes():
    d = Driver()
    d.w(E.ICS, E.ICR_LSC | E.ICR_RXT0 | 1 << 9)
    d.nic.write(E.ICR + 1, 1, 0x02)                        # clears bit 9 only
    assert d.nic._get(E.ICR) & (E.ICR_LSC | E.ICR_RXT0 | 1 << 9) == E.ICR_LSC | E.ICR_RXT0
