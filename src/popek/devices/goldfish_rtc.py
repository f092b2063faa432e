"""Goldfish RTC (Android emulator's, as on QEMU virt): wall-clock time in ns.

    0x00 TIME_LOW (reading it latches TIME_HIGH)   0x04 TIME_HIGH
    0x08 ALARM_LOW (writing it arms the alarm)      0x0c ALARM_HIGH
    0x10 IRQ_ENABLED   0x14 CLEAR_ALARM   0x18 ALARM_STATUS   0x1c CLEAR_INTERRUPT

``now_ns`` is a callable giving the guest's wall-clock time; the machine derives
it from the guest clock, so it is deterministic under the deterministic clock.
"""

from __future__ import annotations


class GoldfishRtc:
    SIZE = 0x1000

    def __init__(self, now_ns, irq=None):
        self.now_ns = now_ns
        self.irq = irq or (lambda level: None)
        self.offset = 0              # guest writes to TIME move the clock
        self.latched_high = 0
        self.alarm_high = 0
        self.alarm = None
        self.irq_enabled = 0
        self.fired = False

    def time(self) -> int:
        return self.now_ns() + self.offset

    def read(self, off: int, size: int) -> int:
        if off == 0x00:
            t = self.time()
            self.latched_high = t >> 32
            return t & 0xFFFFFFFF
        if off == 0x04:
            return self.latched_high
        if off == 0x08:
            return (self.alarm or 0) & 0xFFFFFFFF
        if off == 0x0C:
            return ((self.alarm or 0) >> 32) & 0xFFFFFFFF
        if off == 0x10:
            return self.irq_enabled
        if off == 0x18:
            return int(self.alarm is not None)
        return 0

    def write(self, off: int, size: int, value: int) -> None:
        value &= 0xFFFFFFFF
        if off == 0x00:
            self.offset += ((self.time() >> 32 << 32) | value) - self.time()
        elif off == 0x04:
            self.offset += ((value << 32) | (self.time() & 0xFFFFFFFF)) - self.time()
        elif off == 0x08:
            self.alarm = (self.alarm_high << 32) | value
            self.fired = False
            self.irq(False)
            self.poll()
        elif off == 0x0C:
            self.alarm_high = value
        elif off == 0x10:
            self.irq_enabled = value & 1
            self.irq(bool(self.fired and self.irq_enabled))
            self.poll()
        elif off == 0x14:
            self.alarm = None
        elif off == 0x1C:
            self.fired = False
            self.irq(False)

    def poll(self) -> None:
        """Called periodically by the machine (and after the alarm's registers change):
        fire a due alarm.  The line is driven when something changed, not at every poll:
        the PLIC takes every raise as a new request (riscv/plic.py), as QEMU's does."""
        if self.alarm is not None and self.time() >= self.alarm:
            self.alarm = None
            self.fired = True
            self.irq(bool(self.irq_enabled))
