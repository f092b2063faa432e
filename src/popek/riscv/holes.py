"""CPUs with virtualization holes: RV64GC with a sensitive instruction that does not
trap in U-mode (``--cpu rv64gc-readhole``, ``--cpu rv64gc-writehole``).

Popek and Goldberg (1974): a trap-and-emulate VMM can be built when every
*sensitive* instruction (one that reads or changes privileged state, or behaves by
the mode it runs in) is *privileged* (traps in user mode).  RISC-V meets that: a CSR
instruction naming a CSR above the current privilege traps (csrs.access).  x86
before VT-x did not, and these variants recreate its two kinds of hole on sstatus,
the register that holds the interrupt enable (like x86's EFLAGS.IF):

    variant            from U-mode                          like x86's
    rv64gc-readhole    csrr sstatus reads the real register PUSHF (and SMSW, SGDT, ...):
                       instead of trapping                  privileged state revealed
    rv64gc-writehole   csrw/csrs/csrc sstatus (the value    POPF: a write of IF from
                       read going nowhere, rd = x0)         ring 3 silently ignored
                       complete and change nothing; a read
                       (rd not x0) still traps

A hole is data: a part of the CSR file (:data:`csrs.REGISTER`) that gives a CSR a
:class:`Hole`, and an ISA variant listing that part; ``csrs.access`` consults a
CSR's hole where it would otherwise trap for privilege.  Nothing in the hart knows.
``popek analyze virtualizable`` (analyze/virtualizable.py) finds the holes from the
machine itself; docs/holes.md tells what they do to each VMM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from popek.riscv import csrs, traps
from popek.riscv.fd import RV64GC
from popek.riscv.isa import Isa
from popek.riscv.traps import Trap

M64 = (1 << 64) - 1


@dataclass(frozen=True)
class Hole:
    """What an access to a CSR from below its privilege does instead of trapping:
    ``read(cpu)`` is what a read returns (None: a read still traps), ``write(cpu,
    value)`` what a write does (None: a write still traps)."""
    read: Callable | None
    write: Callable | None
    what: str

    def access(self, cpu, c: csrs.Csr, op: int, value: int, do_read: bool,
               do_write: bool) -> int:
        if (do_read and self.read is None) or (do_write and self.write is None):
            raise Trap(traps.ILLEGAL_INSN, None)
        old = self.read(cpu) if do_read else 0
        if do_write:
            base = c.read(cpu) if c.rmw is None else c.rmw(cpu)
            new = value if op == 0 else (base | value if op == 1 else base & ~value)
            self.write(cpu, new & M64)
        return old


def _sstatus_read(f: csrs.CsrFile) -> None:
    real = f.by_number[f.numbers["sstatus"]].read
    f.open_hole("sstatus", Hole(read=real, write=None,
                                what="reads sstatus (SIE, SPP, ...) from U-mode without trapping"))


def _sstatus_write(f: csrs.CsrFile) -> None:
    f.open_hole("sstatus", Hole(read=None, write=lambda cpu, value: None,
                                what="writes to sstatus from U-mode are silently dropped"))


csrs.REGISTER["hole:sstatus-read"] = _sstatus_read
csrs.REGISTER["hole:sstatus-write"] = _sstatus_write


def variant_with_holes(name: str, holes: tuple, base: Isa = RV64GC) -> Isa:
    """``base`` with the CSR-file parts ``holes`` (keys of csrs.REGISTER): the same
    instructions, misa and ISA string (a hole does not show)."""
    return Isa(name, base.insns, base.extensions, base.isa_string, holes=holes)


READ_HOLE = variant_with_holes("rv64imafdc-readhole", ("hole:sstatus-read",))
WRITE_HOLE = variant_with_holes("rv64imafdc-writehole", ("hole:sstatus-write",))
