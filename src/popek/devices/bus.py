"""The MMIO bus: a sorted map of address ranges to devices.

Devices implement ``read(offset, size) -> int`` and ``write(offset, size, value)``
and see only offsets into their window.  Overlapping inserts are refused: two
devices claiming one address is a board bug, caught when the board is built.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class Mapping:
    base: int
    size: int
    device: object
    name: str

    @property
    def end(self) -> int:
        return self.base + self.size


class Bus:
    def __init__(self):
        self._bases: list[int] = []
        self._maps: list[Mapping] = []

    def add(self, base: int, size: int, device, name: str | None = None) -> Mapping:
        if size <= 0:
            raise ValueError("mapping size must be positive")
        m = Mapping(base, size, device, name or type(device).__name__)
        i = bisect.bisect_right(self._bases, base)
        if i > 0 and self._maps[i - 1].end > base:
            raise ValueError(f"{m.name} at {base:#x} overlaps {self._maps[i - 1].name}")
        if i < len(self._maps) and self._maps[i].base < m.end:
            raise ValueError(f"{m.name} at {base:#x} overlaps {self._maps[i].name}")
        self._bases.insert(i, base)
        self._maps.insert(i, m)
        return m

    def find(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            m = self._maps[i]
            if addr < m.end:
                return m
        return None

    def mappings(self) -> list[Mapping]:
        return list(self._maps)
