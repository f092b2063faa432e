"""A Popek–Goldberg checker: is an ISA variant virtualizable?  Decided by running
every instruction on the simulated hart, not from a list
(``popek analyze virtualizable [--cpu VARIANT]``).

Popek and Goldberg (1974) split a machine's instructions:

* *privileged*: traps in user mode and not in supervisor mode;
* *control-sensitive*: changes the privileged state (the mode, translation,
  interrupt enables, where traps go ...);
* *behaviour-sensitive*: its result depends on the mode, or on privileged state
  (where memory really is, among it).

Theorem 1: a trap-and-emulate VMM can be built if every sensitive instruction is
privileged.  Theorem 3: a *hybrid* VMM (one that interprets the guest's supervisor
code and runs only its user code directly) can be built if every *user-sensitive*
instruction (sensitive when it runs in user mode) is privileged.

How this checker decides.  Each instruction form of the variant's table (its
operand fields set to chosen registers; the CSR instructions once per CSR number,
0 to 4095, reading and writing, with and without a destination) runs on one hart,
one instruction at a time (the interpreter's own closure, isa.make_op), from four
chosen states: S-mode and U-mode, each from state A and from state B.  The two
states differ in every privileged register (sstatus's SIE, SPIE, SPP, SUM, MXR;
stvec, sepc, scause, stval, sscratch, sie, senvcfg, scounteren; the M-mode trap
registers; satp's ASID and root) and in where memory really is (the same virtual
pages on other physical pages); the user-visible state is the same.  M-mode is set
up as a trap-and-emulate VMM sets it: no exception delegated, ``mcounteren`` 0,
TVM, TW and TSR clear (and the S-level interrupts delegated, as firmware does, so
that S-mode sees its ``sie`` and ``sip``; none is pending).  Then, for each run that does not trap:

* it is control-sensitive if the privileged state afterwards differs from before
  (every CSR of S level and above but the counters, with mstatus.FS left out: the
  FPU's dirty flag is set by user code by design; the privilege; wfi's waiting;
  TLB flushes);
* it is behaviour-sensitive if what it leaves the program (x and f registers,
  fcsr, pc, the data page) differs between S and U from the same state, or
  between A and B in the same mode, or if it traps from one of A and B and not
  from the other.

Instructions that trap in every run (ecall, ebreak, mret, M-mode CSRs) are not
holes: the VMM gets control.  The verdict names every sensitive instruction that
runs in U-mode without trapping (Theorem 1), and every one that is sensitive in
U-mode (Theorem 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from popek.devices.bus import Bus
from popek.devices.memory import GuestMemory
from popek.riscv import csrs, isa
from popek.riscv.csrs import M, S, U
from popek.riscv.hart import Hart
from popek.riscv.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X
from popek.riscv.traps import Trap

M64 = (1 << 64) - 1
RAM_BASE = 0x8000_0000
PAGE = 4096
CODE_VA, DATA_VA = 0x10000, 0x20000
# Physical pages: code; data in state A and in state B (relocated); page tables.
CODE_PA = RAM_BASE
DATA_PA = {"A": RAM_BASE + 1 * PAGE, "B": RAM_BASE + 5 * PAGE}
TABLES_PA = {("A", S): RAM_BASE + 8 * PAGE, ("A", U): RAM_BASE + 11 * PAGE,
             ("B", S): RAM_BASE + 14 * PAGE, ("B", U): RAM_BASE + 17 * PAGE}
RAM_SIZE = 32 * PAGE
RD, RS1, RS2 = 5, 6, 7          # operand registers of the forms (t0, t1, t2)
ONES = 28                       # t3: all ones, what the CSR forms write
SATP_SV39 = 8 << 60
FS_INITIAL = 1 << 13

# The privileged registers of the two states (M-mode's configuration, the same in
# both, is the VMM's: see the module's docstring).
STATUS_BITS = (csrs.MSTATUS_SIE | csrs.MSTATUS_SPIE | csrs.MSTATUS_SPP | csrs.MSTATUS_SUM
               | csrs.MSTATUS_MXR | csrs.MSTATUS_MPIE)
STATES = {
    "A": dict(status=0, stvec=0x1000, sepc=0x3000, scause=2, stval=0, sscratch=0, mie=0,
              senvcfg=0, scounteren=0, mtvec=0x5000, mepc=0x6000, mcause=3, mtval=0,
              mscratch=0, asid=1),
    "B": dict(status=STATUS_BITS, stvec=0x2000, sepc=0x4000, scause=8, stval=0xDEAD,
              sscratch=0x5555, mie=csrs.S_INTERRUPTS, senvcfg=1, scounteren=7,
              mtvec=0x7000, mepc=0x8000, mcause=11, mtval=0xBEEF, mscratch=0xAAAA, asid=2),
}
RUNS = ((S, "A"), (S, "B"), (U, "A"), (U, "B"))
COUNTERS = {"cycle", "time", "instret", "mcycle", "minstret"}


class _Machine:
    """Just enough machine for a hart: RAM, an empty bus, a clock that counts instructions."""

    def __init__(self):
        self.ram = GuestMemory(RAM_BASE, RAM_SIZE)
        self.bus = Bus()

    def guest_time(self, poll, site: int, count: int) -> int:
        return count


@dataclass
class Result:
    """One instruction form's runs, and what they make it."""
    text: str                        # the form, disassembled
    insn: str                        # its table name (csrrw, add, ...)
    csr: str | None = None           # the CSR, for the CSR instructions
    traps: dict = field(default_factory=dict)   # (mode, state) -> trap cause or None
    control: set = field(default_factory=set)   # modes in which it changed privileged state
    behaviour: set = field(default_factory=set)  # "mode", and/or modes where A and B differ

    def trapped(self, mode: int) -> bool:
        return all(self.traps[(mode, st)] is not None for st in "AB")

    @property
    def privileged(self) -> bool:
        return self.trapped(U) and not self.trapped(S)

    @property
    def always_traps(self) -> bool:
        return self.trapped(U) and self.trapped(S)

    @property
    def sensitive(self) -> bool:
        return bool(self.control or self.behaviour)

    @property
    def user_sensitive(self) -> bool:
        return U in self.control or U in self.behaviour

    def kinds(self) -> str:
        out = []
        if self.control:
            out.append("control")
        if self.behaviour:
            why = sorted({"mode" if b == "mode" else "state" for b in self.behaviour})
            out.append(f"behaviour ({', '.join(why)})")
        return ", ".join(out) or "-"


@dataclass
class Report:
    variant: str
    results: list
    runs: int

    @property
    def theorem1_violations(self) -> list:
        """Sensitive, yet it runs in U-mode without trapping."""
        return [r for r in self.results if r.sensitive and not r.trapped(U)]

    @property
    def theorem3_violations(self) -> list:
        return [r for r in self.results if r.user_sensitive]

    @property
    def virtualizable(self) -> bool:
        return not self.theorem1_violations


class Checker:
    """One hart of ``variant`` and the chosen states; :meth:`run` runs one form."""

    def __init__(self, variant: isa.Isa):
        self.variant = variant
        self.hart = h = Hart(_Machine(), isa_variant=variant)
        self.ram = h.ram
        self.data = bytes((i * 37 + 11) & 0xFF for i in range(PAGE))
        for (st, mode), root in TABLES_PA.items():
            self._map(root, DATA_PA[st], PTE_U if mode == U else 0)
        # (read, mask) of every CSR of S level and above but the counters; a status
        # register without FS and SD.
        fs = csrs.MSTATUS_FS | csrs.MSTATUS_SD
        self.priv_csrs = [(c.read, M64 & ~fs if c.name.endswith("status") else M64)
                          for n, c in sorted(h.csrs.by_number.items())
                          if (n >> 8) & 3 and c.name not in COUNTERS
                          and not c.name.startswith(("mhpmcounter", "hpmcounter"))]
        # Every run starts from one of four states: their privileged state, once.
        self.initial = {}
        for mode, st in RUNS:
            self._reset(mode, st)
            self.initial[(mode, st)] = self._privileged_state()

    def _map(self, root: int, data_pa: int, user: int) -> None:
        """Sv39: CODE_VA and DATA_VA through a root, a level-1 and a level-0 table."""
        l1, l0 = root + PAGE, root + 2 * PAGE
        ptr = PTE_V
        leaf = PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | user
        for addr, value in ((root, (l1 >> 12) << 10 | ptr), (l1, (l0 >> 12) << 10 | ptr),
                            (l0 + 8 * (CODE_VA >> 12), (CODE_PA >> 12) << 10 | leaf),
                            (l0 + 8 * (DATA_VA >> 12), (data_pa >> 12) << 10 | leaf)):
            self.ram.write(addr, value.to_bytes(8, "little"))

    def _reset(self, mode: int, st: str) -> None:
        h, s = self.hart, STATES[st]
        h.set_priv(M)
        h.x[:] = [0] + [DATA_VA + 0x100 + 8 * i for i in range(1, 32)] + [0]
        h.x[ONES] = M64
        h.f[:] = [0x3FF0_0000_0000_0000 + i for i in range(32)]
        h.fflags = h.frm = 0
        h.mstatus = (csrs.MSTATUS_UXL | csrs.MSTATUS_SXL | s["status"]
                     | (FS_INITIAL if h.fs_writable else 0))
        h.medeleg = h.mcounteren = 0
        h.mideleg = csrs.S_INTERRUPTS             # as firmware: S-mode sees sie and sip
        h.mie, h.mip_sw = s["mie"], 0
        h._recompute_mip()
        for name in ("stvec", "sepc", "scause", "stval", "sscratch", "senvcfg", "scounteren",
                     "mtvec", "mepc", "mcause", "mtval", "mscratch"):
            setattr(h, name, s[name])
        h.waiting = False
        h.reservation = None
        h.set_satp(SATP_SV39 | s["asid"] << 44 | TABLES_PA[(st, mode)] >> 12)
        self.flushes = h.stats["tlb_flushes"]         # (set_satp's own flush is not the run's)
        h.stats["tlb_page_flushes"] = 0
        self.ram.write(DATA_PA[st], self.data)
        h.set_priv(mode)

    def _privileged_state(self) -> tuple:
        h = self.hart
        return (h.priv, h.virt, h.waiting, h.stats["tlb_flushes"] - self.flushes,
                h.stats["tlb_page_flushes"], tuple(read(h) & mask for read, mask in self.priv_csrs))

    def _program_state(self, st: str) -> tuple:
        h = self.hart
        return (tuple(h.x[1:32]), tuple(h.f), h.fflags, h.frm, h.pc,
                self.ram.read(DATA_PA[st], PAGE))

    def run(self, word: int, csr: str | None = None) -> Result:
        d = self.variant.decode(word)
        text = isa.disassemble(d, CODE_VA)
        if csr is not None:
            text = text.replace(f", {d.csr:#x},", f", {csr},")
        r = Result(text, d.insn.name, csr)
        outcome = {}
        for mode, st in RUNS:
            self._reset(mode, st)
            self.ram.write(CODE_PA, word.to_bytes(4, "little"))
            h = self.hart
            h.pc = CODE_VA + d.length
            op = isa.make_op(h, d, CODE_VA, True)
            try:
                op()
                r.traps[(mode, st)] = None
            except Trap as t:
                r.traps[(mode, st)] = t.cause
                continue
            if self._privileged_state() != self.initial[(mode, st)]:
                r.control.add(mode)
            outcome[(mode, st)] = self._program_state(st)
        for st in "AB":
            if (S, st) in outcome and (U, st) in outcome and outcome[(S, st)] != outcome[(U, st)]:
                r.behaviour.add("mode")
        for mode in (S, U):
            if (mode, "A") in outcome and (mode, "B") in outcome \
                    and outcome[(mode, "A")] != outcome[(mode, "B")]:
                r.behaviour.add(mode)
            if (r.traps[(mode, "A")] is None) != (r.traps[(mode, "B")] is None):
                r.behaviour.add(mode)         # whether it traps depends on privileged state
        return r


def _forms(variant: isa.Isa):
    """(word, CSR name or None) for every instruction form of the table: operand
    fields where the encoding leaves them free; the CSR instructions for every CSR
    number, with rd x0 and t0, writing t3 (all ones) or x0 (0), and the immediate
    forms with 0 and 31."""
    names = csrs.csr_file(csrs.hart_parts(variant))
    for i in variant.insns:
        free = ~i.mask & 0xFFFFFFFF
        if i.kind != isa.CSR:
            fields = RD << 7 | RS1 << 15 | RS2 << 20
            yield i.match | (fields & free), None
            continue
        for num in range(4096):
            name = names.by_number[num].name if num in names.by_number else None
            for rd in (0, RD):
                for src in (0, 31 if i.fmt == "CSRI" else ONES):
                    yield i.match | num << 20 | src << 15 | rd << 7, name or f"{num:#05x}"


def analyze(variant: isa.Isa, progress=None) -> Report:
    checker = Checker(variant)
    forms = list(_forms(variant))
    results = []
    for k, (word, csr) in enumerate(forms):
        results.append(checker.run(word, csr))
        if progress is not None:
            progress(k + 1, len(forms))
    return Report(variant.name, results, len(forms) * len(RUNS))


# -- the report -------------------------------------------------------------------
def _row_groups(report: Report) -> list:
    """(label, results) for every instruction and every CSR with a sensitive form or a
    privileged one: instructions by name, the CSR instructions by CSR."""
    groups: dict = {}
    for r in report.results:
        if r.sensitive or r.privileged:
            groups.setdefault(r.insn if r.csr is None else f"csr {r.csr}", []).append(r)
    return sorted(groups.items(), key=lambda kv: (kv[0].startswith("csr "), kv[0]))


def _u_column(results: list) -> str:
    """"traps", or how many of its sensitive forms run in U-mode: a hole."""
    running = sum(1 for r in results if r.sensitive and not r.trapped(U))
    return "traps" if not running else f"RUNS ({running} form{'s' * (running > 1)}): a hole"


def _kinds(results: list) -> str:
    control = any(r.control for r in results)
    why = sorted({"mode" if b == "mode" else "state" for r in results for b in r.behaviour})
    out = (["control"] if control else []) + ([f"behaviour ({', '.join(why)})"] if why else [])
    return ", ".join(out) or "not sensitive"


def _offenders(results: list) -> str:
    by_group: dict = {}
    for r in results:
        by_group.setdefault(r.insn if r.csr is None else f"csr {r.csr}", []).append(r.text)
    return "; ".join(f"{g} ({'; '.join(texts)})" for g, texts in by_group.items())


def format_report(report: Report) -> str:
    rows = _row_groups(report)
    always = sorted({r.insn for r in report.results if r.always_traps and r.csr is None})
    named = {r.csr for r in report.results if r.csr and not r.csr.startswith("0x")}
    runs_somewhere = {r.csr for r in report.results if r.csr and not r.always_traps}
    always_csrs = len(named - runs_somewhere)
    unimplemented = len({r.csr for r in report.results if r.csr and r.csr.startswith("0x")})
    innocuous = sum(1 for r in report.results if not r.sensitive and not r.trapped(U))
    w = max(len("instruction / CSR"), *(len(label) for label, _ in rows)) + 2
    lines = [f"Popek–Goldberg analysis of {report.variant}: {len(report.results):,} instruction "
             f"forms (the CSR instructions for every CSR number), {report.runs:,} runs in "
             f"S- and U-mode from two states",
             "",
             f"  {'instruction / CSR'.ljust(w)}{'in S-mode':11}{'in U-mode':28}sensitive"]
    for label, results in rows:
        s_col = "runs" if any(not r.trapped(S) for r in results) else "traps"
        lines.append(f"  {label.ljust(w)}{s_col:11}{_u_column(results):28}{_kinds(results)}")
    lines += ["",
              f"  trap in both modes (the VMM gets them): {' '.join(always)}; the CSR "
              f"instructions on {always_csrs} CSRs (M-mode's, and the counters mcounteren "
              f"hides) and on the {unimplemented:,} numbers no CSR has",
              f"  innocuous (run in U-mode, not sensitive): {innocuous:,} forms", ""]
    t1, t3 = report.theorem1_violations, report.theorem3_violations
    lines.append("Theorem 1 (every sensitive instruction is privileged: a trap-and-emulate VMM "
                 "can be built): " + ("holds" if not t1 else "FAILS: " + _offenders(t1)))
    lines.append("Theorem 3 (every user-sensitive instruction is privileged: a hybrid VMM "
                 "can be built): " + ("holds" if not t3 else "FAILS: " + _offenders(t3)))
    lines.append(f"{report.variant} is " + ("virtualizable" if not t1 else
                 "not virtualizable by trap-and-emulate" + (" (a hybrid VMM would do)"
                                                            if not t3 else "")))
    return "\n".join(lines)
