"""A guest's load or store to one of its devices, emulated: the instruction is
decoded, the access becomes an MMIO exit for the VM's I/O strategy (MmioRead /
MmioWrite, vmm/exits.py), and the instruction is finished with what it returns.

Shared by the CPU strategies: trap-and-emulate finds device accesses among its
page faults, hardware assist among its guest-page faults.  Any load or store
instruction works, integer or floating point (flw/fld/fsw/fsd, also compressed);
anything else at a device address (a fetch, an AMO, an instruction that cannot be
read) is an access fault for the guest.
"""

from __future__ import annotations

from popek.riscv import csrs, isa
from popek.riscv.mmu import ACCESS_FAULT, FETCH
from popek.vmm.exits import MmioRead, MmioWrite

FP_ACCESS = {"flw": (4, True), "fld": (8, True), "fsw": (4, False), "fsd": (8, False)}
FP_BOX = 0xFFFFFFFF00000000


def device_access(vm, hart, pc: int, access: int, word: int | None, gpa: int) -> int | None:
    """Emulate the instruction ``word`` at ``pc`` (None: it could not be read), whose
    ``access`` went to guest-physical ``gpa``.  Returns the access-fault cause to give
    the guest, or None when the instruction is done (``hart.pc`` past it)."""
    d = hart.isa.decode(word) if word is not None and access != FETCH else None
    fp = FP_ACCESS.get(d.insn.name) if d is not None else None
    if d is None or (d.insn.mem is None and fp is None):
        return ACCESS_FAULT[access]
    if fp is not None:
        done = _fp_access(vm, hart, pc, gpa, d, *fp)
    elif d.insn.kind == isa.LOAD:
        value = vm.handlers[MmioRead](vm, MmioRead(pc, gpa, d.insn.mem[1]))
        done = value is not None
        if done and d.rd:
            hart.x[d.rd] = _load_result(d.insn, value)
    else:
        size = d.insn.mem[1]
        done = vm.handlers[MmioWrite](vm, MmioWrite(pc, gpa, size,
                                                    hart.x[d.rs2] & ((1 << (8 * size)) - 1)))
    if not done:
        return ACCESS_FAULT[access]
    hart.pc = pc + d.length
    return None


def _fp_access(vm, hart, pc: int, gpa: int, d, size: int, load: bool) -> bool:
    """flw/fld/fsw/fsd to a device: the FP register is the data (the hart checked FS
    before the access faulted); a single is NaN-boxed."""
    if load:
        value = vm.handlers[MmioRead](vm, MmioRead(pc, gpa, size))
        if value is None:
            return False
        hart.f[d.rd] = value | (FP_BOX if size == 4 else 0)
        hart.mstatus |= csrs.MSTATUS_FS                  # an FP register written: Dirty
        return True
    return vm.handlers[MmioWrite](vm, MmioWrite(pc, gpa, size,
                                                hart.f[d.rs2] & ((1 << (8 * size)) - 1)))


_LOAD_RESULT = {}


def _load_result(insn, raw: int) -> int:
    """The value a load instruction writes to rd, from the raw bytes (its snippet)."""
    fn = _LOAD_RESULT.get(insn.body)
    if fn is None:
        expr = insn.body.split("=", 1)[1].strip()          # "x[rd] = <expr of v>"
        fn = _LOAD_RESULT[insn.body] = eval(f"lambda v: {expr}", dict(isa.SEMANTICS_GLOBALS))
    return fn(raw)
