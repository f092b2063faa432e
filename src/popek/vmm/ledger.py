"""The exit ledger: per VM, how many exits of each reason, and what they cost.

Each exit a handler finishes is recorded under a *reason* (``csr``, ``sret``,
``page_fault_shadow``, ``mmio_read``, ...), with an optional detail (which CSR,
which device); reasons are charged the named costs of the VM's cost model
(costmodel.py) and the guest's cycle counter counts them.

Reasons are the VMM's own words, but details can be the guest's (an SBI extension
number, an MMIO address on KVM): a reason keeps at most ``MAX_DETAILS`` of them,
and counts the rest under ``other``, so no guest can grow the ledger.
"""

from __future__ import annotations

from popek.costmodel import CostModel

MAX_DETAILS = 64                  # distinct details per reason; the rest are "other"


# Reasons, with the names of the costs (costmodel) each is charged, plus trap entry
# and return; priced once per ledger from its machine's cost model.
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
    "page_fault_nested": ("NESTED_FILL",),
}
# What getting to the VMM and back costs, by CPU strategy: a trap to M-mode and its
# return (trap-and-emulate), or a VM exit and entry (hardware assist).
TRAP_SWITCH = ("TRAP_ENTRY", "TRAP_RETURN")
VM_SWITCH = ("VM_EXIT", "VM_ENTRY")


def exit_cost(costs: CostModel, reason: str, switch: tuple = TRAP_SWITCH) -> int:
    """Modelled cycles of one exit for ``reason``: entry, emulation, return."""
    return costs[switch[0]] + sum(costs[n] for n in REASON_COSTS.get(reason, ("EMULATE_CSR",))) \
        + costs[switch[1]]


class Ledger:
    """Per VM: counts and cost per exit reason (and detail).

    The simulated backend charges modelled cycles (its machine's :class:`CostModel`);
    the KVM backend (``measured=True``) records the host time each exit really took
    to handle."""

    def __init__(self, charge=None, measured: bool = False, costs: CostModel | None = None,
                 switch: tuple = TRAP_SWITCH):
        self.charge = charge              # callable(cycles): the CPU's cycle counter counts them
        self.measured = measured
        costs = costs or CostModel()
        # Priced once: record() runs on every exit.
        self._costs = {reason: exit_cost(costs, reason, switch) for reason in REASON_COSTS}
        self._other_cost = exit_cost(costs, "", switch)
        self.counts: dict[str, int] = {}
        self.cycles: dict[str, float] = {}    # modelled cycles, or measured seconds
        self.details: dict[tuple[str, str], int] = {}
        self._detail_count: dict[str, int] = {}      # distinct details per reason
        # What the hardware did for the VM without an exit, and what it cost (hardware
        # assist: two-dimensional page walks), reported beside the exits.
        self.hardware: dict[str, int] = {}

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
        count = self.details.get(key)
        if count is None:
            kinds = self._detail_count.get(reason, 0)
            if kinds >= MAX_DETAILS:
                key = (reason, "other")
                count = self.details.get(key)
            else:
                self._detail_count[reason] = kinds + 1
        self.details[key] = (count or 0) + n

    def add_hardware(self, name: str, n: int) -> None:
        self.hardware[name] = self.hardware.get(name, 0) + n

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
        if self.hardware:
            lines.append("  in hardware, no exit: " + ", ".join(f"{k} {v:,}"
                                                            for k, v in self.hardware.items()))
        top = sorted(self.details.items(), key=lambda kv: -kv[1])[:8]
        if top:
            lines.append("  most frequent: " + ", ".join(f"{r}:{d} {c:,}" for (r, d), c in top))
            full = sorted(r for r, n in self._detail_count.items() if n >= MAX_DETAILS)
            if full:
                lines.append(f"  details kept: {MAX_DETAILS} per reason, the rest under "
                             f"'other' ({', '.join(full)})")
        return "\n".join(lines)
