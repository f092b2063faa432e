"""An emulated Intel 82540EM Gigabit Ethernet controller (the "e1000" QEMU, VirtualBox
and VMware emulate), driven by Linux's own ``e1000`` module register by register:
every access below is an exit when a VMM emulates it, which is the point.

PCI: 8086:100e, class 0x020000, BAR 0 128 KiB of memory, BAR 1 64 bytes of I/O
(IOADDR at 0, IODATA at 4: indirect access to the same registers), INTA#.

Register map (BAR 0; 32-bit registers; "stored" means read back as written):

    0x0000 CTRL     device control (RST resets the device, PHY_RST resets the PHY)
    0x0008 STATUS   full duplex, link up, 1000 Mb/s             (read only)
    0x0010 EECD     the EEPROM's Microwire pins (SK, CS, DI in; DO out), REQ/GNT
    0x0014 EERD     EEPROM read: START, ADDR 15:8 -> DONE, DATA 31:16
    0x0020 MDIC     PHY access: DATA 15:0, REG 20:16, PHY 25:21, OP 27:26 -> READY
    0x00c0 ICR      interrupt causes (read clears; write 1 clears)
    0x00c8 ICS      set causes      0x00d0 IMS  enable causes   0x00d8 IMC  disable
    0x0100 RCTL     EN, UPE, MPE, BAM, BSIZE/BSEX, SECRC, MO
    0x0400 TCTL     EN
    0x2800 RDBAL  0x2804 RDBAH  0x2808 RDLEN  0x2810 RDH  0x2818 RDT   (receive ring)
    0x3800 TDBAL  0x3804 TDBAH  0x3808 TDLEN  0x3810 TDH  0x3818 TDT   (transmit ring)
    0x4000-0x40ff   statistics (read clears): GPRC, GPTC, GORC, GOTC, TPR, TPT, MPC
    0x5200-0x53fc   MTA, the multicast hash table (4096 bits)
    0x5400-0x547c   RAL/RAH: 16 receive addresses (RAH bit 31: valid)
    else            stored (flow control, timers, LEDCTL, PBA, VFTA, MANC ...)

Interrupt causes: TXDW 0 (descriptors written back), TXQE 1 (ring empty), LSC 2 (link
status change), RXDMT0 4 (free receive descriptors below the threshold), RXO 6
(overrun), RXT0 7 (frame received).  The line is ``ICR & IMS != 0``; the delay timers
(RDTR, RADV, TIDV, ITR) are stored and not modelled: interrupts are immediate.

Descriptors (16 bytes): legacy receive {addr u64, length u16, csum u16, status u8
(DD 0, EOP 1), errors u8, special u16}; legacy transmit {addr u64, length u16, cso u8,
cmd u8 (EOP 0, IFCS 1, RS 3, DEXT 5), status u8 (DD 0), css u8, special u16}; and the
extended pair Linux uses for offloads: a context descriptor {IPCSS, IPCSO, IPCSE,
TUCSS, TUCSO, TUCSE, PAYLEN|DTYP 0|TUCMD (TCP, IP, TSE), status, HDRLEN, MSS} and
data descriptors {addr, DTALEN|DTYP 1|DCMD, status, POPTS (IXSM 0, TXSM 1), special}:
checksum insertion and TCP segmentation are done here (:mod:`popek.devices.offload`).

Every ring index, length and address is the guest's: the rings must lie in RAM,
indexes beyond a ring stop it (logged once), and one register write moves at most
``TX_BURST`` descriptors (the rest between run slices), as the virtio transport does.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections import deque

from popek.devices import offload
from popek.devices.net import MAX_FRAME, MIN_FRAME, format_mac
from popek.devices.pci import Bar, PciFunction
from popek.errors import GuestMemoryError
from popek.guestlog import GuestWarnings

log = logging.getLogger(__name__)

INTEL, E1000_82540EM = 0x8086, 0x100E
BAR0_SIZE, BAR1_SIZE = 0x20000, 0x40

CTRL, STATUS, EECD, EERD, MDIC = 0x0000, 0x0008, 0x0010, 0x0014, 0x0020
ICR, ICS, IMS, IMC = 0x00C0, 0x00C8, 0x00D0, 0x00D8
RCTL, TCTL = 0x0100, 0x0400
RDBAL, RDBAH, RDLEN, RDH, RDT = 0x2800, 0x2804, 0x2808, 0x2810, 0x2818
TDBAL, TDBAH, TDLEN, TDH, TDT = 0x3800, 0x3804, 0x3808, 0x3810, 0x3818
STATS_BASE, STATS_END = 0x4000, 0x4100
MTA, RA = 0x5200, 0x5400
MPC, GPRC, GPTC, GORCL, GORCH, GOTCL, GOTCH, TPR, TPT = (
    0x4010, 0x4074, 0x4080, 0x4088, 0x408C, 0x4090, 0x4094, 0x40D0, 0x40D4)

CTRL_SLU, CTRL_RST, CTRL_PHY_RST = 1 << 6, 1 << 26, 1 << 31
STATUS_UP = 1 << 0 | 1 << 1 | 1 << 7 | 1 << 19   # full duplex, link up, 1000 Mb/s, GIO master
EECD_SK, EECD_CS, EECD_DI, EECD_DO = 1 << 0, 1 << 1, 1 << 2, 1 << 3
EECD_REQ, EECD_GNT, EECD_PRES = 1 << 6, 1 << 7, 1 << 8
EERD_START, EERD_DONE = 1 << 0, 1 << 4
MDIC_OP_WRITE, MDIC_OP_READ, MDIC_READY, MDIC_ERROR = 1 << 26, 2 << 26, 1 << 28, 1 << 30
ICR_TXDW, ICR_TXQE, ICR_LSC, ICR_RXDMT0, ICR_RXO, ICR_RXT0 = 1, 2, 4, 16, 64, 128
ICR_ASSERTED = 1 << 31
RCTL_EN, RCTL_UPE, RCTL_MPE, RCTL_BAM, RCTL_BSEX, RCTL_SECRC = (
    1 << 1, 1 << 3, 1 << 4, 1 << 15, 1 << 25, 1 << 26)
TCTL_EN = 1 << 1
RXD_DD, RXD_EOP = 1 << 0, 1 << 1
TXD_EOP, TXD_RS, TXD_DEXT, TXD_TSE, TXD_VLE = 1 << 0, 1 << 3, 1 << 5, 1 << 2, 1 << 6
CTRL_VME, VET, VLAN_TPID = 1 << 30, 0x0038, 0x8100
MAX_RX_FRAME, MAX_RX_LONG = 1522, 16384   # received frame limits: RCTL.LPE off / on
RCTL_LPE = 1 << 5
POPTS_IXSM, POPTS_TXSM = 1 << 0, 1 << 1
TUCMD_TCP, TUCMD_IP, TUCMD_TSE = 1 << 0, 1 << 1, 1 << 2

PHY_ADDR = 1
M88E1011_ID1, M88E1011_ID2 = 0x0141, 0x0C20      # the PHY Linux expects on an 82540EM
PHY_DEFAULTS = {0: 0x1140, 1: 0x796D, 2: M88E1011_ID1, 3: M88E1011_ID2, 4: 0x0DE1, 5: 0x45E1,
                6: 0x000D, 9: 0x0E00, 10: 0x3C00, 15: 0x3000, 16: 0x0068, 17: 0xAC00,
                20: 0x0D60}
EEPROM_WORDS, EEPROM_SUM = 64, 0xBABA
READ_OPCODE = 0b110                       # Microwire: start bit 1, READ 10
TX_BURST = 256                            # descriptors per register write (then per slice)
TX_FRAMES, TX_BYTES = 2048, 4 << 20       # and frames, bytes sent (a TSO packet makes many)
BACKLOG = 256                             # received frames waiting for descriptors
MAX_RING = 1 << 20                        # bytes of descriptors per ring (65536 of them)
MAX_PACKET = 0x10000 + 256                # a transmitted packet's bytes (TSO's 64 KiB + headers)


def eeprom_image(mac: bytes) -> list[int]:
    """The 64-word EEPROM: the MAC, the IDs Linux prints, words summing to 0xBABA."""
    words = [0] * EEPROM_WORDS
    words[0:3] = struct.unpack("<3H", mac)
    words[0x04] = 0xFFFF                  # ID LED settings: the driver's defaults
    words[0x0A] = 0x6403                  # init control 1 (as an 82540EM's)
    words[0x0B], words[0x0C] = E1000_82540EM, INTEL          # subsystem ID, vendor
    words[0x0D], words[0x0E] = E1000_82540EM, INTEL          # device ID, vendor
    words[0x3F] = (EEPROM_SUM - sum(words)) & 0xFFFF
    return words


class E1000(PciFunction):
    name = "e1000"

    def __init__(self, mem, mac: bytes, backend, irq):
        self.mem = mem
        self.mac = mac
        self.backend = backend
        self.irq = irq
        super().__init__(INTEL, E1000_82540EM, 0x020000,
                         [Bar(BAR0_SIZE, self.read, self.write, name=self.register_name),
                          Bar(BAR1_SIZE, self._io_read, self._io_write, io=True,
                              name=lambda off: "e1000 " + ("IOADDR" if off < 4 else "IODATA"))],
                         irq_pin=1, subsystem=(INTEL, E1000_82540EM), revision=3)
        self.eeprom = eeprom_image(mac)
        self.backlog: deque[bytes] = deque()
        self.stats = {"rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0,
                      "rx_dropped": 0, "tx_dropped": 0, "tso_segments": 0}
        self.warnings = GuestWarnings(log)
        self.tx_pending = False
        self.reset()
        backend.connect(self.receive)

    def describe(self) -> str:
        return f"e1000 {format_mac(self.mac)} on {self.backend.describe()}"

    def reset(self) -> None:
        self.regs = bytearray(BAR0_SIZE)                  # the stored registers
        self.counters: dict[int, int] = {}
        self._set(CTRL, CTRL_SLU)
        self._set(STATUS, STATUS_UP)
        self._set(EECD, EECD_PRES | EECD_GNT)
        ral, rah = struct.unpack("<IH", self.mac)
        self._set(RA, ral)
        self._set(RA + 4, rah | 1 << 31)                  # RA[0] valid: the EEPROM's MAC
        self.phy = dict(PHY_DEFAULTS)
        self.ee = {"bits_in": 0, "value": 0, "reading": False, "bit_out": 0, "last": 0}
        self.io_addr = 0
        self.tx_packet = bytearray()
        self.tx_context = None
        self.tx_pending = self.tx_discarding = False
        self.tx_budget = [TX_FRAMES, TX_BYTES]
        self._set(VET, VLAN_TPID)
        self.backlog.clear()
        self._interrupt()

    # -- the register file -----------------------------------------------------------
    def _get(self, reg: int) -> int:
        return int.from_bytes(self.regs[reg:reg + 4], "little")

    def _set(self, reg: int, value: int) -> None:
        self.regs[reg:reg + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")

    def read(self, off: int, size: int) -> int:
        reg = off & ~3
        value = self._read32(reg)
        return (value >> (8 * (off & 3))) & ((1 << (8 * size)) - 1)

    def write(self, off: int, size: int, value: int) -> None:
        reg = off & ~3
        if size != 4:
            shift, mask = 8 * (off & 3), ((1 << (8 * size)) - 1)
            if reg in (ICR, ICS, IMS, IMC):                # bit operations: only these bits
                value = (value & mask) << shift
            else:                                          # merged into the dword
                value = (self._get(reg) & ~(mask << shift)) | ((value & mask) << shift)
        self._write32(reg, value & 0xFFFFFFFF)

    @staticmethod
    def register_name(off: int) -> str:
        """What the ledger calls an access at ``off``: its register by the manual's name,
        or its table (the ledger keeps a bounded number of names per exit kind)."""
        reg = off & ~3
        name = REGISTER_NAMES.get(reg) or ("STATS" if STATS_BASE <= reg < STATS_END else
                                           "MTA" if MTA <= reg < RA else "RA" if
                                           RA <= reg < RA + 0x80 else "VFTA" if
                                           0x5600 <= reg < 0x5800 else "other")
        return "e1000 " + name

    def _read32(self, reg: int) -> int:
        if reg == ICR:
            value = self._get(ICR)
            self._set(ICR, 0)                             # reading clears every cause
            self._interrupt()
            return value
        if reg == EECD:
            return self._eecd_read()
        if STATS_BASE <= reg < STATS_END:
            return self.counters.pop(reg, 0)              # statistics clear on read
        return self._get(reg)

    def _write32(self, reg: int, value: int) -> None:
        if reg == CTRL:
            if value & CTRL_RST:
                self.reset()
                return
            if value & CTRL_PHY_RST:
                self.phy = dict(PHY_DEFAULTS)
            self._set(CTRL, value & ~(CTRL_RST | CTRL_PHY_RST))
        elif reg == STATUS:
            pass                                           # read only
        elif reg == EECD:
            self._eecd_write(value)
        elif reg == EERD:
            if value & EERD_START:
                addr = (value >> 8) & 0xFF
                word = self.eeprom[addr] if addr < EEPROM_WORDS else 0
                self._set(EERD, word << 16 | (addr << 8) | EERD_DONE)
        elif reg == MDIC:
            self._mdic(value)
        elif reg == ICR:
            self._set(ICR, self._get(ICR) & ~value)        # write 1 to clear
            self._interrupt()
        elif reg == ICS:
            self.raise_cause(value)
        elif reg == IMS:
            self._set(IMS, self._get(IMS) | value)
            self._interrupt()
        elif reg == IMC:
            self._set(IMS, self._get(IMS) & ~value)
            self._interrupt()
        elif reg == RCTL:
            self._set(RCTL, value)
            self._deliver()
        elif reg == RDT:
            self._set(RDT, value & 0xFFFF)
            self._deliver()
        elif reg in (RDH, TDH):
            self._set(reg, value & 0xFFFF)
        elif reg in (RDLEN, TDLEN):
            self._set(reg, value & 0xFFF80)                # a multiple of 128 bytes
        elif reg == TDT:
            self._set(TDT, value & 0xFFFF)
            self._transmit()
        elif reg == TCTL:
            self._set(TCTL, value)
            self._transmit()
        elif not STATS_BASE <= reg < STATS_END:
            self._set(reg, value)

    def _io_read(self, off: int, size: int) -> int:
        if off == 0:
            return self.io_addr
        return self.read(self.io_addr, 4) if off == 4 and self.io_addr < BAR0_SIZE else 0

    def _io_write(self, off: int, size: int, value: int) -> None:
        if off == 0:
            self.io_addr = value & (BAR0_SIZE - 4)
        elif off == 4:
            self.write(self.io_addr, 4, value)

    # -- interrupts ---------------------------------------------------------------------
    def raise_cause(self, causes: int) -> None:
        self._set(ICR, self._get(ICR) | causes)
        self._interrupt()

    def _interrupt(self) -> None:
        icr = self._get(ICR) & ~ICR_ASSERTED
        pending = bool(icr & self._get(IMS))
        self._set(ICR, icr | (ICR_ASSERTED if pending else 0))
        self.irq(pending)

    # -- the EEPROM (Microwire, bit by bit) and the PHY (MDIO through MDIC) ---------------
    def _eecd_write(self, value: int) -> None:
        ee, last = self.ee, self.ee["last"]
        self._set(EECD, (value & (EECD_SK | EECD_CS | EECD_DI | EECD_REQ))
                  | EECD_PRES | EECD_GNT)
        ee["last"] = value
        if not value & EECD_CS:
            return
        if not last & EECD_CS:                             # chip select rises: a new command
            ee.update(bits_in=0, value=0, reading=False, bit_out=0)
        if (value ^ last) & EECD_SK == 0:
            return
        if not value & EECD_SK:                            # falling clock: next bit out
            if ee["reading"]:
                ee["bit_out"] += 1
            return
        if ee["reading"]:
            return
        ee["value"] = ((ee["value"] << 1) | (1 if value & EECD_DI else 0)) & 0x1FF
        ee["bits_in"] += 1
        if ee["bits_in"] == 9:                             # start + opcode (3) + address (6)
            if ee["value"] >> 6 == READ_OPCODE:
                ee["reading"] = True
                # The data's first bit is out at the next rising clock; the falling
                # edge that ends this one moves the counter onto it.
                ee["bit_out"] = 16 * (ee["value"] & 0x3F) - 1
            else:
                ee["bits_in"] = ee["value"] = 0            # not a read: ignore it

    def _eecd_read(self) -> int:
        value = self._get(EECD)
        ee = self.ee
        if ee["reading"] and ee["bit_out"] >= 0:
            word = self.eeprom[(ee["bit_out"] // 16) % EEPROM_WORDS]
            if word >> (15 - ee["bit_out"] % 16) & 1:
                value |= EECD_DO
        return value

    def _mdic(self, value: int) -> None:
        reg, phy, op = (value >> 16) & 0x1F, (value >> 21) & 0x1F, value & (3 << 26)
        if phy != PHY_ADDR:
            self._set(MDIC, value | MDIC_READY | MDIC_ERROR)
            return
        if op == MDIC_OP_WRITE:
            data = value & 0xFFFF
            if reg == 0:
                if data & 0x8000:                          # reset: back to the defaults
                    self.phy = dict(PHY_DEFAULTS)
                    data &= ~0x8000
                if data & 0x0200:                          # restart autonegotiation: done
                    data &= ~0x0200
                    self.phy[1] |= 0x0024                  # link up, autonegotiation complete
            self.phy[reg] = data
            self._set(MDIC, value | MDIC_READY)
        elif op == MDIC_OP_READ:
            self._set(MDIC, (value & ~0xFFFF) | self.phy.get(reg, 0) | MDIC_READY)
        else:
            self._set(MDIC, value | MDIC_READY | MDIC_ERROR)

    # -- rings ----------------------------------------------------------------------------
    def _ring(self, base_lo: int, what: str) -> tuple[int, int, int, int] | None:
        """(address, descriptors, head, tail) of the ring whose RDBAL/TDBAL is at
        ``base_lo`` (its length, head and tail registers follow it), or None if the
        guest made it unusable: outside RAM, or an index beyond it (logged once)."""
        base = self._get(base_lo) | self._get(base_lo + 4) << 32
        length = self._get(base_lo + 8)
        if not length:
            return None
        if length > MAX_RING or not self.mem.contains(base, length):
            self.warnings.warn("ring", "e1000: a descriptor ring %#x+%#x outside guest RAM; "
                               "stopped", base, length)
            return None
        count, head, tail = length // 16, self._get(base_lo + 0x10), self._get(base_lo + 0x18)
        if head >= count or tail >= count:
            self.warnings.warn(what + " index", "e1000: %s head %d / tail %d beyond a ring "
                               "of %d; stopped", what, head, tail, count)
            return None
        return base, count, head, tail

    # -- receive ----------------------------------------------------------------------------
    def receive(self, frame: bytes) -> None:
        """A frame from the network (the backend calls this).  Dropped while the receiver
        is off, when no address filter takes it, and when longer than the receiver
        takes (1522 bytes, 16 KiB with RCTL.LPE): Linux sizes its buffers by the MTU and
        tells the NIC a larger BSIZE, relying on that limit."""
        rctl = self._get(RCTL)
        if not rctl & RCTL_EN or not self._accepts(frame):
            return
        if len(frame) + 4 > (MAX_RX_LONG if rctl & RCTL_LPE else MAX_RX_FRAME):
            self.stats["rx_dropped"] += 1                 # (the FCS counts)
            return
        if len(self.backlog) >= BACKLOG:
            self.stats["rx_dropped"] += 1
            self.counters[MPC] = self.counters.get(MPC, 0) + 1
            self.raise_cause(ICR_RXO)
            return
        self.backlog.append(frame)
        self._deliver()

    def _accepts(self, frame: bytes) -> bool:
        rctl, dst = self._get(RCTL), frame[0:6]
        if rctl & RCTL_UPE:
            return True
        if dst == b"\xff" * 6:
            return bool(rctl & RCTL_BAM)
        if dst[0] & 1:
            if rctl & RCTL_MPE:
                return True
            shift = (4, 3, 2, 0)[(rctl >> 12) & 3]         # RCTL.MO: which 12 bits hash
            h = ((dst[5] << 8 | dst[4]) >> shift) & 0xFFF
            return bool(self._get(MTA + 4 * (h >> 5)) >> (h & 31) & 1)
        for i in range(16):
            rah = self._get(RA + 8 * i + 4)
            if rah >> 31 and dst == struct.pack("<IH", self._get(RA + 8 * i), rah & 0xFFFF):
                return True
        return False

    def _buffer_size(self) -> int:
        rctl = self._get(RCTL)
        size = (2048, 1024, 512, 256)[(rctl >> 16) & 3]
        return size * 16 if rctl & RCTL_BSEX and size != 2048 else size

    def _deliver(self) -> None:
        """Frames from the backlog into the receive ring, while it has descriptors."""
        if not self.backlog or not self._get(RCTL) & RCTL_EN:
            return
        ring = self._ring(RDBAL, "receive")
        if ring is None:
            return
        base, count, head, tail = ring
        bufsize, delivered = self._buffer_size(), 0
        try:
            while self.backlog:
                frame = self.backlog[0]
                data = frame.ljust(60, b"\0")              # padded to the Ethernet minimum
                if not self._get(RCTL) & RCTL_SECRC:       # and its FCS, unless stripped
                    data += struct.pack("<I", zlib.crc32(data))
                needed = -(-len(data) // bufsize)
                if needed >= count:                        # it could never fit: not ever
                    self.backlog.popleft()
                    self.stats["rx_dropped"] += 1
                    continue
                if needed > (tail - head) % count:
                    break                                  # wait for the driver's descriptors
                self.backlog.popleft()
                for i in range(needed):
                    piece = data[i * bufsize:(i + 1) * bufsize]
                    desc = base + 16 * head
                    addr = self.mem.read_int(desc, 8)
                    self.mem.write(addr, piece)
                    status = RXD_DD | (RXD_EOP if i == needed - 1 else 0)
                    self.mem.write(desc + 8, struct.pack("<HHBBH", len(piece), 0, status, 0, 0))
                    head = (head + 1) % count
                delivered += 1
                self.stats["rx_packets"] += 1
                self.stats["rx_bytes"] += len(frame)
                self._bump(GPRC, TPR, GORCL, len(data))
        except GuestMemoryError as e:                     # (the frame is off the backlog)
            self.warnings.warn("rx memory", "e1000: %s; frame dropped", e)
            self.stats["rx_dropped"] += 1
        self._set(RDH, head)
        if delivered:
            causes = ICR_RXT0
            threshold = count >> (1 + ((self._get(RCTL) >> 8) & 3))
            if (tail - head) % count <= threshold:
                causes |= ICR_RXDMT0
            self.raise_cause(causes)

    def _bump(self, packets: int, total: int, octets: int, n: int) -> None:
        for reg in (packets, total):
            self.counters[reg] = (self.counters.get(reg, 0) + 1) & 0xFFFFFFFF
        low = self.counters.get(octets, 0) + n
        self.counters[octets] = low & 0xFFFFFFFF
        self.counters[octets + 4] = (self.counters.get(octets + 4, 0) + (low >> 32)) & 0xFFFFFFFF

    # -- transmit ------------------------------------------------------------------------
    def service(self) -> None:
        """Between run slices: the transmit work a register write left, and frames
        waiting for receive descriptors."""
        if self.tx_pending:
            self._transmit()
        self._deliver()

    def _transmit(self) -> None:
        """Descriptors from TDH towards TDT: at most TX_BURST of them, and at most
        TX_FRAMES frames or TX_BYTES bytes sent (a TSO packet makes many); the rest
        between run slices."""
        self.tx_pending = False
        if not self._get(TCTL) & TCTL_EN:
            return
        ring = self._ring(TDBAL, "transmit")
        if ring is None:
            return
        base, count, head, tail = ring
        causes, done = 0, 0
        self.tx_budget = [TX_FRAMES, TX_BYTES]
        while head != tail:
            if done == TX_BURST or self.tx_budget[0] <= 0 or self.tx_budget[1] <= 0:
                self.tx_pending = True                     # the rest between run slices
                break
            desc, raw = base + 16 * head, None
            try:
                raw = self.mem.read(desc, 16)
                if self._descriptor(raw) and raw[11] & TXD_RS:
                    self.mem.write(desc + 12, bytes([raw[12] | 1]))   # DD
                    causes |= ICR_TXDW
            except (GuestMemoryError, offload.OffloadError) as e:
                self.warnings.warn("tx packet", "e1000: %s; packet dropped", e)
                self._drop_packet(raw[11] if raw is not None else TXD_EOP)
            head = (head + 1) % count
            done += 1
        self._set(TDH, head)
        if head == tail:
            causes |= ICR_TXQE
        if done:
            self.raise_cause(causes)

    def _drop_packet(self, cmd: int) -> None:
        """Drop the packet being gathered; without EOP here, its remaining descriptors
        are skipped too (they are not a packet of their own)."""
        self.tx_packet = bytearray()
        self.tx_discarding = not cmd & TXD_EOP
        self.stats["tx_dropped"] += 1

    def _descriptor(self, raw: bytes) -> bool:
        """Take one transmit descriptor; whether it reports status (context ones do too)."""
        addr, = struct.unpack_from("<Q", raw)
        cmd, dtyp = raw[11], raw[10] >> 4
        if cmd & TXD_DEXT and dtyp == 0:                   # a context descriptor
            self.tx_context = offload.Context.unpack(raw)
            return True
        if self.tx_discarding:                             # the rest of a dropped packet
            self.tx_discarding = not cmd & TXD_EOP
            return True
        if cmd & TXD_DEXT:                                 # an extended data descriptor
            length = int.from_bytes(raw[8:11], "little") & 0xFFFFF
            popts = raw[13]
        else:                                              # legacy
            length, popts = raw[8] | raw[9] << 8, 0
        if len(self.tx_packet) + length > MAX_PACKET:
            self.warnings.warn("tx size", "e1000: a packet longer than %d bytes; dropped",
                               MAX_PACKET)
            self._drop_packet(cmd)
            return True
        self.tx_packet += self.mem.read(addr, length)
        if not cmd & TXD_EOP:
            return True
        packet, self.tx_packet = bytes(self.tx_packet), bytearray()
        tso = bool(cmd & TXD_DEXT and cmd & TXD_TSE)
        ctx = self.tx_context
        if (tso or popts) and ctx is None:
            self.warnings.warn("tx context", "e1000: an offload without a context descriptor")
            self.stats["tx_dropped"] += 1
            return True
        if tso:
            frames = offload.segment(packet, ctx, popts)
            self.stats["tso_segments"] += len(frames)
        else:
            frames = [offload.checksum(packet, ctx, popts) if popts else packet]
        vlan = cmd & TXD_VLE and self._get(CTRL) & CTRL_VME
        for f in frames:
            if vlan:                                       # the 802.1Q tag, after the MACs
                f = f[:12] + struct.pack("!HH", self._get(VET) & 0xFFFF, raw[14] | raw[15] << 8) \
                    + f[12:]
            self._send(f)
        return True

    def _send(self, frame: bytes) -> None:
        self.tx_budget[0] -= 1
        self.tx_budget[1] -= len(frame)
        if not MIN_FRAME <= len(frame) <= MAX_FRAME:
            self.stats["tx_dropped"] += 1
            return
        self.stats["tx_packets"] += 1
        self.stats["tx_bytes"] += len(frame)
        self._bump(GPTC, TPT, GOTCL, len(frame))
        self.backend.send(frame)


REGISTER_NAMES = {CTRL: "CTRL", STATUS: "STATUS", EECD: "EECD", EERD: "EERD", MDIC: "MDIC",
                  ICR: "ICR", ICS: "ICS", IMS: "IMS", IMC: "IMC", RCTL: "RCTL", TCTL: "TCTL",
                  RDBAL: "RDBAL", RDBAH: "RDBAH", RDLEN: "RDLEN", RDH: "RDH", RDT: "RDT",
                  TDBAL: "TDBAL", TDBAH: "TDBAH", TDLEN: "TDLEN", TDH: "TDH", TDT: "TDT"}
