"""Finishing the few instructions PVM's emulator cannot, as the CPU would have.

On a PVM host a non-PVM kernel's ring 0 runs in KVM's instruction emulator, which
reports an emulation failure (KVM_EXIT_INTERNAL_ERROR, suberror 1) for some
instructions Linux uses.  For those, popek decodes the instruction itself and
does its work on the vCPU's state, then steps over it:

* ``int3`` (Linux patching its own text): deliver the #BP it raises;
* ``fwait``: nothing (no x87 exception can be pending: the kernel has none);
* ``ldmxcsr m32`` / ``stmxcsr m32`` (``kernel_fpu_begin``): MXCSR through
  KVM_GET_FPU/KVM_SET_FPU and guest memory through KVM_TRANSLATE.

Anything else stays a failure, reported with the instruction's bytes.
"""

from __future__ import annotations

INT3, FWAIT = 0xCC, 0x9B
BP_VECTOR = 3
MXCSR_WRITABLE = 0xFFFF
REG_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
PREFIXES = {0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65}


class _Bytes:
    """Instruction bytes at a guest-virtual address, fetched through the vCPU."""

    def __init__(self, vcpu, ram, rip: int):
        self.vcpu, self.ram, self.rip, self.pos = vcpu, ram, rip, 0

    def next(self) -> int:
        addr = self.rip + self.pos
        phys = self.vcpu.translate(addr)
        if phys is None or not self.ram.contains(phys):
            raise LookupError(f"instruction byte at {addr:#x} unmapped")
        self.pos += 1
        return self.ram.read(phys, 1)[0]

    def signed(self, n: int) -> int:
        v = int.from_bytes(bytes(self.next() for _ in range(n)), "little")
        return v - (1 << (8 * n)) if v >> (8 * n - 1) else v


def _effective_address(code: _Bytes, modrm: int, rex: int, regs, seg_base: int) -> int:
    """The memory operand of a ModRM byte (64-bit addressing)."""
    mod, rm = modrm >> 6, modrm & 7
    reg = lambda n: getattr(regs, REG_NAMES[n])            # noqa: E731
    if rm == 4:                                            # SIB
        sib = code.next()
        scale, index, base = sib >> 6, ((sib >> 3) & 7) | ((rex & 2) << 2), sib & 7
        ea = 0 if index == 4 else reg(index) << scale
        if base == 5 and mod == 0:
            ea += code.signed(4)
        else:
            ea += reg(base | ((rex & 1) << 3))
    elif rm == 5 and mod == 0:                             # rip-relative
        disp = code.signed(4)
        return (seg_base + code.rip + code.pos + disp) & ((1 << 64) - 1)
    else:
        ea = reg(rm | ((rex & 1) << 3))
    if mod == 1:
        ea += code.signed(1)
    elif mod == 2:
        ea += code.signed(4)
    return (seg_base + ea) & ((1 << 64) - 1)


def finish(vcpu, ram) -> str | None:
    """Do the work of the instruction at rip and step over it; its name, or None
    if it is not one popek finishes (or its operand is not in RAM)."""
    regs = vcpu.get_regs()
    code = _Bytes(vcpu, ram, regs.rip)
    try:
        op, seg, rex = code.next(), None, 0
        while op in PREFIXES:
            seg = op if op in (0x64, 0x65) else seg
            op = code.next()
        if 0x40 <= op <= 0x4F:
            rex, op = op, code.next()
        if op == INT3:
            regs.rip += code.pos
            vcpu.set_regs(regs)
            ev = vcpu.get_vcpu_events()
            ev.exc_injected, ev.exc_nr, ev.exc_has_error_code, ev.exc_pending = 1, BP_VECTOR, 0, 0
            vcpu.set_vcpu_events(ev)
            return "int3"
        if op == FWAIT:
            regs.rip += code.pos
            vcpu.set_regs(regs)
            return "fwait"
        if op != 0x0F or code.next() != 0xAE:
            return None
        modrm = code.next()
        which = (modrm >> 3) & 7
        if modrm >> 6 == 3 or which not in (2, 3):          # ldmxcsr /2, stmxcsr /3
            return None
        seg_base = 0
        if seg is not None:
            s = vcpu.get_sregs()
            seg_base = (s.fs if seg == 0x64 else s.gs).base
        addr = _effective_address(code, modrm, rex, regs, seg_base)
        phys = vcpu.translate(addr)
        if phys is None or not ram.contains(phys, 4) or (addr & 0xFFF) > 0xFFC:
            return None
        fpu = vcpu.get_fpu()
        if which == 2:
            fpu.mxcsr = ram.read_int(phys, 4) & MXCSR_WRITABLE
            vcpu.set_fpu(fpu)
        else:
            ram.write_int(phys, 4, fpu.mxcsr)
        regs.rip += code.pos
        vcpu.set_regs(regs)
        return "ldmxcsr" if which == 2 else "stmxcsr"
    except LookupError:
        return None
