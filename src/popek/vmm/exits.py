"""Exits: one record type for every reason the guest stops and the VMM runs,
and the ledger that counts them and charges their modelled cycles.

The same :class:`Exit` reasons serve the KVM backend (issue 5), whose exits
become these records too, so exit handling and accounting are shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from popek import costmodel as C


# What stopped the guest.  The simulated backend makes these from traps that reach
# M-mode; the KVM backend will make them from KVM_RUN's exit reasons.
ILLEGAL = "illegal"            # a privileged (or illegal) instruction: emulate or reflect
ECALL = "ecall"                # a hypercall (from the guest kernel) or a system call
PAGE_FAULT = "page_fault"      # shadow miss, guest fault, or device access
EXCEPTION = "exception"        # anything else the guest itself must handle
INTERRUPT = "interrupt"
# Exits as KVM reports them (x86-64 backend).
PORT_IO = "port_io"            # cause = port, tval = (direction, size, count, data offset)
MMIO = "mmio"                  # cause = address, tval = (is_write, length)
HALT = "halt"
SHUTDOWN = "shutdown"          # tval = KVM's exit reason


@dataclass(frozen=True)
class Exit:
    """One exit: what happened (``kind``), the trap cause, its value, and where."""
    kind: str
    cause: int
    tval: int
    pc: int

    @staticmethod
    def from_trap(cause: int, tval: int, epc: int, interrupt: bool) -> "Exit":
        if interrupt:
            return Exit(INTERRUPT, cause, tval, epc)
        kind = {2: ILLEGAL, 8: ECALL, 12: PAGE_FAULT, 13: PAGE_FAULT, 15: PAGE_FAULT}.get(
            cause, EXCEPTION)
        return Exit(kind, cause, tval, epc)


# Reasons, with the emulation cost each is charged (plus trap entry and return).
REASON_COSTS = {
    "csr": C.EMULATE_CSR,
    "sret": C.EMULATE_XRET,
    "wfi": C.WFI_IDLE,
    "sfence_vma": C.TLB_FLUSH + C.EMULATE_CSR,
    "sbi": C.EMULATE_SBI,
    "mmio_read": C.EMULATE_MMIO,
    "mmio_write": C.EMULATE_MMIO,
    "page_fault_shadow": C.SHADOW_FILL,
    "page_fault_guest": C.REFLECT_TRAP,
    "exception_reflected": C.REFLECT_TRAP,
    "ecall_user": C.REFLECT_TRAP,
    "interrupt": C.REFLECT_TRAP,
    "counter": C.EMULATE_CSR,
}


class Ledger:
    """Per VM: counts and modelled cycles per exit reason (and detail)."""

    def __init__(self, charge=None):
        self.charge = charge              # callable(cycles): the CPU's cycle counter counts them
        self.counts: dict[str, int] = {}
        self.cycles: dict[str, int] = {}
        self.details: dict[tuple[str, str], int] = {}

    def record(self, reason: str, detail: str = "") -> None:
        cost = C.TRAP_ENTRY + REASON_COSTS.get(reason, C.EMULATE_CSR) + C.TRAP_RETURN
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.cycles[reason] = self.cycles.get(reason, 0) + cost
        if self.charge is not None:
            self.charge(cost)
        if detail:
            self.note(reason, detail)

    def note(self, reason: str, detail: str, n: int = 1) -> None:
        """Count ``n`` under (reason, detail) without charging an exit (e.g. batched PTEs)."""
        key = (reason, detail)
        self.details[key] = self.details.get(key, 0) + n

    def total(self) -> tuple[int, int]:
        return sum(self.counts.values()), sum(self.cycles.values())

    def report(self, title: str) -> str:
        n, cyc = self.total()
        lines = [f"{title}: {n:,} exits, {cyc:,} modelled cycles",
                 f"  {'reason':22s} {'count':>10s} {'cycles':>14s}"]
        for reason in sorted(self.counts, key=lambda r: -self.cycles[r]):
            lines.append(f"  {reason:22s} {self.counts[reason]:10,d} {self.cycles[reason]:14,d}")
        top = sorted(self.details.items(), key=lambda kv: -kv[1])[:8]
        if top:
            lines.append("  most frequent: " + ", ".join(f"{r}:{d} {c:,}" for (r, d), c in top))
        return "\n".join(lines)
