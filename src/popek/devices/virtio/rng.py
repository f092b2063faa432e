"""virtio-rng, the entropy device (virtio v1.2, section 5.4): one request queue, no
config space, no features.  Each chain's writable buffers are filled from the
host's ``os.urandom``, ``MAX_REQUEST`` bytes at most per request (the device may
return fewer bytes than the buffers hold, 5.4.6.1), so a driver offering huge
buffers costs no huge allocation.
"""

from __future__ import annotations

import os

MAX_REQUEST = 64 << 10


class VirtioRng:
    device_id = 4
    name = "rng"
    num_queues = 1
    queue_max = 64
    features = 0

    def __init__(self, mem):
        self.mem = mem
        self.stats = {"requests": 0, "bytes": 0}

    def describe(self) -> str:
        return "virtio-rng (host os.urandom)"

    def reset(self) -> None:
        pass

    def negotiated(self, features: int) -> None:
        pass

    def read_config(self, off: int, size: int) -> int:
        return 0

    def write_config(self, off: int, size: int, value: int) -> None:
        pass

    def process(self, queue: int, chain) -> int:
        budget = MAX_REQUEST
        written = 0
        for addr, length in chain.writable:
            n = min(length, budget - written)
            if n <= 0:
                break
            self.mem.write(addr, os.urandom(n))
            written += n
        self.stats["requests"] += 1
        self.stats["bytes"] += written
        return written
