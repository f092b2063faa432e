"""popek's driver-domain block interface, the VMM's side (the domain's is
guests/kernel/blkif.h; keep the two the same): the shared ring's layout in the
domain's RAM and the hypercall numbers.  After Xen's blkif: the VMM produces
requests, the domain responses; a request's data is grant references."""

from __future__ import annotations

import struct

SLOTS = 16                       # requests in flight at most
PIECES = 64                      # pieces of a request at most
RING_PAGES = 3
OP_READ, OP_WRITE, OP_FLUSH = 0, 1, 2
OK = 0

# struct blkif_ring: four u32 indices, 48 bytes reserved, then the requests and responses
REQ_PROD, REQ_CONS, RSP_PROD, RSP_CONS = 0, 4, 8, 12
REQUESTS = 64
REQUEST = struct.Struct("<QIIQ")              # id, op, npieces, sector; then the pieces
PIECE = struct.Struct("<IHH")                 # ref, offset, len
REQUEST_SIZE = REQUEST.size + PIECES * PIECE.size
RESPONSES = REQUESTS + SLOTS * REQUEST_SIZE
RESPONSE = struct.Struct("<QiI")              # id, status, reserved
RING_BYTES = RESPONSES + SLOTS * RESPONSE.size
assert RING_BYTES <= RING_PAGES * 4096

FID_DOMAIN_ATTACH, FID_GRANT_MAP, FID_DOMAIN_NOTIFY = 7, 8, 9
MAP_OP = struct.Struct("<II")                 # ref, slot
WINDOW_SLOTS = SLOTS * PIECES
WINDOW_BASE = 0x2_0000_0000                   # the grant window in a domain's physical space
WINDOW_BYTES = WINDOW_SLOTS * 4096


def pack_request(rid: int, op: int, sector: int, pieces) -> bytes:
    """A request as the domain reads it: ``pieces`` are (ref, offset, length)."""
    return REQUEST.pack(rid, op, len(pieces), sector) + \
        b"".join(PIECE.pack(*p) for p in pieces)
