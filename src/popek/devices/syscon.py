"""The sifive_test / syscon power device at 0x0010_0000 (QEMU virt's "test").

A 32-bit write to offset 0 with the low half

    0x5555  powers off (exit code 0)
    0x3333  powers off with failure, exit code = value >> 16
    0x7777  resets the machine

Firmware finds it through the device tree's syscon-poweroff / syscon-reboot nodes.
"""

from __future__ import annotations

FINISHER_FAIL, FINISHER_PASS, FINISHER_RESET = 0x3333, 0x5555, 0x7777


class SysCon:
    SIZE = 0x1000

    def __init__(self, machine):
        self.machine = machine

    def read(self, off: int, size: int) -> int:
        return 0

    def write(self, off: int, size: int, value: int) -> None:
        if off != 0:
            return
        code = value & 0xFFFF
        if code == FINISHER_PASS:
            self.machine.shutdown(0, "power off")
        elif code == FINISHER_FAIL:
            self.machine.shutdown((value >> 16) & 0xFFFF or 1, "power off (failure)")
        elif code == FINISHER_RESET:
            self.machine.request_reset()
