"""Binary translation: the guest's sensitive instructions are rewritten, before they
first run, into calls of the VMM's emulation (``--vmm bt``), as VMware's VMM did on
x86 before VT-x.

The guest runs deprivileged in U-mode as under trap-and-emulate, with shadow paging,
but the hart does not run its code as it is: as it decodes a block (hart/blocks.py,
the translation cache: blocks, and their Python translations once hot), it applies
this module's :func:`rewrite` (translate.py's rewrite hook), which turns every
sensitive instruction into a *callout*:

    rewritten                          why sensitive
    csrr*/csrw* of every CSR but       privileged state (sstatus, satp, stvec, ...),
    fflags/frm/fcsr                    the counters; and a hole's CSR (holes.py),
                                       which would not even trap
    sret, wfi, sfence.vma              privilege, idling, translation
    ecall                              a hypercall from the kernel, a system call
                                       from its processes

A callout (``Hart.callout``) calls :meth:`BinaryTranslation.callout` in-line: the
same emulation as trap-and-emulate's exit handlers (this class is one), but with no
trap and no exit: the ledger counts it as a callout and charges ``CALLOUT_ENTRY +
<emulation> + CALLOUT_RETURN`` (costmodel.py) instead of a trap's entry and return.
Every other instruction runs as it is.  The guest's user code runs directly: the
rewrite cannot know which mode code will run in (it sees an instruction and its
address), so a callout made in the guest's user mode runs the instruction itself,
unrewritten, which traps (an exit, as under trap-and-emulate: a system call, an
illegal instruction) or does what a hole does.  What exits besides: page faults
(shadow fills, MMIO, the guest's own faults) and the exceptions its code takes.

**Coalescing.** A callout that follows the one before it with only plain
computation in between (no jump, branch, load or store: at most ``COALESCE_GAP``
such instructions, e.g. the ``li`` that loads a CSR mask) is the same VMM call
continued: charged its emulation only, and counted as coalesced (an exit avoided
beyond the callouts' own).  A trap handler's run of ``csrr scause; csrr stval;
csrr sepc`` is one call.

The translation cache is invalidated when guest code is written (the hart's
self-modifying-code watch) and whenever the hart changes rewrite (a VM of another
strategy runs on it: hypervisor.switch_to), since a block decoded for one flavour
must not run for another.
"""

from __future__ import annotations

import dataclasses

from popek.riscv import isa
from popek.riscv.csrs import S
from popek.vmm.cpu.trap_emulate import SYSTEM_EXITS, TrapAndEmulate
from popek.vmm.exits import CsrAccess, Ecall
from popek.vmm.ledger import CALLOUT, COALESCED, EXIT, WITHIN

FP_CSRS = (0x001, 0x002, 0x003)           # fflags, frm, fcsr: user state, run natively
REWRITTEN = ("sret", "wfi", "sfence.vma", "ecall")
COALESCE_GAP = 4                          # plain instructions a coalesced run may skip
MAX_GAPS = 4096                           # remembered gaps (_continues): a bound, then forgotten
MAX_DIRECT_OPS = 1024                     # user-mode sensitive instructions' own ops (_direct)
M64 = (1 << 64) - 1
_CALLOUTS: dict[str, isa.Insn] = {}


def _callout(original: isa.Insn) -> isa.Insn:
    """The callout that stands for ``original``: its own block (no register of the
    block's in a local while the VMM reads and writes ``x``), setting the pc itself."""
    c = _CALLOUTS.get(original.name)
    if c is None:
        c = _CALLOUTS[original.name] = isa.Insn(
            "callout", original.fmt, original.match, original.mask, "h.callout(PC, INSN)",
            kind=isa.CALLOUT, ends_block=True, may_trap=True, alone=True)
    return c


def rewrite(pc: int, d: isa.Decoded) -> isa.Decoded:
    """The rewrite hook (translate.py): a sensitive instruction becomes a callout.  It
    depends on nothing but its arguments (a compile worker applies it too)."""
    i = d.insn
    if (i.kind == isa.CSR and d.csr not in FP_CSRS) or i.name in REWRITTEN:
        return dataclasses.replace(d, insn=_callout(i))
    return d


class BinaryTranslation(TrapAndEmulate):
    """The CPU strategy of one VM: trap-and-emulate's handlers, called by callouts."""
    name = "bt"
    REWRITE = "popek.vmm.cpu.bt:rewrite"

    def __init__(self, vm):
        super().__init__(vm)
        self._after = None                # (pc, instret) where the last callout left off
        self._plain: dict[tuple, bool] = {}   # (from, to, instructions): plain code between
        self._ops: dict[tuple, object] = {}   # (pc, bits): the unrewritten instruction's op

    def activate(self) -> None:
        super().activate()
        self.hart.callout_hook = self.callout

    def deactivate(self) -> None:
        super().deactivate()
        self.hart.callout_hook = None
        self._after = None

    def callout(self, pc: int, word: int) -> None:
        """Emulate the sensitive instruction ``word`` at ``pc`` on the virtual CPU; in the
        guest's user mode, run it as it is (its code runs directly)."""
        h, vm = self.hart, self.vm
        d = h.isa.decode(word)
        if vm.vcpu.priv != S:
            self._direct(pc, d)
            return
        name = d.insn.name
        e = CsrAccess(pc, d) if d.insn.kind == isa.CSR else \
            (Ecall(pc) if name == "ecall" else SYSTEM_EXITS[name](pc, d))
        self.pull_page()
        led = vm.ledger
        led.channel = COALESCED if self._continues(pc) else CALLOUT
        try:
            vm.handlers[type(e)](vm, e)
            led.channel = WITHIN          # (an interrupt it injects: the same call's work)
            self.resume(e)
        finally:
            led.channel = EXIT
        self._after = (h.pc, h.instret + 1)       # (the callout retires as an instruction)

    def _direct(self, pc: int, d: isa.Decoded) -> None:
        """The instruction itself, as the hart runs it unrewritten: it traps (an exit,
        handled as trap-and-emulate handles it) or, on a CPU with a hole, does what
        the hole does."""
        key = (pc, d.word)
        op = self._ops.get(key)
        if op is None:
            if len(self._ops) >= MAX_DIRECT_OPS:
                self._ops.clear()
            op = self._ops[key] = isa.make_op(self.hart, d, pc, True)
        self.hart.pc = (pc + d.length) & M64
        op()

    def _continues(self, pc: int) -> bool:
        """Whether the callout at ``pc`` continues the last one's VMM call: reached from
        where it left off through at most COALESCE_GAP plain instructions."""
        if self._after is None:
            return False
        start, instret = self._after
        gap = self.hart.instret - instret
        if pc == start and gap == 0:
            return True
        if not 0 < gap <= COALESCE_GAP or not 0 < pc - start <= 4 * COALESCE_GAP:
            return False
        key = (start, pc, gap)
        plain = self._plain.get(key)
        if plain is None:
            if len(self._plain) >= MAX_GAPS:
                self._plain.clear()
            plain = self._plain[key] = self._plain_run(start, pc, gap)
        return plain

    def _plain_run(self, start: int, end: int, n: int) -> bool:
        """Whether ``n`` instructions from ``start`` are plain computation ending at
        ``end``.  (Remembered per address: should the guest rewrite that code, a stale
        answer misprices a callout, nothing more.)"""
        fetch, decode = self.vm.memory.guest_fetch, self.hart.isa.decode
        at = start
        for _ in range(n):
            word = fetch(at)
            if word is None:
                return False
            d = decode(word)
            if d.insn.kind not in (isa.ALU, isa.MULDIV) or d.insn.may_trap:
                return False
            at += d.length
        return at == end

    def stats(self) -> dict:
        n, _ = self.vm.ledger.callout_total()
        return {**super().stats(), "callouts": n, "callouts_coalesced": self.vm.ledger.coalesced,
                "bt_gaps_known": f"{len(self._plain):,} (at most {MAX_GAPS:,})",
                "bt_direct_ops": f"{len(self._ops):,} (at most {MAX_DIRECT_OPS:,})"}
