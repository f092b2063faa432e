"""A scripted console for benchmarks that note the machine's counters as the guest
prints: at the end of each line, ``snapshot()`` is called and (line, what it returned)
kept, so a benchmark can take differences between two of the guest's lines; and
``starts`` has, for each line, what ``snapshot()`` returned at its first byte (a
benchmark's result line is printed after its timed work: its start ends the work,
without the exits of printing it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from popek.console import ScriptedConsole                       # noqa: E402


class LineSnapshots(ScriptedConsole):
    def __init__(self, snapshot=None):
        super().__init__()
        self.snapshot = snapshot                  # (set once the machine exists)
        self.lines: list[tuple[str, object]] = []
        self.starts: list[object] = []
        self._partial = b""
        self._start = None

    def write(self, data: bytes) -> None:
        super().write(data)
        if data and not self._partial:
            self._start = self.snapshot()
        self._partial += data
        while b"\n" in self._partial:
            line, self._partial = self._partial.split(b"\n", 1)
            self.lines.append((line.decode(errors="replace"), self.snapshot()))
            self.starts.append(self._start)
            self._start = self.snapshot() if self._partial else None
