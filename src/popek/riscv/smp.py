"""Several harts in one thread: a deterministic round robin.

Each hart runs a quantum of instructions, then the next runnable one does; a
hart asleep in ``wfi`` with nothing pending is passed over (and woken when an
interrupt is pending for it).  The order depends only on what the harts do, so
an SMP run repeats exactly, like a uniprocessor one.

Guest time (mtime) follows the instructions retired by *all* harts, as QEMU's
round-robin icount does: time never goes backwards from one hart to the next,
and a hart's timer fires at the same global instruction every run.  While every
hart is busy each one therefore sees a guest second as ``ips / N`` of its own
instructions.

Memory is sequentially consistent (one hart runs at a time), which RVWMO allows.
LR/SC: a reservation survives only while no other hart runs.  When a hart
is scheduled after another hart has run, its reservation is dropped, so a store
by another hart to the reserved address always makes the SC fail.  An SC may then
fail without a conflicting store, which the ISA permits; an LR/SC loop
succeeds on its next try, within the same quantum.
"""

from __future__ import annotations

MAX_HARTS = 8           # --smp bound: each hart keeps its own TLBs and block caches
# Instructions a hart runs before the next one's turn.  A hart spinning on a lock
# held by another burns the rest of its quantum, so shorter is better for SMP
# kernels; every switch costs a return to the board's loop.
QUANTUM = 10_000


class HartScheduler:
    """Round robin over ``harts``; ``pick`` gives the hart to run next, or None
    if all of them sleep."""

    def __init__(self, harts: list):
        self.harts = harts
        self.turn = 0                   # index of the hart whose turn is next
        self.last = None                # the hart that ran last
        self.switches = 0

    def pick(self):
        harts = self.harts
        n = len(harts)
        for k in range(n):
            i = (self.turn + k) % n
            h = harts[i]
            if h.waiting:
                if not h.mip & h.mie:
                    continue            # asleep, nothing pending for it
                h.waiting = False
            self.turn = (i + 1) % n
            if self.last is not h:
                if self.last is not None:
                    self.switches += 1
                    h.reservation = None    # another hart ran: it may have stored there
                self.last = h
            return h
        return None
