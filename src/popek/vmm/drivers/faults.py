"""Fault injection into drivers (``--inject-fault DEVICE:crash@N``): the driver of
physical device DEVICE fails while serving its request N+1, as a buggy driver would.
Where it fails is the placement's business (vmm/drivers/): the VMM's own driver
raises :class:`DriverCrash`, which ends the whole VMM; a driver domain crashes its
VM, which the VMM restarts.  ``crash@rand:SEED`` picks N from SEED (the same N for
the same seed, so a campaign of runs is repeatable)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from popek.errors import ConfigError

RAND_MAX = 100                   # crash@rand:SEED picks N in 0..RAND_MAX


@dataclass(frozen=True)
class FaultPlan:
    device: str                  # the --host-device id whose driver fails
    after: int                   # requests it serves before failing


class DriverCrash(Exception):
    """The VMM's own driver failed: nothing of the VMM can be trusted to go on."""

    def __init__(self, device: str, served: int, why: str):
        super().__init__(f"the VMM's driver of {device} crashed after {served} requests "
                         f"({why})")
        self.device = device


def parse_inject_fault(text: str) -> FaultPlan:
    device, sep, what = text.partition(":")
    kind, at, when = what.partition("@")
    if not sep or not device or kind != "crash" or not at:
        raise ConfigError(f"--inject-fault {text[:60]!r}: expected DEVICE:crash@N or "
                          "DEVICE:crash@rand:SEED")
    if when.startswith("rand:"):
        seed = when[5:]
        if not seed.isdigit() or len(seed) > 18:
            raise ConfigError(f"--inject-fault {device}: rand:{seed[:20]}: a seed is a number")
        return FaultPlan(device, random.Random(int(seed)).randint(0, RAND_MAX))
    if not when.isdigit() or len(when) > 9:
        raise ConfigError(f"--inject-fault {device}: crash@{when[:20]}: N is a number of "
                          "requests")
    return FaultPlan(device, int(when))
