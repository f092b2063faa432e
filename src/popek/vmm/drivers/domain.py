"""A driver domain (``--drivers domains``): a physical disk's driver in a VM of its
own, as a microkernel-style hypervisor places it.

The domain is a small VM of our guest kernel booted with ``blkback``
(guests/kernel/blkback.c) and given the disk by passthrough: its NVMe driver drives
the device, whose DMA the IOMMU confines to the domain's RAM and its *grant window*.
Guests keep an ordinary virtio-blk (vmm/drivers/frontend.py).  One request's trip:

    guest   notify (an MMIO exit)                               the guest's ledger
    VMM     grants the request's pages, writes it into the
            domain's ring, raises the domain's event            domain_event
    domain  maps the grants (GRANT_MAP: IOMMU mappings)         sbi popek (and
            drives the NVMe (no exits: passed through)           grant_map pages)
            posts the response, DOMAIN_NOTIFY                   sbi popek
    VMM     revokes the grants, writes the guest's status,
            completes its chain: an interrupt for the guest

A domain that dies (a panic, a crash: its VM powers off with an error) is restarted:
its grants are revoked, its VM rebuilt from its kernel, and the requests it had in
flight are sent again when the new one attaches its ring (a read or write done twice
writes the same bytes).  The guest sees a slower request, nothing else.  A domain
that keeps dying (``MAX_RESTARTS``) is given up: its guests' requests then fail.

A domain may also hang without dying (an endless loop, a wait for an event that
never comes): a *watchdog* takes it for dead when a request it was given stays
unanswered for ``watchdog_ms`` of the domain's *own* time (or a restarted one does
not attach its ring in that time while requests wait), kills it, and restarts it as
above.  Its own time is what it ran (its instructions, counted at 1 GHz: 1 ms is a
million) and what it slept in wfi while it owed a request (machine time); not what
other VMs ran meanwhile, so neither more VMs, nor a slow clock (``--icount-ips``,
``--clock host``), nor its own boot after a restart makes a healthy domain look
hung.  Asleep and owing, its deadline is one of the machine's wake-ups, so it fires
even when every vCPU sleeps.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from popek.errors import GuestMemoryError
from popek.guestlog import GuestWarnings
from popek.vmm.drivers import blkif
from popek.vmm.drivers.grants import GrantTable

log = logging.getLogger(__name__)

PAGE = 4096
MAX_RESTARTS = 8
HUNG_CODE = 124                          # (its VM's exit code when the watchdog kills it)
INSTRUCTIONS_PER_MS = 1_000_000          # a domain's own time is counted at 1 GHz
SBI_SUCCESS, SBI_ERR_INVALID_PARAM, SBI_ERR_DENIED, SBI_ERR_INVALID_ADDRESS = 0, -3, -4, -5


class DriverDomain:
    """The domain serving host device ``ident`` (a backend for DiskFrontend)."""

    def __init__(self, hv, ident: str, restart_args: str = "blkback", watchdog_ms: int = 0):
        self.hv = hv
        self.watchdog = watchdog_ms * INSTRUCTIONS_PER_MS      # (own time; 0: none)
        self.slept = 0                          # own time asleep owing (this incarnation)
        self.seen: int | None = None            # mtime at the last check
        self.id = ident
        self.name = f"driver domain {ident}"
        self.capacity = hv.host.devices[ident].fn.blocks
        self.restart_args = restart_args        # (its first had the crash to inject too)
        self.vm = None                          # set by the hypervisor; replaced at restart
        self.ring = None                        # the ring's gpa, once the domain attached
        self.grants = GrantTable()
        self.window: dict[int, int] = {}        # window slot → the grant index mapped there
        self.queued: deque = deque()            # (frontend, request) not yet in the ring
        self.inflight: dict[int, tuple] = {}    # ring id → (frontend, request)
        self.next_id = 1
        self.req_prod = self.rsp_cons = 0
        self.crashed_at: float | None = None    # (host time of the last crash)
        self.sent_at: dict[int, int] = {}       # ring id → own time it went into the ring
        self.booting_since: int | None = None   # own time since which requests wait for a
        #                                         restarted domain to attach its ring
        self.warnings = GuestWarnings(log)
        self.stats = {"requests": 0, "responses": 0, "events": 0, "grants": 0,
                      "grant_maps": 0, "grant_faults": 0, "bad_responses": 0, "crashes": 0,
                      "hangs": 0, "restarts": 0, "replayed": 0, "recovery_ms": 0.0}

    # -- the frontends' backend ----------------------------------------------------
    def has_room(self, frontend) -> bool:
        return len(self.inflight) + len(self.queued) < blkif.SLOTS

    def submit(self, frontend, req) -> None:
        if self.stats["restarts"] > MAX_RESTARTS:
            frontend.finish(req, False)          # (given up: the disk is gone)
            return
        if self.ring is None and self.booting_since is None and self.vm is not None:
            self.booting_since = self.own_time()
        self.queued.append((frontend, req))
        self._send()

    def cancel(self, frontend) -> None:
        """``frontend``'s device was reset: its requests go, with their grants.  Those
        in the ring keep their slot (the domain has them) until their response comes,
        which then completes nothing."""
        self.queued = deque(e for e in self.queued if e[0] is not frontend)
        for rid, (f, req) in list(self.inflight.items()):
            if f is frontend:
                self.inflight[rid] = (None, req)
                self._revoke(rid)

    # -- the ring -------------------------------------------------------------------
    def _send(self) -> None:
        """Put queued requests into the domain's ring and raise its event."""
        if self.ring is None or self.vm is None or self.vm.exit_code is not None:
            return
        sent = 0
        while self.queued and len(self.inflight) < blkif.SLOTS:
            frontend, req = self.queued.popleft()
            rid = self.next_id
            self.next_id += 1
            pieces = []
            for gpa, length in req.pieces:
                ref = self.grants.grant(frontend.host_address(gpa), req.op == blkif.OP_READ,
                                        rid)
                assert ref is not None              # (SLOTS × PIECES grants live at most)
                pieces.append((ref, gpa % PAGE, length))
            self.stats["grants"] += len(pieces)
            slot = self.ring + blkif.REQUESTS + (self.req_prod % blkif.SLOTS) * blkif.REQUEST_SIZE
            ram = self.vm.ram
            ram.write(slot, blkif.pack_request(rid, req.op, req.sector, pieces))
            self.req_prod = (self.req_prod + 1) & 0xFFFFFFFF
            ram.write_int(self.ring + blkif.REQ_PROD, 4, self.req_prod)
            self.inflight[rid] = (frontend, req)
            self.sent_at[rid] = self.own_time()
            self.stats["requests"] += 1
            sent += 1
        if sent:
            self._event()

    def _event(self) -> None:
        """The domain's event: a software interrupt on its first vCPU (it waits in wfi
        for it), injected by the VMM."""
        from popek.riscv.csrs import MIP_SSIP
        v = self.vm.vcpus[0]
        v.set_mip_sw(v.mip_sw | MIP_SSIP)
        self.vm.ledger.record("domain_event", self.id)
        self.stats["events"] += 1

    def _revoke(self, rid: int) -> None:
        """``rid``'s grants go (it was answered, cancelled, or is sent again)."""
        self.sent_at.pop(rid, None)
        slots = self.grants.revoke(rid)
        for s in slots:
            self.window.pop(s, None)
        if slots and self.vm is not None:
            host = self.hv.host
            host.driver.unmap_pages(host.gscids[self.vm.name],
                                    [blkif.WINDOW_BASE + s * PAGE for s in slots])

    # -- hypercalls (vmm/sbi.py) -------------------------------------------------------
    def hypercall(self, vm, fid: int, a0: int, a1: int) -> tuple[int, int]:
        if vm is not self.vm:
            return SBI_ERR_DENIED, 0                 # (a dead incarnation's last words)
        if fid == blkif.FID_DOMAIN_ATTACH:
            return self._attach(a0)
        if fid == blkif.FID_GRANT_MAP:
            return self._grant_map(a0, a1)
        if fid == blkif.FID_DOMAIN_NOTIFY:
            return self._responses()
        return SBI_ERR_INVALID_PARAM, 0

    def _attach(self, ring: int) -> tuple[int, int]:
        """The domain's ring (it may attach again: what was in flight is sent anew)."""
        if ring % PAGE or not self.vm.ram.contains(ring, blkif.RING_PAGES * PAGE):
            return SBI_ERR_INVALID_ADDRESS, 0
        self._requeue()
        self.vm.ram.write(ring, bytes(blkif.RING_BYTES))
        self.ring = ring
        self.req_prod = self.rsp_cons = 0
        self.booting_since = None
        if self.crashed_at is not None:
            self.stats["recovery_ms"] += (time.perf_counter() - self.crashed_at) * 1e3
            self.crashed_at = None
        self._send()
        return SBI_SUCCESS, blkif.WINDOW_BASE

    def _requeue(self) -> None:
        """Everything in flight back to the front of the queue, its grants revoked."""
        back = []
        for rid in sorted(self.inflight):
            frontend, req = self.inflight.pop(rid)
            self._revoke(rid)
            if frontend is not None:            # (a cancelled one is not sent again)
                back.append((frontend, req))
        self.stats["replayed"] += len(back)
        self.queued.extendleft(reversed(back))

    def _grant_map(self, ops: int, n: int) -> tuple[int, int]:
        """Map ``n`` grants ({u32 ref, u32 slot} at ``ops``) into the window, each
        checked: a live grant of a request in flight to this domain, a slot in the
        window.  The first bad one stops the batch (a grant fault, in the ledger)."""
        if n > blkif.PIECES:
            return SBI_ERR_INVALID_PARAM, 0
        host = self.hv.host
        gscid = host.gscids[self.vm.name]
        done = 0
        for i in range(n):
            try:
                ref, slot = blkif.MAP_OP.unpack(self.vm.ram.read(ops + 8 * i, 8))
            except GuestMemoryError:
                return SBI_ERR_INVALID_ADDRESS, done
            g = self.grants.lookup(ref)
            if g is None or g.request not in self.inflight or slot >= blkif.WINDOW_SLOTS:
                self._grant_fault(f"ref {ref:#x} slot {slot}: not a live grant of a request "
                                  "in flight, or not a window slot")
                return SBI_ERR_DENIED, done
            gpa = blkif.WINDOW_BASE + slot * PAGE
            if slot in self.window:                      # (remapped: the old one goes)
                host.driver.unmap_pages(gscid, [gpa])
                old = self.grants.entries[self.window[slot]]
                if old is not None and slot in old.slots:
                    old.slots.remove(slot)
            if not host.driver.map_page(gscid, gpa, g.hpa, g.writable):
                self.window.pop(slot, None)
                return SBI_ERR_DENIED, done
            g.slots.append(slot)
            self.window[slot] = ref & (len(self.grants.entries) - 1)
            done += 1
        self.stats["grant_maps"] += done
        self.vm.ledger.note("grant_map", self.id, done)
        self.hv.charge_cycles(done * self.hv.costs.GRANT_MAP)
        return SBI_SUCCESS, done

    def _grant_fault(self, why: str) -> None:
        self.stats["grant_faults"] += 1
        self.vm.ledger.note("grant_fault", self.id)       # (within its hypercall's exit)
        self.warnings.warn("grant", "%s: refused a grant map: %s", self.name, why)

    def _responses(self) -> tuple[int, int]:
        """Take the responses the domain posted (at most a ring's worth per call):
        each request's grants revoked, its guest told."""
        ram = self.vm.ram
        if self.ring is None:
            return SBI_ERR_DENIED, 0
        prod = ram.read_int(self.ring + blkif.RSP_PROD, 4)
        n = min((prod - self.rsp_cons) & 0xFFFFFFFF, blkif.SLOTS)
        for _ in range(n):
            at = self.ring + blkif.RESPONSES + (self.rsp_cons % blkif.SLOTS) * blkif.RESPONSE.size
            rid, status, _ = blkif.RESPONSE.unpack(ram.read(at, blkif.RESPONSE.size))
            self.rsp_cons = (self.rsp_cons + 1) & 0xFFFFFFFF
            entry = self.inflight.pop(rid, None)
            if entry is None:
                self.stats["bad_responses"] += 1
                self.warnings.warn("response", "%s: a response to no request in flight (%#x)",
                                   self.name, rid)
                continue
            self._revoke(rid)
            self.stats["responses"] += 1
            frontend, req = entry
            if frontend is not None:            # (None: its device was reset since)
                frontend.finish(req, status == blkif.OK)
        ram.write_int(self.ring + blkif.RSP_CONS, 4, self.rsp_cons)
        self._send()
        return SBI_SUCCESS, n

    # -- life and death ----------------------------------------------------------------
    def own_time(self) -> int:
        """The domain's own time, in instructions: what this incarnation ran, and
        slept while it owed a request."""
        return self.vm.retired + self.slept

    def _owed_since(self) -> int | None:
        """Own time since which the oldest request waits for the domain, if any does."""
        owed = min(self.sent_at.values(), default=None)
        if self.ring is None and self.queued and self.booting_since is not None:
            owed = self.booting_since if owed is None else min(owed, self.booting_since)
        return owed

    def _asleep(self) -> bool:
        return all(v.waiting and not v.pending_enabled() for v in self.vm.vcpus)

    def deadline(self) -> int | None:
        """When (mtime) the watchdog takes the domain for hung if it sleeps on (while
        it runs, its own time is its instructions: the checks between slices see it)."""
        if not self.watchdog or self.vm is None or self.vm.exit_code is not None \
                or self.seen is None or not self._asleep():
            return None
        owed = self._owed_since()
        if owed is None:
            return None
        left = max(0, owed + self.watchdog - self.own_time())
        return self.seen + -(-left // self._per_tick())

    def _per_tick(self) -> int:
        """Own time (instructions at 1 GHz) in one mtime tick."""
        return max(1, INSTRUCTIONS_PER_MS * 1000 // self.hv.clock.timebase)

    def _watch(self) -> bool:
        """The watchdog, between slices: whether the domain is hung."""
        now = self.hv.mtime()
        owed = self._owed_since()
        if owed is not None and self.seen is not None and self._asleep():
            self.slept += (now - self.seen) * self._per_tick()
        self.seen = now
        return bool(self.watchdog) and owed is not None \
            and self.own_time() - owed >= self.watchdog

    def check(self) -> None:
        """Between slices: if the domain's VM has died, or hangs, restart it."""
        vm = self.vm
        if vm is None or self.stats["restarts"] > MAX_RESTARTS:
            return
        hung = vm.exit_code is None             # (alive: only the watchdog can say)
        if hung:
            if not self._watch():
                return
            vm.shutdown(HUNG_CODE, f"a request unanswered for "
                                   f"{self.watchdog // INSTRUCTIONS_PER_MS} ms of its time")
        self.stats["hangs" if hung else "crashes"] += 1
        log.warning("%s %s (%s); restarting it", self.name, "hung" if hung else "died",
                    vm.exit_reason)
        self.crashed_at = time.perf_counter()
        self._requeue()
        self.ring = None
        for frontend in {f for f, _ in self.queued}:
            frontend.note_crash(self.id)
        self.stats["restarts"] += 1
        if self.stats["restarts"] > MAX_RESTARTS:
            log.warning("%s: died or hung %d times; given up (its disks fail every request)",
                        self.name, self.stats["restarts"])
            for frontend, req in self.queued:
                frontend.finish(req, False)
            self.queued.clear()
            return
        self.vm = self.hv.restart_vm(vm, append=self.restart_args)
        self.vm.domain = self
        self.slept, self.seen = 0, None          # (a new incarnation: its own time anew)
        self.booting_since = 0 if self.queued else None

    def report(self) -> dict:
        return {**self.stats, "grants_live": f"{len(self.grants):,} (at most "
                                             f"{len(self.grants.entries):,})",
                "inflight": len(self.inflight), "queued": len(self.queued)}
