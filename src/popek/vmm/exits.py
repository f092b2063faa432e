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


# Reasons, with the names of the costs (costmodel) each is charged, plus trap entry
# and return.  Looked up at charge time, so a loaded cost profile applies.
REASON_COSTS = {
    "csr": ("EMULATE_CSR",),
    "sret": ("EMULATE_XRET",),
    "wfi": ("WFI_IDLE",),
    "sfence_vma": ("TLB_FLUSH", "EMULATE_CSR"),
    "sbi": ("EMULATE_SBI",),
    "mmio_read": ("EMULATE_MMIO",),
    "mmio_write": ("EMULATE_MMIO",),
    "page_fault_shadow": ("SHADOW_FILL",),
    "page_fault_guest": ("REFLECT_TRAP",),
    "exception_reflected": ("REFLECT_TRAP",),
    "ecall_user": ("REFLECT_TRAP",),
    "interrupt": ("REFLECT_TRAP",),
    "counter": ("EMULATE_CSR",),
}


def exit_cost(reason: str) -> int:
    """Modelled cycles of one exit for ``reason``: entry, emulation, return."""
    return C.TRAP_ENTRY + sum(getattr(C, n) for n in REASON_COSTS.get(reason, ("EMULATE_CSR",))) \
        + C.TRAP_RETURN


class Ledger:
    """Per VM: counts and cost per exit reason (and detail).

    The simulated backend charges modelled cycles (``costmodel``, as they stand when
    the ledger is made: a ``--cost-profile`` is loaded before any VM exists); the KVM
    backend (``measured=True``) records the host time each exit really took to handle."""

    def __init__(self, charge=None, measured: bool = False):
        self.charge = charge              # callable(cycles): the CPU's cycle counter counts them
        self.measured = measured
        # Priced once: record() runs on every exit.
        self._costs = {reason: exit_cost(reason) for reason in REASON_COSTS}
        self._other_cost = exit_cost("")
        self.counts: dict[str, int] = {}
        self.cycles: dict[str, float] = {}    # modelled cycles, or measured seconds
        self.details: dict[tuple[str, str], int] = {}

    def record(self, reason: str, detail: str = "", seconds: float = 0.0) -> None:
        if self.measured:
            cost = seconds
        else:
            cost = self._costs.get(reason, self._other_cost)
            if self.charge is not None:
                self.charge(cost)
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.cycles[reason] = self.cycles.get(reason, 0) + cost
        if detail:
            self.note(reason, detail)

    def note(self, reason: str, detail: str, n: int = 1) -> None:
        """Count ``n`` under (reason, detail) without charging an exit (e.g. batched PTEs)."""
        key = (reason, detail)
        self.details[key] = self.details.get(key, 0) + n

    def total(self) -> tuple[int, float]:
        return sum(self.counts.values()), sum(self.cycles.values())

    def report(self, title: str) -> str:
        n, cost = self.total()
        if self.measured:
            lines = [f"{title}: {n:,} exits, {cost:.3f} s handling them in popek",
                     f"  {'reason':22s} {'count':>10s} {'host µs/exit':>14s}"]
            for reason in sorted(self.counts, key=lambda r: -self.cycles[r]):
                per = self.cycles[reason] / self.counts[reason] * 1e6
                lines.append(f"  {reason:22s} {self.counts[reason]:10,d} {per:14.2f}")
        else:
            lines = [f"{title}: {n:,} exits, {cost:,} modelled cycles",
                     f"  {'reason':22s} {'count':>10s} {'cycles':>14s}"]
            for reason in sorted(self.counts, key=lambda r: -self.cycles[r]):
                lines.append(f"  {reason:22s} {self.counts[reason]:10,d} "
                             f"{self.cycles[reason]:14,d}")
        top = sorted(self.details.items(), key=lambda kv: -kv[1])[:8]
        if top:
            lines.append("  most frequent: " + ", ".join(f"{r}:{d} {c:,}" for (r, d), c in top))
        return "\n".join(lines)
