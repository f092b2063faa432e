"""Guest time: a deterministic clock driven by retired instructions, or host time.

Both give ``mtime`` in ticks of the timebase (10 MHz, as on QEMU virt).

* :class:`InstructionClock` (the default): time advances by ``timebase / ips``
  ticks per retired instruction, ``ips`` being a nominal guest speed.  Runs and
  their measurements repeat exactly.  When the hart sleeps in wfi with nothing
  pending, the clock jumps to the next timer event instead of spinning; a loop
  polling the time CSR has its wait skipped too (MachineTime.guest_time).
* :class:`HostClock`: ``mtime`` follows the host's monotonic clock, like QEMU
  without -icount; a sleeping hart really sleeps.
"""

from __future__ import annotations

import time

TIMEBASE_HZ = 10_000_000
# Nominal guest speed of the deterministic clock: a 1 GHz hart, one instruction a
# cycle.  Linux measures itself against time (watchdogs, the crypto self-tests'
# limits, jitter entropy) and at popek's real speed (~2 M a second, the old default)
# saw a machine so slow that it warned of soft lockups and failed self-tests.  Waits
# cost little at this rate: wfi skips to the next deadline, and so do polling loops
# (MachineTime.guest_time).
DEFAULT_IPS = 1_000_000_000


class InstructionClock:
    deterministic = True

    def __init__(self, ips: int = DEFAULT_IPS, timebase: int = TIMEBASE_HZ,
                 sleep: bool = True, idle_waits: bool = False):
        if ips <= 0:
            raise ValueError("instructions per second must be positive")
        self.ips = ips
        # Whether a polling loop's wait is skipped (MachineTime.guest_time); off, time
        # strictly follows instructions (--icount-sleep off, as QEMU's icount sleep=off).
        self.sleep = sleep
        # Whether an idle machine waits for its next timer in real time (--icount-idle:
        # someone at a terminal); else time jumps to it, and runs repeat exactly.
        self.idle_waits = idle_waits
        self.timebase = timebase
        self.skipped = 0          # instructions' worth of time skipped while idle or polling
        self.offset = 0           # ticks added by guest writes to mtime
        self.polls_skipped = 0    # polling-loop reads that moved time on (MachineTime.guest_time)
        self.poll_skipped_ticks = 0

    def mtime(self, instret: int) -> int:
        return (instret + self.skipped) * self.timebase // self.ips + self.offset

    def set_mtime(self, instret: int, value: int) -> None:
        self.offset += value - self.mtime(instret)

    def instret_at(self, ticks: int) -> int:
        """The retired-instruction count at which ``mtime`` reaches ``ticks``."""
        icount = -(-(ticks - self.offset) * self.ips // self.timebase)
        return icount - self.skipped

    def idle_until(self, instret: int, ticks: int | None, wait_input, idle: bool = True) -> None:
        """Pass idle time: jump to ``ticks`` (or wait for host input if no timer is set).
        With ``idle_waits``, wait for host input until then in real time, and move on
        only by the time that passed: a guest idling at a prompt keeps to the wall clock
        (its ``uptime`` stays true) and leaves the host's CPU alone, as QEMU's icount
        with sleep=on; the caller comes back while it is still idle.  ``idle`` False:
        the time is owed for work done (a vCPU trapping in a loop), never waited for."""
        if ticks is None:
            wait_input(None)
            return
        need = self.instret_at(ticks)
        if need <= instret:
            return
        if self.idle_waits and idle:
            start = time.monotonic()
            wait_input((need - instret) / self.ips)
            need = min(need, instret + int((time.monotonic() - start) * self.ips))
        self.skipped += need - instret

    def skip_to(self, instret: int, ticks: int) -> None:
        """Move time on to ``ticks`` (a polling loop's wait: MachineTime.guest_time)."""
        need = self.instret_at(ticks)
        if need > instret:
            before = self.mtime(instret)
            self.skipped += need - instret
            self.polls_skipped += 1
            self.poll_skipped_ticks += self.mtime(instret) - before

    def ns(self, instret: int) -> int:
        return (instret + self.skipped) * 1_000_000_000 // self.ips


class HostClock:
    deterministic = False

    def __init__(self, timebase: int = TIMEBASE_HZ):
        self.timebase = timebase
        self.start = time.monotonic_ns()
        self.offset = 0

    def mtime(self, instret: int) -> int:
        return (time.monotonic_ns() - self.start) * self.timebase // 1_000_000_000 + self.offset

    def set_mtime(self, instret: int, value: int) -> None:
        self.offset += value - self.mtime(instret)

    def instret_at(self, ticks: int) -> None:
        return None               # unknowable: the machine polls instead

    def idle_until(self, instret: int, ticks: int | None, wait_input, idle: bool = True) -> None:
        if ticks is None:
            wait_input(None)
            return
        delay = (ticks - self.mtime(instret)) / self.timebase
        if delay > 0:
            wait_input(delay)

    def ns(self, instret: int) -> int:
        return time.monotonic_ns() - self.start


IDLE_MODES = ("auto", "sleep", "skip")


def idle_waits(mode: str, console) -> bool:
    """``--icount-idle``: whether an idle machine waits for its timers in real time:
    ``sleep`` always, ``skip`` never, ``auto`` when its console is a terminal (a person
    at a prompt; a scripted or piped console keeps runs repeatable)."""
    if mode not in IDLE_MODES:
        raise ValueError(f"unknown idle mode {mode!r}")
    return mode == "sleep" or (mode == "auto" and getattr(console, "interactive", False))


def slice_limit(clock, instret: int, length: int, deadline: int | None = None,
                budget: int | None = None) -> int:
    """The ``instret`` at which a run slice ends: after ``length`` instructions, at the
    instruction where ``clock`` reaches the timer ``deadline`` (in mtime ticks: so a
    timer interrupt arrives at the same instruction every run), or at ``budget``;
    never before one more instruction.  The bare board and the VMM both slice so."""
    limit = instret + length
    if deadline is not None:
        at = clock.instret_at(deadline)
        if at is not None:
            limit = min(limit, max(at, instret + 1))
    if budget is not None:
        limit = min(limit, max(budget, instret + 1))
    return limit


# Polling loops (see MachineTime.guest_time): a read of the time CSR at the same
# place as the previous one, at most this many of the hart's instructions later, is
# a poll; and a polling loop's time jumps by at most this many ticks at a time.
POLL_WINDOW = 256
MAX_WARP_TICKS = TIMEBASE_HZ // 1000          # 1 ms


class PollState:
    """One hart's last read of the time CSR: where, when, and since when it polls."""
    __slots__ = ("site", "at", "since")

    def __init__(self):
        self.site = None
        self.at = 0
        self.since = None


class MachineTime:
    """Time as a machine's devices see it, for a machine with ``clock``, ``hart``
    and ``rtc_base_ns`` (the board, and the VMM's host), ``next_wake()``: the next
    timer or alarm deadline still to come, in mtime ticks, or None, and
    ``others_asleep()``: whether every hart but the running one sleeps."""

    def retired(self) -> int:
        """The instructions the clock counts (a machine with several harts: all of
        theirs, riscv/smp.py)."""
        return self.hart.instret

    def mtime(self) -> int:
        return self.clock.mtime(self.retired())

    def set_mtime(self, value: int) -> None:
        self.clock.set_mtime(self.retired(), value)

    def guest_time(self, p: PollState, site: int, count: int) -> int:
        """The time CSR, read by a (virtual) hart whose reads ``p`` records, at pc
        ``site``, when it has retired ``count`` instructions.

        A guest that busy-waits reads the time in a short loop until a deadline
        passes (udelay, a firmware's countdown).  At a nominal 1 GHz every guest
        millisecond of such a loop would cost a million interpreted instructions
        for nothing.  So a read at the same site within ``POLL_WINDOW``
        instructions of the previous one is a poll, and from the second poll on
        time jumps ahead by as much as the loop has already waited (doubling the
        wait each time, so a wait of any length costs a few dozen polls), by at
        most ``MAX_WARP_TICKS``, and never past the next timer deadline, so
        interrupts come exactly when they are due.  It is as if the hart had
        slept between two reads, which a real one may do; it depends only on
        what the guest executes, so runs still repeat exactly.  Only while every
        other (virtual) hart sleeps, though: with another one busy, the poller
        burns its turn as a real CPU would, and the busy one keeps its share of
        guest time.  Host time (``--clock host``) is never skipped, nor icount time
        with ``sleep`` off: a benchmark of how long a read of the time takes is a
        polling loop too, and skipping its "waits" brings it timer ticks it would not
        see in the microseconds it really lasts."""
        now = self.mtime()
        if not self.clock.deterministic or not self.clock.sleep:
            return now
        if p.site == site and count - p.at <= POLL_WINDOW:
            if p.since is None:
                p.since = now
            elif self.others_asleep():
                target = now + max(1, min(now - p.since, MAX_WARP_TICKS))
                wake = self.next_wake()             # (a deadline still to come)
                if wake is not None:
                    target = min(target, wake)
                if target > now:
                    self.clock.skip_to(self.retired(), target)
                    now = self.mtime()
                    self.hart.limit = 0     # the slice was sized for the old time: size
                                            # it again (a deadline reached raises its irq)
        else:
            p.since = None
        p.site, p.at = site, count
        return now

    def rtc_ns(self) -> int:
        return self.rtc_base_ns + self.clock.ns(self.retired())

    def clock_stats(self) -> dict:
        """For --stats: the icount rate, and the waits of polling loops skipped."""
        c = self.clock
        if not c.deterministic:
            return {}
        return {"icount_ips": c.ips,
                "time_polls_skipped": f"{c.polls_skipped:,} "
                                      f"({c.poll_skipped_ticks / c.timebase:.3f} guest s)"}

    def rtc_alarm_ticks(self, rtc) -> int | None:
        """When (in mtime ticks) the goldfish RTC's alarm is due, if it is armed: a
        deadline an idle machine must wake for, as for a timer."""
        if rtc.alarm is None:
            return None
        ns = rtc.alarm - self.rtc_base_ns - rtc.offset
        return -(-ns * self.clock.timebase // 1_000_000_000) + self.clock.offset
