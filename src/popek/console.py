"""Where a guest's console goes: the host terminal, or a script (tests, benchmarks).

A console has ``write(bytes)`` for guest output, ``poll() -> bytes`` for input
that has arrived, ``wait(timeout)`` to sleep until input may be there, and
``input_possible()``: whether any input may still come (a machine whose guest
waits for nothing else ends its run when none can).
"""

from __future__ import annotations

import os
import re
import select
import sys
import time

CTRL_A = 0x01


class StdioConsole:
    """The host's stdin/stdout.  On a terminal, keys pass through raw; Ctrl-A x quits
    (as in QEMU), Ctrl-A Ctrl-A sends a literal Ctrl-A."""

    def __init__(self, stdin=None, stdout=None, on_quit=None):
        self.inp = stdin if stdin is not None else sys.stdin
        self.out = stdout if stdout is not None else sys.stdout.buffer
        self.on_quit = on_quit
        self.fd = None
        self._saved = None
        self._escape = False
        self.eof = False
        try:
            self.fd = self.inp.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None
        # A person at a terminal (clock.idle_waits: an idle guest then waits in real time)
        self.interactive = self.fd is not None and os.isatty(self.fd)
        if self.interactive:
            import termios
            import tty
            self._saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)

    def close(self) -> None:
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def write(self, data: bytes) -> None:
        if self._saved is not None:
            data = data.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
        self.out.write(data)
        self.out.flush()

    def poll(self) -> bytes:
        if self.fd is None or self.eof:
            return b""
        ready, _, _ = select.select([self.fd], [], [], 0)
        if not ready:
            return b""
        data = os.read(self.fd, 4096)
        if not data:
            self.eof = True
            return b""
        if self._saved is None:
            return data
        return self._filter(data)

    def _filter(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            if self._escape:
                self._escape = False
                if b in (ord("x"), ord("X")) and self.on_quit:
                    self.on_quit()
                elif b == CTRL_A:
                    out.append(b)
            elif b == CTRL_A:
                self._escape = True
            else:
                out.append(b)
        return bytes(out)

    def input_possible(self) -> bool:
        """Whether input may still come (not at the end of stdin)."""
        return self.fd is not None and not self.eof

    def wait(self, timeout: float | None) -> None:
        if self.fd is None or self.eof:
            if timeout:
                time.sleep(min(timeout, 0.1))
            return
        select.select([self.fd], [], [], 0.1 if timeout is None else min(timeout, 0.1))


class ScriptedConsole:
    """Plays a console session: waits for each expected output, then types a reply.

    ``steps`` is a list of ``(expect, send)``: ``expect`` a regular expression (bytes
    or str) searched in the output after the previous match, ``send`` what to type.
    """

    def __init__(self, steps=(), echo=None):
        self.steps = [(re.compile(e.encode() if isinstance(e, str) else e),
                       s.encode() if isinstance(s, str) else s) for e, s in steps]
        self.output = bytearray()
        self.pos = 0
        self.echo = echo
        self.interactive = False

    def write(self, data: bytes) -> None:
        self.output += data
        if self.echo is not None:
            self.echo.write(data)
            self.echo.flush()

    def poll(self) -> bytes:
        if not self.steps:
            return b""
        pattern, send = self.steps[0]
        m = pattern.search(self.output, self.pos)
        if not m:
            return b""
        self.pos = m.end()
        self.steps.pop(0)
        return send

    def input_possible(self) -> bool:
        """Whether the script has more to type."""
        return bool(self.steps)

    def wait(self, timeout: float | None) -> None:
        if timeout:
            time.sleep(min(timeout, 0.01))

    def done(self) -> bool:
        return not self.steps

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def close(self) -> None:
        pass
