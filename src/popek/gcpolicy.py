"""How often CPython's cycle collector runs while a guest runs.

The simulated machine's caches hold hundreds of thousands of long-lived,
GC-tracked objects: decoded blocks, the interpreter's closures and their cells,
translated functions.  With CPython's default thresholds (700, 10, 10) the heap
growing by a quarter sets off a full collection, and a boot grows it five times
over: each full collection walks every cached object and finds nothing to free
(a cache entry dies by reference count when it is evicted, not by the collector).
On OpenSBI+U-Boot that was 5 full collections, 0.37 s of a 4 s boot.

While a guest runs, young objects are collected in larger batches and the old
generation only rarely; cyclic garbage (rare here: caught exceptions, a
discarded machine) is still found, just later.  The caller's settings come back
on exit, so a library user's own policy is left alone.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager

RUNNING_THRESHOLDS = (20_000, 2, 1000)


@contextmanager
def guest_running():
    saved = gc.get_threshold()
    gc.set_threshold(*RUNNING_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*saved)
