"""HTIF: the host-target interface of Spike and riscv-tests, through the ELF's
``tohost``/``fromhost`` words in RAM.

A store to ``tohost`` is a command ``dev<<56 | cmd<<48 | payload``:

* dev 0, cmd 0, payload odd: the test ended; exit code ``payload >> 1``.
* dev 0, cmd 0, payload even: a pointer to ``magic_mem[8]`` holding a syscall
  (64 = write(fd, buf, len), 93 = exit(code)); the result goes to magic_mem[0].
* dev 1, cmd 1: write the character in the low byte to the console.

The device watches the page holding ``tohost`` (so a store reaches it at once,
not at the next poll), clears ``tohost`` and answers in ``fromhost``.
"""

from __future__ import annotations

import logging

from popek.guestlog import GuestWarnings

log = logging.getLogger(__name__)


class Htif:
    def __init__(self, machine, tohost: int, fromhost: int | None):
        self.machine = machine
        self.ram = machine.ram
        self.tohost = tohost
        self.fromhost = fromhost
        self.warnings = GuestWarnings(log)        # a guest's repeated mistakes: logged once
        self.ram.watch((tohost - self.ram.base) >> 12, self._written)

    def _raw(self, addr: int, value: int | None = None) -> int:
        # Direct RAM access without notifying watchers (we are the watcher).
        off = addr - self.ram.base
        if value is None:
            return int.from_bytes(self.ram.data[off:off + 8], "little")
        self.ram.data[off:off + 8] = value.to_bytes(8, "little")
        return value

    def _written(self, off: int, length: int) -> None:
        t = self.tohost - self.ram.base
        if off >= t + 8 or off + length <= t:
            return
        cmd = self._raw(self.tohost)
        if cmd == 0:
            return
        self._raw(self.tohost, 0)
        dev, op, payload = cmd >> 56, (cmd >> 48) & 0xFF, cmd & ((1 << 48) - 1)
        if dev == 0 and op == 0:
            if payload & 1:
                self.machine.shutdown(payload >> 1, "HTIF exit")
                return
            self._syscall(payload)
            self._reply(1)
        elif dev == 1 and op == 1:
            self.machine.console.write(bytes([payload & 0xFF]))
            self._reply((1 << 56) | (1 << 48))
        else:
            self.warnings.warn("command", "HTIF: unsupported command %#x", cmd)

    def _reply(self, value: int) -> None:
        if self.fromhost is not None:
            self._raw(self.fromhost, value)

    def _syscall(self, ptr: int) -> None:
        ram = self.ram
        try:
            which, a0, a1, a2 = (ram.read_int(ptr + 8 * i, 8) for i in range(4))
            if which == 64:                       # write(fd, buf, len)
                if a0 in (1, 2):
                    self.machine.console.write(ram.read(a1, a2))
                ram.write_int(ptr, 8, a2)
            elif which == 93:                     # exit(code)
                self.machine.shutdown(a0, "HTIF exit")
            else:
                self.warnings.warn("syscall", "HTIF: unsupported syscall %d", which)
                ram.write_int(ptr, 8, (-38) & ((1 << 64) - 1))   # -ENOSYS
        except Exception as e:                    # a hostile pointer: the guest's problem
            self.warnings.warn("block", "HTIF: bad syscall block at %#x: %s", ptr, e)
