"""`popek kvm-check`: what this host's KVM really offers, measured.

Capabilities, which implementation it is (hardware VT-x/SVM, or a software one such
as PVM), and per-operation costs from a probe guest (guests/x86/probe.S) in ring 0
and in ring 3: a port-I/O exit and an MMIO exit handled by popek in Python, an
exit handled inside KVM (CPUID), HLT, and plain guest instructions.  Each is timed
over N operations, minus a run with N = 0; the best of three runs counts.
"""

from __future__ import annotations

import time
from pathlib import Path

from popek.kvm import abi, layout
from popek.kvm.machine import X86Machine, implementation
from popek.kvm.system import Kvm

PROBE = Path(__file__).resolve().parents[3] / "guests" / "x86" / "build" / "probe.elf"
RING3 = 0x100
# name → (probe test, {ring: N})
TESTS = {
    "port-I/O exit, handled by popek (Python)": (1, {0: 2000, 3: 2000}),
    "MMIO exit, handled by popek (Python)": (5, {0: 2000, 3: 2000}),
    "CPUID, handled inside KVM": (2, {0: 2000, 3: 2000}),
    "HLT, an exit to popek": (4, {0: 2000}),
    # Ring 3 runs natively even under PVM: it needs far more loops to be timed.
    "guest instruction (add + dec + jnz, per loop)": (3, {0: 200_000, 3: 50_000_000}),
}
NO_OP_IOCTL = "no-op ioctl from Python (KVM_CHECK_EXTENSION)"


class _Quiet:
    def write(self, data):
        pass


def _timed(test: int, n: int, probe: Path) -> float:
    # No in-kernel irqchip: HLT then exits to user space instead of waiting in KVM.
    m = X86Machine(str(probe), memory=4 << 20, console=_Quiet(), irqchip=False)
    m.resume_after_halt = True
    try:
        m.ram.write_int(layout.PROBE_PARAMS, 8, test)
        m.ram.write_int(layout.PROBE_PARAMS + 8, 8, n)
        t = time.perf_counter()
        if m.run(max_exits=n + 10) != 0:
            raise RuntimeError(f"probe test {test:#x} did not finish ({m.exit_reason})")
        return time.perf_counter() - t
    finally:
        m.close()


def _per_op(test: int, n: int, probe: Path, repeat: int = 3) -> float:
    base = min(_timed(test, 0, probe) for _ in range(repeat))
    full = min(_timed(test, n, probe) for _ in range(repeat))
    return max(full - base, 0.0) / n


def _ioctl_cost(kvm: Kvm, n: int = 20_000) -> float:
    t = time.perf_counter()
    for _ in range(n):
        kvm.check_extension(0)
    return (time.perf_counter() - t) / n


def measure(probe: Path = PROBE, scale: float = 1.0) -> dict[tuple[str, int], float]:
    """Seconds per operation, by (test name, ring); ``scale`` shrinks N for quick runs."""
    out = {}
    for name, (test, counts) in TESTS.items():
        for ring, n in counts.items():
            n = max(10, int(n * scale))
            out[(name, ring)] = _per_op(test | (RING3 if ring == 3 else 0), n, probe)
    kvm = Kvm()
    try:
        out[(NO_OP_IOCTL, 3)] = _ioctl_cost(kvm)
    finally:
        kvm.close()
    return out


def host_summary() -> list[str]:
    kvm = Kvm()
    try:
        caps = {name: kvm.check_extension(cap) for name, cap in abi.CAPS.items()}
        return ["popek kvm-check",
                f"  /dev/kvm            API version {kvm.api_version}",
                f"  implementation      {implementation()}",
                "  capabilities        " + ", ".join(f"{k}={v}" for k, v in caps.items())]
    finally:
        kvm.close()


def table(costs: dict[tuple[str, int], float]) -> list[str]:
    lines = [f"  {'measured on this host, per operation':50s} {'ring 0 µs':>10s} {'ring 3 µs':>10s}"]
    names = list(TESTS) + [NO_OP_IOCTL]
    for name in names:
        cells = []
        for ring in (0, 3):
            v = costs.get((name, ring))
            cells.append(f"{v * 1e6:10.4g}" if v is not None else f"{'-':>10s}")
        lines.append(f"  {name:50s} {cells[0]} {cells[1]}")
    lines.append("  (-: not applicable; HLT is privileged, the ioctl is the host process's)")
    return lines


def report(probe: Path = PROBE) -> str:
    lines = host_summary()
    if not probe.exists():
        lines.append("  (no probe guest: build it with `make -C guests/x86`)")
        return "\n".join(lines)
    return "\n".join(lines + table(measure(probe)))
