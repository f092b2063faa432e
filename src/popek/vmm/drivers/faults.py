"""Fault injection into drivers (``--inject-fault DEVICE:crash@N``): the driver of
physical device DEVICE fails while serving its request N+1, as a buggy driver would.
Where it fails is the placement's business (vmm/drivers/): the VMM's own driver
raises :class:`DriverCrash`, which ends the whole VMM; a driver domain crashes its
VM, which the VMM restarts.  ``crash@rand:SEED`` picks N from SEED (the same N for
the same seed, so a campaign of runs is repeatable).

``hang@N`` makes it stop answering instead, without dying: a driver domain spins
for ever, which the VMM's watchdog notices (no response within its time), kills and
restarts; the VMM's own driver hanging is the VMM hanging, which is reported as it
stops (a frozen test run would show nothing)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from popek.errors import ConfigError

RAND_MAX = 100                   # crash@rand:SEED picks N in 0..RAND_MAX
KINDS = ("crash", "hang")


@dataclass(frozen=True)
class FaultPlan:
    device: str                  # the --host-device id whose driver fails
    after: int                   # requests it serves before failing
    kind: str = "crash"          # or "hang"


def plans(faults: dict | None) -> dict[str, FaultPlan]:
    """``faults`` (device id → a FaultPlan, or a number of requests: a crash) as plans."""
    return {ident: p if isinstance(p, FaultPlan) else FaultPlan(ident, int(p))
            for ident, p in (faults or {}).items()}


class DriverCrash(Exception):
    """The VMM's own driver failed: nothing of the VMM can be trusted to go on."""

    def __init__(self, device: str, served: int, why: str, kind: str = "crash"):
        what = "crashed" if kind == "crash" else "hung, and the VMM's one thread with it,"
        super().__init__(f"the VMM's driver of {device} {what} after {served} requests "
                         f"({why})")
        self.device = device


def parse_inject_fault(text: str) -> FaultPlan:
    device, sep, what = text.partition(":")
    kind, at, when = what.partition("@")
    if not sep or not device or kind not in KINDS or not at:
        raise ConfigError(f"--inject-fault {text[:60]!r}: expected DEVICE:crash@N, "
                          "DEVICE:hang@N or DEVICE:crash@rand:SEED")
    if when.startswith("rand:"):
        seed = when[5:]
        if not seed.isdigit() or len(seed) > 18:
            raise ConfigError(f"--inject-fault {device}: rand:{seed[:20]}: a seed is a number")
        return FaultPlan(device, random.Random(int(seed)).randint(0, RAND_MAX), kind)
    if not when.isdigit() or len(when) > 9:
        raise ConfigError(f"--inject-fault {device}: {kind}@{when[:20]}: N is a number of "
                          "requests")
    return FaultPlan(device, int(when), kind)
