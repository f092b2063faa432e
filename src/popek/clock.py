"""Guest time: a deterministic clock driven by retired instructions, or host time.

Both give ``mtime`` in ticks of the timebase (10 MHz, as on QEMU virt).

* :class:`InstructionClock` (the default): time advances by ``timebase / ips``
  ticks per retired instruction, ``ips`` being a nominal guest speed.  Runs and
  their measurements repeat exactly.  When the hart sleeps in wfi with nothing
  pending, the clock jumps to the next timer event instead of spinning.
* :class:`HostClock`: ``mtime`` follows the host's monotonic clock, like QEMU
  without -icount; a sleeping hart really sleeps.
"""

from __future__ import annotations

import time

TIMEBASE_HZ = 10_000_000
# Nominal guest speed of the deterministic clock.  Chosen near popek's real
# interpreter speed so that a guest second takes roughly a wall second (firmware
# countdowns and timeouts then behave as their authors expect).
DEFAULT_IPS = 2_000_000


class InstructionClock:
    deterministic = True

    def __init__(self, ips: int = DEFAULT_IPS, timebase: int = TIMEBASE_HZ):
        if ips <= 0:
            raise ValueError("instructions per second must be positive")
        self.ips = ips
        self.timebase = timebase
        self.skipped = 0          # instructions' worth of time skipped while idle
        self.offset = 0           # ticks added by guest writes to mtime

    def mtime(self, instret: int) -> int:
        return (instret + self.skipped) * self.timebase // self.ips + self.offset

    def set_mtime(self, instret: int, value: int) -> None:
        self.offset += value - self.mtime(instret)

    def instret_at(self, ticks: int) -> int:
        """The retired-instruction count at which ``mtime`` reaches ``ticks``."""
        icount = -(-(ticks - self.offset) * self.ips // self.timebase)
        return icount - self.skipped

    def idle_until(self, instret: int, ticks: int | None, wait_input) -> None:
        """Pass idle time: jump to ``ticks`` (or wait for host input if no timer is set)."""
        if ticks is None:
            wait_input(None)
            return
        need = self.instret_at(ticks)
        if need > instret:
            self.skipped += need - instret

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

    def idle_until(self, instret: int, ticks: int | None, wait_input) -> None:
        if ticks is None:
            wait_input(None)
            return
        delay = (ticks - self.mtime(instret)) / self.timebase
        if delay > 0:
            wait_input(delay)

    def ns(self, instret: int) -> int:
        return time.monotonic_ns() - self.start


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


class MachineTime:
    """Time as a machine's devices see it, for a machine with ``clock``, ``hart``
    and ``rtc_base_ns`` (the board, and the VMM's host)."""

    def mtime(self) -> int:
        return self.clock.mtime(self.hart.instret)

    def set_mtime(self, value: int) -> None:
        self.clock.set_mtime(self.hart.instret, value)

    def rtc_ns(self) -> int:
        return self.rtc_base_ns + self.clock.ns(self.hart.instret)

    def rtc_alarm_ticks(self, rtc) -> int | None:
        """When (in mtime ticks) the goldfish RTC's alarm is due, if it is armed: a
        deadline an idle machine must wake for, as for a timer."""
        if rtc.alarm is None:
            return None
        ns = rtc.alarm - self.rtc_base_ns - rtc.offset
        return -(-ns * self.clock.timebase // 1_000_000_000) + self.clock.offset
