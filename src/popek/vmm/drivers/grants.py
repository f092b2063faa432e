"""Grants: which guest pages a driver domain may reach, and for how long (after Xen's
grant tables).  The VMM grants, on the guest's behalf, each page a request's data is
in, to the domain serving the request; the domain names a page only by its grant
reference, maps it into its grant window (vmm/drivers/domain.py: an IOMMU mapping,
for its device's DMA), and every grant of a request is revoked when its response
comes (or its domain dies).

A reference is an index into a bounded table with a generation above it, so a
revoked reference never names the grant that later takes its entry."""

from __future__ import annotations

from dataclasses import dataclass, field

INDEX_BITS = 12
MAX_GRANTS = 1 << INDEX_BITS     # 4096: more than SLOTS × PIECES (blkif.py) can use


@dataclass
class Grant:
    hpa: int                     # the granted page, host-physical
    writable: bool               # the domain's device may write it (data for a read)
    request: int                 # the ring request it belongs to
    slots: list = field(default_factory=list)    # where the domain mapped it


class GrantTable:
    def __init__(self):
        self.entries: list[Grant | None] = [None] * MAX_GRANTS
        self.generations = [0] * MAX_GRANTS
        self.free = list(range(MAX_GRANTS - 1, -1, -1))
        self.by_request: dict[int, list[int]] = {}      # request → its entries' indices
        self.granted = self.revoked = 0

    def __len__(self) -> int:
        return MAX_GRANTS - len(self.free)

    def grant(self, hpa: int, writable: bool, request: int) -> int | None:
        """A reference to page ``hpa`` for ``request``, or None if the table is full."""
        if not self.free:
            return None
        i = self.free.pop()
        self.entries[i] = Grant(hpa & ~0xFFF, writable, request)
        self.by_request.setdefault(request, []).append(i)
        self.granted += 1
        return self.generations[i] << INDEX_BITS | i

    def lookup(self, ref: int) -> Grant | None:
        """The live grant ``ref`` names (None: never granted, or revoked since)."""
        i, gen = ref & (MAX_GRANTS - 1), ref >> INDEX_BITS
        g = self.entries[i]
        return g if g is not None and self.generations[i] == gen else None

    def revoke(self, request: int) -> list[int]:
        """Revoke every grant of ``request``; the window slots they were mapped at."""
        slots = []
        for i in self.by_request.pop(request, ()):
            slots += self.entries[i].slots
            self.entries[i] = None
            self.generations[i] = (self.generations[i] + 1) & 0xFFFFF
            self.free.append(i)
            self.revoked += 1
        return slots
