"""The VMM's own driver for a physical NVMe disk (``--drivers monolithic``): a
monolithic hypervisor calls its drivers directly, in its own address space, with
its own privileges.

It programs the controller as any NVMe driver does (vmm/drivers/ shares nothing of
it with the guest kernel's: this one is the VMM's), with its queues in the VMM
region of host memory, and points the device's DMA straight at the guest's pages
(host-physical addresses: its IOMMU context is Bare, since the VMM trusts its own
driver).  Commands complete before the doorbell write returns (the model is
synchronous), so a guest's request is done when its notify exit is.

Fast: no hop but the guest's exit.  Fragile: the driver's failure is the VMM's
(``--inject-fault``: :class:`DriverCrash` ends every VM).
"""

from __future__ import annotations

import struct

from popek.devices import nvme
from popek.vmm.drivers.faults import DriverCrash
from popek.vmm.drivers.frontend import OP_FLUSH, OP_READ, PAGE

PAGES = 6                         # admin SQ, CQ; I/O SQ, CQ; a PRP list; Identify's page
QSIZE = 16
MAX_RUN = 32 * PAGE               # the controller's MDTS: 128 KiB a command


class VmmNvmeDriver:
    """A backend for DiskFrontend: the host NVMe ``dev`` (a HostDevice), driven from
    the VMM with ``pages`` pages of host memory at ``base``."""

    def __init__(self, hv, dev, base: int, fault=None):
        """``fault``: the FaultPlan to inject, if any."""
        self.hv, self.dev, self.ram = hv, dev, hv.ram
        self.name = f"the VMM's driver of {dev.id}"
        self.fault = fault
        self.served = 0
        bar = dev.fn.bars[0]
        self.r, self.w = bar.read, bar.write
        self.asq, self.acq, self.iosq, self.iocq, self.prps, self.ident = \
            (base + i * PAGE for i in range(PAGES))
        self.ram.write(base, bytes(PAGES * PAGE))
        self.tail = {0: 0, 1: 0}
        self.head = {0: 0, 1: 0}
        self.phase = {0: 1, 1: 1}
        self.stats = {"commands": 0, "errors": 0}
        self._start()

    def _start(self) -> None:
        w = self.w
        w(nvme.CC, 4, 0)
        w(nvme.AQA, 4, (QSIZE - 1) << 16 | (QSIZE - 1))
        for reg, addr in ((nvme.ASQ, self.asq), (nvme.ACQ, self.acq)):
            w(reg, 4, addr & 0xFFFFFFFF)
            w(reg + 4, 4, addr >> 32)
        w(nvme.INTMS, 4, 1)                       # polled: the command is done at once
        w(nvme.CC, 4, nvme.CC_EN | 6 << 16 | 4 << 20)
        if not self.r(nvme.CSTS, 4) & nvme.CSTS_RDY:
            raise RuntimeError(f"{self.dev.id}: the NVMe controller did not start")
        ok = self._command(0, nvme.ADMIN_IDENTIFY, nsid=1, prp1=self.ident) == 0
        self.capacity = struct.unpack_from("<Q", self.ram.read(self.ident, 8))[0]
        ok = ok and self._command(0, nvme.ADMIN_CREATE_CQ, prp1=self.iocq,
                                  cdw10=(QSIZE - 1) << 16 | 1, cdw11=1) == 0
        ok = ok and self._command(0, nvme.ADMIN_CREATE_SQ, prp1=self.iosq,
                                  cdw10=(QSIZE - 1) << 16 | 1, cdw11=1 << 16 | 1) == 0
        if not ok:
            raise RuntimeError(f"{self.dev.id}: the NVMe controller refused its set-up")

    def _command(self, qid: int, opcode: int, nsid: int = 0, prp1: int = 0, prp2: int = 0,
                 cdw10: int = 0, cdw11: int = 0, cdw12: int = 0) -> int:
        """Submit one command and take its completion: its status (0: success)."""
        sq, cq = (self.asq, self.acq) if qid == 0 else (self.iosq, self.iocq)
        cmd = struct.pack("<BBHIQQQQIIIIII", opcode, 0, self.tail[qid], nsid, 0, 0, prp1, prp2,
                          cdw10, cdw11, cdw12, 0, 0, 0)
        self.ram.write(sq + self.tail[qid] * 64, cmd)
        self.tail[qid] = (self.tail[qid] + 1) % QSIZE
        self.w(nvme.DOORBELLS + 8 * qid, 4, self.tail[qid])
        status = struct.unpack_from("<H", self.ram.read(cq + self.head[qid] * 16 + 14, 2))[0]
        if status & 1 != self.phase[qid]:
            raise RuntimeError(f"{self.dev.id}: no completion for command {opcode:#x}")
        self.head[qid] = (self.head[qid] + 1) % QSIZE
        if self.head[qid] == 0:
            self.phase[qid] ^= 1
        self.w(nvme.DOORBELLS + 8 * qid + 4, 4, self.head[qid])
        self.stats["commands"] += 1
        return status >> 1

    # -- the frontends' backend ----------------------------------------------------
    def has_room(self, frontend) -> bool:
        return True

    def cancel(self, frontend) -> None:
        pass                                      # (nothing is ever left in flight)

    def submit(self, frontend, req) -> None:
        if self.fault is not None and self.served >= self.fault.after:
            raise DriverCrash(self.dev.id, self.served, "an injected fault", self.fault.kind)
        self.served += 1
        if req.op == OP_FLUSH:
            ok = self._command(1, nvme.IO_FLUSH, nsid=1) == 0
        else:
            ok = all(self._io(req.op, sector, run) == 0
                     for sector, run in _runs(req, frontend.host_address))
        if not ok:
            self.stats["errors"] += 1
        frontend.finish(req, ok)

    def _io(self, op: int, sector: int, run: list) -> int:
        """One command for ``run``: host pages the controller can take as PRPs (the
        first may start inside its page, all but the last end at a page's end)."""
        first, total = run[0][0], sum(n for _, n in run)
        pages = [addr & ~(PAGE - 1) for addr, _ in run]
        prp2 = 0
        if len(pages) == 2:
            prp2 = pages[1]
        elif len(pages) > 2:
            self.ram.write(self.prps, struct.pack(f"<{len(pages) - 1}Q", *pages[1:]))
            prp2 = self.prps
        opcode = nvme.IO_READ if op == OP_READ else nvme.IO_WRITE
        return self._command(1, opcode, nsid=1, prp1=first, prp2=prp2,
                             cdw10=sector & 0xFFFFFFFF, cdw11=sector >> 32,
                             cdw12=total // 512 - 1)

    def report(self) -> dict:
        return {"served": self.served, **self.stats}


def _runs(req, host_address):
    """The request's pieces, as host addresses, grouped into runs one NVMe command can
    carry (PRP rules, at most MAX_RUN bytes): (first sector, [(host address, length)])."""
    sector, run, size = req.sector, [], 0
    for gpa, n in req.pieces:
        hpa = host_address(gpa)
        joins = run and (run[-1][0] + run[-1][1]) % PAGE == 0 and hpa % PAGE == 0 \
            and size + n <= MAX_RUN
        if run and not joins:
            yield sector, run
            sector += size // 512
            run, size = [], 0
        run.append((hpa, n))
        size += n
    if run:
        yield sector, run
