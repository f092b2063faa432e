"""`popek calibrate`: this host's measured exit costs as a cost profile.

The simulated machine's ledger charges named costs (:mod:`popek.costmodel`).  Those
that have a counterpart on real hardware are replaced by measurements of KVM here,
converted to cycles of the guest TSC; the rest keep their documented defaults, and
each entry of the profile says which it is and where its number came from:

* TRAP_ENTRY, TRAP_RETURN: half each of an exit handled inside KVM and resumed
  (CPUID from ring 0); hardware cannot tell the two halves apart;
* VM_EXIT, VM_ENTRY (what ``--vmm hw``'s exits cost): the same round trip, which on
  this host *is* a VM exit and entry, halved the same way;
* EMULATE_SBI: a hypercall handled by the user-space VMM: a port-I/O exit handled
  in Python from ring 0, minus the in-kernel round trip already charged;
* EMULATE_MMIO: an MMIO exit handled in Python from ring 0, minus that round trip;
* WFI_IDLE: a HLT exit to the VMM, minus that round trip.
"""

from __future__ import annotations

import datetime
import json
import platform

from popek import costmodel
from popek.files import write_atomically
from popek.kvm import check
from popek.kvm.machine import implementation
from popek.kvm.system import Kvm

PIO = "port-I/O exit, handled by popek (Python)"
MMIO = "MMIO exit, handled by popek (Python)"
CPUID = "CPUID, handled inside KVM"
HLT = "HLT, an exit to popek"


def tsc_khz() -> int:
    kvm = Kvm()
    try:
        vm = kvm.create_vm()
        try:
            vcpu = vm.create_vcpu(0)
            try:
                return vcpu.tsc_khz()
            finally:
                vcpu.close()
        finally:
            vm.close()
    finally:
        kvm.close()


def profile(measured: dict[tuple[str, int], float], khz: int) -> dict:
    cycles = lambda seconds: max(0, round(seconds * khz * 1000))     # noqa: E731
    round_trip = measured[(CPUID, 0)]
    derived = {
        "TRAP_ENTRY": (round_trip / 2, "half of a CPUID exit from ring 0, handled in KVM"),
        "TRAP_RETURN": (round_trip / 2, "half of a CPUID exit from ring 0, handled in KVM"),
        "VM_EXIT": (round_trip / 2, "half of a CPUID exit from ring 0, handled in KVM"),
        "VM_ENTRY": (round_trip / 2, "half of a CPUID exit from ring 0, handled in KVM"),
        "EMULATE_SBI": (measured[(PIO, 0)] - round_trip,
                        "port-I/O exit handled in Python, minus the in-kernel round trip"),
        "EMULATE_MMIO": (measured[(MMIO, 0)] - round_trip,
                         "MMIO exit handled in Python, minus the in-kernel round trip"),
        "WFI_IDLE": (measured[(HLT, 0)] - round_trip,
                     "HLT exit to the VMM, minus the in-kernel round trip"),
    }
    costs = {}
    for name, default in costmodel.DEFAULTS.items():
        if name in derived:
            seconds, how = derived[name]
            costs[name] = {"cycles": cycles(seconds), "from": f"measured: {how} "
                                                             f"({seconds * 1e6:.3f} µs)"}
        else:
            costs[name] = {"cycles": default, "from": "default (costmodel.py)"}
    return {
        "format": costmodel.PROFILE_FORMAT,
        "source": f"popek calibrate on {platform.node()}, KVM {implementation()}, "
                  f"TSC {khz / 1000:.1f} MHz, {datetime.date.today().isoformat()}",
        "tsc_khz": khz,
        "measured_us": {f"{name} (ring {ring})": round(s * 1e6, 4)
                        for (name, ring), s in measured.items()},
        "costs": costs,
    }


def calibrate(path: str, scale: float = 1.0) -> str:
    """Measure, write the profile to ``path``; a summary for the console."""
    measured = check.measure(scale=scale)
    data = profile(measured, tsc_khz())
    write_atomically(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())
    lines = [f"popek: wrote {path}", f"  {data['source']}"]
    for name, entry in data["costs"].items():
        lines.append(f"  {name:14s} {entry['cycles']:>10,d} cycles  {entry['from']}")
    return "\n".join(lines)
