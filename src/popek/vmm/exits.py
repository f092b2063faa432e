"""Exits: why the guest stopped and the VMM runs, one typed record per kind.

Each kind carries its own payload.  Both backends make them: the simulated
machine from the traps that reach its M-mode (the CPU strategy's
``exit_from_trap``: vmm/cpu/), the KVM backend from ``KVM_RUN``'s exit reasons
(kvm/machine.py).  A VM handles them through one table, type → handler, built
from the strategies it was assembled from (vmm/builder.py); tests construct exits
and feed them to that table without running any guest code.

    exit            payload                       made by
    CsrAccess       the decoded csrr*/csrw* insn   trap-and-emulate (illegal insn); hardware
                                                   assist (virtual insn: a trapped counter)
    Sret, Wfi,      the decoded instruction        trap-and-emulate (illegal insn); Wfi also
    TlbFence                                       hardware assist (virtual insn: VTW)
    IllegalInsn     the instruction bits           both (what the guest may not do)
    Ecall           -                              trap-and-emulate (ecall from U), hardware
                                                   assist (ecall from VS)
    PageFault       access (fetch/load/store), va  trap-and-emulate (page fault)
    GuestPageFault  access, va, guest-physical     hardware assist (a G-stage fault)
                    address, whether the VS-stage
                    walk's own access faulted
    GuestException  cause, tval                    trap-and-emulate (any other)
    HostInterrupt   irq                            trap-and-emulate (M-level interrupt)
    MmioRead        address, size                  trap-and-emulate (a page fault the
    MmioWrite       address, size, data            memory strategy says is a device),
                                                   KVM (KVM_EXIT_MMIO)
    PortIo          port, size, count, direction   KVM (KVM_EXIT_IO)
    Halt            -                              KVM (KVM_EXIT_HLT)
    Shutdown        KVM's reason                   KVM (anything else)
"""

from __future__ import annotations

from dataclasses import dataclass

# Exits are records: made once, read by their handler, never changed.  (Not frozen:
# a frozen dataclass costs three times as much to make, and there is one per exit.)


@dataclass(slots=True)
class Exit:
    """An exit at guest address ``pc`` (0 where the backend does not say)."""
    pc: int


# -- a guest's privileged instructions (trap-and-emulate) ----------------------------
@dataclass(slots=True)
class CsrAccess(Exit):
    insn: object                 # isa.Decoded: csrrw/csrrs/csrrc(i), its CSR and operands


@dataclass(slots=True)
class Sret(Exit):
    insn: object


@dataclass(slots=True)
class Wfi(Exit):
    insn: object


@dataclass(slots=True)
class TlbFence(Exit):
    insn: object                 # sfence.vma (its rs1/rs2 name the address and ASID)


@dataclass(slots=True)
class IllegalInsn(Exit):
    bits: int                    # neither allowed nor emulated: the guest's own fault


@dataclass(slots=True)
class Ecall(Exit):
    """An ecall: a hypercall (SBI) from the guest kernel, a system call from its user code."""


# -- memory ------------------------------------------------------------------------
@dataclass(slots=True)
class PageFault(Exit):
    access: int                  # mmu.FETCH / LOAD / STORE
    va: int


@dataclass(slots=True)
class GuestPageFault(Exit):
    access: int                  # the guest's access (mmu.FETCH / LOAD / STORE)
    va: int                      # its guest virtual address
    gpa: int                     # the guest-physical address the G-stage had no entry for
    implicit: bool               # the VS-stage walk's own access (a page-table entry)


@dataclass(slots=True)
class MmioRead(Exit):
    addr: int                    # guest-physical
    size: int


@dataclass(slots=True)
class MmioWrite(Exit):
    addr: int
    size: int
    data: int


@dataclass(slots=True)
class PortIo(Exit):
    port: int
    size: int
    count: int
    is_write: bool
    data_offset: int             # where KVM keeps the bytes, in the vCPU's run area


# -- anything else -------------------------------------------------------------------
@dataclass(slots=True)
class GuestException(Exit):
    cause: int                   # an exception the guest itself must handle
    tval: int


@dataclass(slots=True)
class HostInterrupt(Exit):
    irq: int


@dataclass(slots=True)
class Halt(Exit):
    pass


@dataclass(slots=True)
class Shutdown(Exit):
    reason: str


def handler_table(*strategies) -> dict:
    """One table, exit type → handler, from the handlers each strategy offers
    (``strategy.handlers()``): a kind claimed twice is a bug in the assembly."""
    table: dict = {}
    for s in strategies:
        for kind, fn in s.handlers().items():
            if kind in table:
                raise ValueError(f"{kind.__name__} is handled by two strategies")
            table[kind] = fn
    return table
