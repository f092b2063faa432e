"""Warnings about what a guest did, logged once per kind and counted after that.

A guest can repeat a mistake millions of times (a request without a status byte
in every notify, an unsupported HTIF command in a loop); the host's log must not
grow with it.  The first of each kind is a warning, the rest go to debug.
"""

from __future__ import annotations

import logging


class GuestWarnings:
    """One owner's (a device's) warnings: the first of each kind logged, all counted."""

    def __init__(self, logger: logging.Logger):
        self.log = logger
        self.counts: dict[str, int] = {}

    def warn(self, kind: str, fmt: str, *args) -> None:
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        (self.log.warning if n == 1 else self.log.debug)(fmt, *args)

    def total(self) -> int:
        return sum(self.counts.values())
