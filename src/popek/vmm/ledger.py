"""The exit ledger: per VM, how many exits of each reason, and what they cost.

Each exit a handler finishes is recorded under a *reason* (``csr``, ``sret``,
``page_fault_shadow``, ``mmio_read``, ...), with an optional detail (which CSR,
which device); reasons are charged the named costs of the VM's cost model
(costmodel.py) and the guest's cycle counter counts them.

A binary-translating VMM (vmm/cpu/bt.py) emulates most sensitive instructions with
*callouts* from its translation cache instead of exits: they are recorded under the
same reasons, in a table of their own, charged a callout's switch (``CALLOUT_ENTRY``
+ ``CALLOUT_RETURN``) instead of a trap's; a callout *coalesced* into the one before
it (a run of sensitive instructions handled in one VMM call) is charged its
emulation only.

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
    # Passthrough (vmm/io/passthrough.py): mapping a page of a device's BAR into the
    # VM's tables, once; a host interrupt routed to the VM and injected; reading an
    # IOMMU fault record (the DMA itself never exits: the IOMMU stops it).
    "passthrough_map": ("NESTED_FILL",),
    "passthrough_irq": ("REFLECT_TRAP",),
    "iommu_fault": ("EMULATE_MMIO",),
    # Driver domains (vmm/drivers/domain.py): the event that tells a domain of new
    # requests, injected as an interrupt.
    "domain_event": ("REFLECT_TRAP",),
}
# What getting to the VMM and back costs, by CPU strategy: a trap to M-mode and its
# return (trap-and-emulate), or a VM exit and entry (hardware assist).
TRAP_SWITCH = ("TRAP_ENTRY", "TRAP_RETURN")
VM_SWITCH = ("VM_EXIT", "VM_ENTRY")
CALLOUT_SWITCH = ("CALLOUT_ENTRY", "CALLOUT_RETURN")
# Where record() counts: an exit (default), a callout, a callout coalesced into the last,
# or more work of the callout being made (an interrupt injected as it returns).
EXIT, CALLOUT, COALESCED, WITHIN = 0, 1, 2, 3


def exit_cost(costs: CostModel, reason: str, switch: tuple | None = TRAP_SWITCH) -> int:
    """Modelled cycles of one exit for ``reason``: entry, emulation, return (``switch``
    None: the emulation alone)."""
    emulation = sum(costs[n] for n in REASON_COSTS.get(reason, ("EMULATE_CSR",)))
    return emulation if switch is None else costs[switch[0]] + emulation + costs[switch[1]]


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
        # Priced once: record() runs on every exit.  By channel: exit, callout, coalesced.
        self._priced = [({reason: exit_cost(costs, reason, sw) for reason in REASON_COSTS},
                         exit_cost(costs, "", sw))
                        for sw in (switch, CALLOUT_SWITCH, None)]
        self._priced.append(self._priced[COALESCED])      # WITHIN: the emulation alone too
        self._costs, self._other_cost = self._priced[EXIT]
        self.channel = EXIT               # set by a callout while it emulates (vmm/cpu/bt.py)
        self.counts: dict[str, int] = {}
        self.cycles: dict[str, float] = {}    # modelled cycles, or measured seconds
        self.details: dict[tuple[str, str], int] = {}
        self._detail_count: dict[str, int] = {}      # distinct details per reason
        # What the hardware did for the VM without an exit, and what it cost (hardware
        # assist: two-dimensional page walks), reported beside the exits.
        self.hardware: dict[str, int] = {}
        # Callouts (binary translation): by reason, counts and modelled cycles, and how
        # many were coalesced into the callout before them.
        self.callouts: dict[str, int] = {}
        self.callout_cycles: dict[str, int] = {}
        self.coalesced = 0
        self.within: dict[str, int] = {}      # work done within callouts, by reason
        self.within_cycles = 0

    def record(self, reason: str, detail: str = "", seconds: float = 0.0) -> None:
        if self.channel != EXIT:
            self._callout(reason)
        else:
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

    def _callout(self, reason: str) -> None:
        costs, other = self._priced[self.channel]
        cost = costs.get(reason, other)
        if self.charge is not None:
            self.charge(cost)
        if self.channel == WITHIN:
            self.within[reason] = self.within.get(reason, 0) + 1
            self.within_cycles += cost
            return
        if self.channel == COALESCED:
            self.coalesced += 1
        self.callouts[reason] = self.callouts.get(reason, 0) + 1
        self.callout_cycles[reason] = self.callout_cycles.get(reason, 0) + cost

    def callout_total(self) -> tuple[int, int]:
        """Callouts, and their modelled cycles with the work done within them."""
        return sum(self.callouts.values()), sum(self.callout_cycles.values()) + self.within_cycles
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
        if self.callouts:
            c, cc = self.callout_total()
            lines.append(f"  callouts (binary translation, no exit): {c:,}, {cc:,} modelled "
                         f"cycles; {self.coalesced:,} of them coalesced into the one before")
            lines.append("    " + ", ".join(f"{r} {self.callouts[r]:,}" for r in
                                           sorted(self.callouts, key=lambda r: -self.callouts[r]))
                         + "".join(f"; within them: {r} {n:,}" for r, n in self.within.items()))
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
