"""`popek kvm-check`: what this host's KVM really offers, measured.

Capabilities, which implementation it is (hardware VT-x/SVM, or a software one such
as PVM), and per-operation costs from a probe guest (guests/x86/probe.S) in ring 0:
a port-I/O exit handled by popek in Python, an exit handled inside KVM (CPUID), and
plain guest instructions.  Each is timed over N operations, minus a run with N = 0.
"""

from __future__ import annotations

import time
from pathlib import Path

from popek.kvm import abi
from popek.kvm.machine import X86Machine, implementation
from popek.kvm.system import Kvm

PROBE = Path(__file__).resolve().parents[3] / "guests" / "x86" / "build" / "probe.elf"
TESTS = {"port-I/O exit, handled by popek (Python)": (1, 2000),
         "CPUID, handled inside KVM": (2, 2000),
         "guest instruction (add + dec + jnz)": (3, 200_000)}


class _Quiet:
    def write(self, data):
        pass


def _timed(test: int, n: int, probe: Path) -> float:
    m = X86Machine(str(probe), memory=4 << 20, console=_Quiet())
    try:
        m.ram.write_int(0x8000, 8, test)
        m.ram.write_int(0x8008, 8, n)
        t = time.perf_counter()
        if m.run(max_exits=n + 10) != 0:
            raise RuntimeError(f"probe test {test} did not finish")
        return time.perf_counter() - t
    finally:
        m.close()


def measure(probe: Path = PROBE) -> dict[str, float]:
    """Seconds per operation, by test name."""
    out = {}
    for name, (test, n) in TESTS.items():
        base = min(_timed(test, 0, probe) for _ in range(3))
        full = min(_timed(test, n, probe) for _ in range(3))
        out[name] = max(full - base, 0.0) / n
    return out


def report(probe: Path = PROBE) -> str:
    kvm = Kvm()
    try:
        caps = {name: kvm.check_extension(cap) for name, cap in abi.CAPS.items()}
        lines = ["popek kvm-check",
                 f"  /dev/kvm            API version {kvm.api_version}",
                 f"  implementation      {implementation()}",
                 "  capabilities        " + ", ".join(f"{k}={v}" for k, v in caps.items()),
                 "  measured in ring 0 on this host (per operation):"]
    finally:
        kvm.close()
    if not probe.exists():
        lines.append("    (no probe guest: build it with `make -C guests/x86`)")
        return "\n".join(lines)
    for name, secs in measure(probe).items():
        lines.append(f"    {name:44s} {secs * 1e6:10.3f} µs")
    lines.append("  ring 3 costs: not measured yet (the probe runs in ring 0 only)")
    return "\n".join(lines)
