"""The NVMe controller (devices/nvme.py) driven the way Linux's nvme driver drives it:
admin queue, Identify, I/O queues, reads and writes through PRP lists, Flush, INTx;
and as a hostile driver would."""

import struct

import pytest

from popek.devices import nvme
from popek.devices.memory import GuestMemory

BASE = 0x8000_0000
ASQ, ACQ, IOSQ, IOCQ, PRPS, DATA = (BASE + 0x1000 * i for i in (1, 2, 3, 4, 5, 16))


class Driver:
    """A small NVMe driver: queues in guest RAM, commands, completions by phase."""

    def __init__(self, tmp_path, blocks: int = 2048):
        self.mem = GuestMemory(BASE, 4 << 20)
        self.disk = tmp_path / "nvme.img"
        self.disk.write_bytes(bytes(blocks * 512))
        self.lines = []
        self.dev = nvme.Nvme(self.mem, str(self.disk), self.lines.append)
        self.tail = {0: 0, 1: 0}
        self.head = {0: 0, 1: 0}
        self.phase = {0: 1, 1: 1}
        self.size = {0: 8, 1: 16}
        self.base = {0: (ASQ, ACQ), 1: (IOSQ, IOCQ)}
        self.cid = 0

    def enable(self) -> None:
        d = self.dev
        d.write(nvme.AQA, 4, (self.size[0] - 1) | (self.size[0] - 1) << 16)
        d.write(nvme.ASQ, 4, ASQ & 0xFFFFFFFF)
        d.write(nvme.ASQ + 4, 4, ASQ >> 32)
        d.write(nvme.ACQ, 4, ACQ & 0xFFFFFFFF)
        d.write(nvme.ACQ + 4, 4, ACQ >> 32)
        d.write(nvme.CC, 4, 1 | 6 << 16 | 4 << 20)
        assert d.read(nvme.CSTS, 4) & nvme.CSTS_RDY

    def submit(self, qid: int, opcode: int, nsid=0, prp1=0, prp2=0, cdw10=0, cdw11=0,
               cdw12=0) -> tuple[int, int]:
        """Submit one command and take its completion: (status, DW0)."""
        self.cid += 1
        cmd = struct.pack("<BBHIQQQQIIIIII", opcode, 0, self.cid, nsid, 0, 0, prp1, prp2,
                          cdw10, cdw11, cdw12, 0, 0, 0)
        sq, cq = self.base[qid]
        self.mem.write(sq + self.tail[qid] * 64, cmd)
        self.tail[qid] = (self.tail[qid] + 1) % self.size[qid]
        self.dev.write(nvme.DOORBELLS + 8 * qid, 4, self.tail[qid])
        entry = self.mem.read(cq + self.head[qid] * 16, 16)
        dw0, _, sqhd, sqid, cid, status = struct.unpack("<IIHHHH", entry)
        assert status & 1 == self.phase[qid], "no completion posted"
        assert cid == self.cid and sqid == qid
        self.head[qid] = (self.head[qid] + 1) % self.size[qid]
        if self.head[qid] == 0:
            self.phase[qid] ^= 1
        self.dev.write(nvme.DOORBELLS + 8 * qid + 4, 4, self.head[qid])
        return status >> 1, dw0

    def io_queues(self) -> None:
        assert self.submit(0, nvme.ADMIN_CREATE_CQ, prp1=IOCQ, cdw10=1 | 15 << 16,
                           cdw11=3)[0] == 0
        assert self.submit(0, nvme.ADMIN_CREATE_SQ, prp1=IOSQ, cdw10=1 | 15 << 16,
                           cdw11=1 | 1 << 16)[0] == 0


def test_identify_and_linux_style_bring_up(tmp_path):
    drv = Driver(tmp_path)
    assert drv.dev.read(nvme.CAP_REG, 8) & 0xFFFF == nvme.MQES
    assert drv.dev.read(nvme.VS, 4) == 0x00010400
    drv.enable()
    assert drv.submit(0, nvme.ADMIN_IDENTIFY, prp1=DATA, cdw10=1) == (0, 0)
    ctrl = drv.mem.read(DATA, 4096)
    assert ctrl[24:34] == b"popek NVMe" and ctrl[77] == nvme.MDTS
    assert struct.unpack_from("<I", ctrl, 516)[0] == 1                # one namespace
    assert drv.submit(0, nvme.ADMIN_IDENTIFY, nsid=1, prp1=DATA, cdw10=0)[0] == 0
    assert struct.unpack_from("<Q", drv.mem.read(DATA, 8))[0] == 2048
    assert drv.mem.read_int(DATA + 128, 4) >> 16 & 0xFF == 9           # 512-byte blocks
    assert drv.submit(0, nvme.ADMIN_IDENTIFY, prp1=DATA, cdw10=2)[0] == 0
    assert drv.mem.read_int(DATA, 4) == 1 and drv.mem.read_int(DATA + 4, 4) == 0
    status, dw0 = drv.submit(0, nvme.ADMIN_SET_FEATURES, cdw10=7, cdw11=63 | 63 << 16)
    assert status == 0 and dw0 == 15 | 15 << 16                       # capped
    drv.io_queues()
    assert drv.submit(0, 0x7F)[0] == nvme.INVALID_OPCODE | nvme.DNR


def test_reads_and_writes_through_prp_lists_and_flush(tmp_path):
    drv = Driver(tmp_path)
    drv.enable()
    drv.io_queues()
    payload = bytes(range(256)) * 64                                   # 16 KiB: 4 pages
    pages = [DATA + 0x3000, DATA + 0x1000, DATA + 0x7000, DATA + 0x5000]
    for i, page in enumerate(pages):
        drv.mem.write(page, payload[i * 4096:(i + 1) * 4096])
    drv.mem.write(PRPS, struct.pack("<3Q", *pages[1:]))
    assert drv.submit(1, nvme.IO_WRITE, nsid=1, prp1=pages[0], prp2=PRPS, cdw10=100,
                      cdw12=31)[0] == 0
    assert drv.submit(1, nvme.IO_FLUSH, nsid=1)[0] == 0
    assert drv.disk.read_bytes()[100 * 512:100 * 512 + len(payload)] == payload
    # Read it back at an offset within the first page, two pages' worth: PRP2 a page.
    assert drv.submit(1, nvme.IO_READ, nsid=1, prp1=DATA + 0x200, prp2=DATA + 0x9000,
                      cdw10=100, cdw12=14)[0] == 0                     # 15 blocks
    got = drv.mem.read(DATA + 0x200, 4096 - 0x200) + drv.mem.read(DATA + 0x9000, 15 * 512
                                                                    - (4096 - 0x200))
    assert got == payload[:15 * 512]
    st = drv.dev.stats
    assert st["writes"] == 1 and st["reads"] == 1 and st["flushes"] == 1


def test_completions_wrap_with_the_phase_and_raise_intx(tmp_path):
    drv = Driver(tmp_path)
    drv.enable()
    drv.io_queues()
    for _ in range(40):                                                # the queue wraps twice
        assert drv.submit(1, nvme.IO_READ, nsid=1, prp1=DATA, cdw12=0)[0] == 0
    assert True in drv.lines and drv.lines[-1] is False                # lowered once consumed
    drv.dev.write(nvme.INTMS, 4, 1)
    drv.submit(1, nvme.IO_READ, nsid=1, prp1=DATA)
    assert drv.lines[-1] is False                                      # masked


@pytest.mark.parametrize("bad, status", [
    ({"cdw10": 2047, "cdw12": 1}, nvme.LBA_OUT_OF_RANGE | nvme.DNR),    # past the end
    ({"nsid": 2}, nvme.INVALID_FIELD | nvme.DNR),                       # no such namespace
    ({"cdw12": 256}, nvme.INVALID_FIELD | nvme.DNR),                    # more than MDTS
    ({"prp1": 0x1000}, nvme.DATA_TRANSFER_ERROR),                       # outside RAM
    ({"cdw12": 15, "prp2": DATA + 8}, nvme.INVALID_FIELD | nvme.DNR),   # PRP2 not a page
])
def test_bad_commands_complete_with_a_status(tmp_path, bad, status):
    drv = Driver(tmp_path)
    drv.enable()
    drv.io_queues()
    args = {"nsid": 1, "prp1": DATA, "cdw10": 0, "cdw12": 0, **bad}
    assert drv.submit(1, nvme.IO_READ, **args)[0] == status
    assert drv.submit(1, nvme.IO_READ, nsid=1, prp1=DATA)[0] == 0     # and it goes on


def test_a_hostile_driver_meets_bounds_not_exceptions(tmp_path):
    drv = Driver(tmp_path)
    drv.enable()
    d = drv.dev
    d.write(nvme.DOORBELLS + 8 * 9, 4, 3)              # a queue that does not exist
    d.write(nvme.DOORBELLS, 4, 5000)                   # a tail beyond the queue
    assert drv.submit(0, nvme.ADMIN_CREATE_CQ, prp1=IOCQ, cdw10=99 | 15 << 16,
                      cdw11=3)[0] == nvme.INVALID_QUEUE_ID | nvme.DNR
    assert drv.submit(0, nvme.ADMIN_CREATE_SQ, prp1=IOSQ, cdw10=1 | 15 << 16,
                      cdw11=1 | 7 << 16)[0] == nvme.CQ_INVALID | nvme.DNR
    assert drv.submit(0, nvme.ADMIN_CREATE_CQ, prp1=IOCQ, cdw10=1 | 5000 << 16,
                      cdw11=3)[0] == nvme.INVALID_QUEUE_SIZE | nvme.DNR
    # An admin queue outside RAM: a fatal controller status, not a crash.
    d.write(nvme.CC, 4, 0)
    assert not d.read(nvme.CSTS, 4) & nvme.CSTS_RDY
    d.write(nvme.ASQ, 4, 0x1000)
    d.write(nvme.CC, 4, 1)
    d.write(nvme.DOORBELLS, 4, 1)
    assert d.read(nvme.CSTS, 4) & nvme.CSTS_CFS
    assert d.warnings.total() >= 3
