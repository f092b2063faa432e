"""Control and status registers: registered objects with a read and a write,
in a CSR file made per CPU from the extensions it has (as Spike's csr_init).

Each CSR is a :class:`Csr` with a side-effect-free ``read(cpu)`` and a
``write(cpu, value)`` (``None`` for read-only ones).  :func:`access` is the check
common to all of them (privilege from address bits 9:8, read-only from bits 11:10),
written once; a CSR with a condition of its own (counter enables, TVM, FS) carries it.  A CSR that is not in a CPU's file raises
illegal-instruction, which is how OpenSBI probes for features.

A *CPU* here is anything with the state the CSRs name: the hart (M, S and U
modes), or the VMM's virtual CPU (vmm/vcpu.py), which is a supervisor-only
instance of the same state: its file holds the supervisor CSRs and the
counters, and the very same objects read and write them.  The state a CPU
keeps: ``priv``, ``mstatus`` (of which S-mode sees the sstatus view), ``mie``,
``mideleg``, ``mip`` and ``mip_sw``, ``stvec sscratch sepc scause stval satp
scounteren senvcfg``, ``mcounteren``, and hooks ``set_mstatus``, ``set_satp``,
``set_mie``, ``set_mip_sw``, ``read_cycle``, ``read_time``, ``read_instret``.

Fields follow the privileged spec v1.12 for RV64 with S and U modes, no F/D/V.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from popek.riscv import traps
from popek.riscv.traps import Trap

# mstatus fields
MSTATUS_SIE = 1 << 1
MSTATUS_MIE = 1 << 3
MSTATUS_SPIE = 1 << 5
MSTATUS_MPIE = 1 << 7
MSTATUS_SPP = 1 << 8
MSTATUS_MPP_SHIFT = 11
MSTATUS_MPP = 3 << MSTATUS_MPP_SHIFT
MSTATUS_MPRV = 1 << 17
MSTATUS_SUM = 1 << 18
MSTATUS_MXR = 1 << 19
MSTATUS_TVM = 1 << 20
MSTATUS_TW = 1 << 21
MSTATUS_TSR = 1 << 22
MSTATUS_FS = 3 << 13           # floating-point state: Off, Initial, Clean, Dirty (with F)
MSTATUS_SD = 1 << 63           # read-only: FS is Dirty
MSTATUS_UXL = 2 << 32          # XLEN=64 for U-mode, read-only
MSTATUS_SXL = 2 << 34          # XLEN=64 for S-mode, read-only
MSTATUS_WRITABLE = (MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP
                    | MSTATUS_MPP | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM
                    | MSTATUS_TW | MSTATUS_TSR)
SSTATUS_VISIBLE = (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR
                   | MSTATUS_UXL)
SSTATUS_WRITABLE = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR


# Interrupt bits.
MIP_SSIP = 1 << traps.IRQ_S_SOFT
MIP_MSIP = 1 << traps.IRQ_M_SOFT
MIP_STIP = 1 << traps.IRQ_S_TIMER
MIP_MTIP = 1 << traps.IRQ_M_TIMER
MIP_SEIP = 1 << traps.IRQ_S_EXT
MIP_MEIP = 1 << traps.IRQ_M_EXT
S_INTERRUPTS = MIP_SSIP | MIP_STIP | MIP_SEIP
ALL_INTERRUPTS = S_INTERRUPTS | MIP_MSIP | MIP_MTIP | MIP_MEIP
MIP_SW_WRITABLE = S_INTERRUPTS        # M-mode may write the S-level pending bits
MEDELEG_WRITABLE = 0xB3FF             # every exception but ecall-from-M (11) and 10, 14
SATP_MODE_BARE, SATP_MODE_SV39, SATP_MODE_SV48 = 0, 8, 9
SATP_ASID_BITS = 16
PMP_COUNT = 16
PMPADDR_MASK = (1 << 54) - 1

M64 = (1 << 64) - 1
U, S, M = 0, 1, 3


@dataclass(frozen=True)
class Csr:
    """``read(cpu)`` has no side effects; ``write(cpu, value)`` is None for a read-only
    CSR; ``check(cpu)``, if any, is a condition of this CSR's own beyond the privilege
    rule of its address, checked at every privilege (counter enables, TVM, FS for the
    floating-point CSRs); ``rmw(cpu)``,
    if any, is what a read-modify-write starts from when that is not what a read returns.
    ``hole``, on a CPU with a virtualization hole only (riscv/holes.py), is what an
    access from below the CSR's privilege does instead of trapping."""
    name: str
    read: Callable
    write: Callable | None = None
    check: Callable | None = None
    rmw: Callable | None = None
    hole: object = None


class CsrFile:
    """One CPU's CSRs by number, registered per extension (:func:`csr_file`)."""

    def __init__(self):
        self.by_number: dict[int, Csr] = {}
        self.numbers: dict[str, int] = {}
        # (H) S-level CSRs whose view from VS-mode is not the current register (hcsrs.py).
        self.virtual: dict[int, Csr] = {}

    def add(self, number: int, name: str, read, write=None, check=None, rmw=None) -> None:
        assert number not in self.by_number, name
        self.by_number[number] = Csr(name, read, write, check, rmw)
        self.numbers[name] = number

    def replace(self, number: int, name: str, read, write=None, check=None, rmw=None) -> None:
        """An extension widens a CSR registered before it (H: medeleg, mideleg, mie, ...)."""
        assert number in self.by_number, name
        del self.by_number[number]
        self.add(number, name, read, write, check, rmw)

    def open_hole(self, name: str, hole) -> None:
        """Make CSR ``name`` answer accesses from below its privilege as ``hole`` says
        (holes.Hole) instead of trapping: a CPU that is not virtualizable."""
        number = self.numbers[name]
        self.by_number[number] = dataclasses.replace(self.by_number[number], hole=hole)

    def write(self, cpu, name: str, value: int) -> None:
        """Write CSR ``name`` as the hardware would, without an instruction's checks
        (a hypercall that stands for ``csrw``)."""
        self.by_number[self.numbers[name]].write(cpu, value & M64)


# The privilege a CSR needs, by its address bits 9:8: U, S, and (2) the hypervisor and VS
# CSRs, which HS-mode reaches; M.
_LEVEL = (U, S, S, M)


def access(cpu, num: int, op: int, value: int, do_read: bool, do_write: bool,
           pc: int = 0) -> int:
    """csrrw (op 0), csrrs (1) or csrrc (2) of CSR ``num`` on ``cpu`` at its privilege:
    the old value, or :class:`Trap` (illegal instruction) where the access is not allowed.
    ``do_read``: the value goes to a register (rd is not x0); ``do_write``: the
    instruction writes.  ``pc`` is the instruction's (a read of time uses it:
    clock.py, polling loops)."""
    cpu.csr_pc = pc
    c = cpu.csrs.by_number.get(num)
    if cpu.virt:                        # VS- or VU-mode (H): rules of their own
        c = hcsrs.virtual_access(cpu, num, c, do_write)
    elif c is None or (do_write and num >> 10 == 3):
        raise Trap(traps.ILLEGAL_INSN, None)
    elif _LEVEL[(num >> 8) & 3] > cpu.priv:
        if c.hole is None:              # the rule that makes RISC-V virtualizable
            raise Trap(traps.ILLEGAL_INSN, None)
        return c.hole.access(cpu, c, op, value, do_read, do_write)
    elif c.check is not None and not c.check(cpu):
        raise Trap(traps.ILLEGAL_INSN, None)
    old = c.read(cpu)
    if do_write:
        base = old if c.rmw is None else c.rmw(cpu)
        new = value if op == 0 else (base | value if op == 1 else base & ~value)
        if c.write is None:
            raise Trap(traps.ILLEGAL_INSN, None)
        c.write(cpu, new & M64)
    return old


def field(attr: str, mask: int = M64):
    """A plain storage CSR backed by attribute ``attr`` of the CPU, writable bits ``mask``."""
    def read(h):
        return getattr(h, attr)

    def write(h, v):
        setattr(h, attr, v & mask)
    return read, write


def _tvec(attr):
    # Modes 0 (direct) and 1 (vectored); modes >= 2 are reserved, so fall back to direct.
    def write(h, v):
        setattr(h, attr, v & ~2 & M64)
    return lambda h: getattr(h, attr), write


# --- machine mode -------------------------------------------------------------
def _status(h, visible: int) -> int:
    """The status word's ``visible`` bits, with SD summarising FS (Dirty)."""
    v = h.mstatus & visible
    return v | MSTATUS_SD if v & MSTATUS_FS == MSTATUS_FS else v


def _write_mstatus(h, v):
    writable = MSTATUS_WRITABLE | h.fs_writable | h.mstatus_h
    new = (h.mstatus & ~writable) | (v & writable)
    if (new & MSTATUS_MPP) == (2 << MSTATUS_MPP_SHIFT):      # reserved mode: keep old MPP
        new = (new & ~MSTATUS_MPP) | (h.mstatus & MSTATUS_MPP)
    h.set_mstatus(new)


def _pmpcfg(i):
    def read(h):
        return h.pmpcfg[i]

    def write(h, v):
        # Locked entries (L bit) keep their configuration; W=1,R=0 is reserved → cleared.
        out = 0
        for b in range(8):
            old, new = (h.pmpcfg[i] >> (8 * b)) & 0xFF, (v >> (8 * b)) & 0xFF
            if old & 0x80:
                new = old
            elif new & 0x3 == 0x2:
                new &= ~0x3
            out |= (new & 0x9F) << (8 * b)
        h.pmpcfg[i] = out
    return read, write


def _write_mcycle(h, v):
    h.cycle_offset = (v - h.instret - h.cycle_extra) & M64


def _write_minstret(h, v):
    h.instret_offset = (v - h.instret) & M64


def machine_csrs(f: CsrFile) -> None:
    """M-mode: information, status, delegation, interrupts, traps, PMP, counters."""
    f.add(0xF11, "mvendorid", lambda h: 0)
    f.add(0xF12, "marchid", lambda h: 0)
    f.add(0xF13, "mimpid", lambda h: 0)
    f.add(0xF14, "mhartid", lambda h: h.hartid)
    f.add(0xF15, "mconfigptr", lambda h: 0)
    f.add(0x300, "mstatus", lambda h: _status(h, M64), _write_mstatus)
    f.add(0x301, "misa", lambda h: h.isa.misa, lambda h, v: None)   # WARL: nothing switchable
    f.add(0x302, "medeleg", *field("medeleg", MEDELEG_WRITABLE))
    f.add(0x303, "mideleg", lambda h: h.mideleg, lambda h, v: h.set_mideleg(v & S_INTERRUPTS))
    f.add(0x304, "mie", lambda h: h.mie, lambda h, v: h.set_mie(v & ALL_INTERRUPTS))
    # A read-modify-write of mip sees software's SEIP only, not the PLIC's line.
    f.add(0x344, "mip", lambda h: h.mip,
          lambda h, v: h.set_mip_sw((h.mip_sw & ~MIP_SW_WRITABLE) | (v & MIP_SW_WRITABLE)),
          rmw=lambda h: (h.mip & ~MIP_SEIP) | (h.mip_sw & MIP_SEIP))
    f.add(0x305, "mtvec", *_tvec("mtvec"))
    f.add(0x306, "mcounteren", *field("mcounteren", 0xFFFFFFFF))
    f.add(0x30A, "menvcfg", *field("menvcfg", 1))     # FIOM only; no Sstc/Svpbmt/Zicbo*
    f.add(0x320, "mcountinhibit", *field("mcountinhibit", 0xFFFFFFFD))
    f.add(0x340, "mscratch", *field("mscratch"))
    f.add(0x341, "mepc", *field("mepc", M64 & ~1))
    f.add(0x342, "mcause", *field("mcause"))
    f.add(0x343, "mtval", *field("mtval"))
    # PMP: registers that hold what was written (not enforced).  RV64: even-numbered
    # pmpcfg CSRs only, 8 entries each; those beyond PMP_COUNT read zero.
    for i in range(8):
        if i < PMP_COUNT // 8:
            f.add(0x3A0 + 2 * i, f"pmpcfg{2 * i}", *_pmpcfg(i))
        else:
            f.add(0x3A0 + 2 * i, f"pmpcfg{2 * i}", lambda h: 0, lambda h, v: None)
    for i in range(64):
        if i < PMP_COUNT:
            f.add(0x3B0 + i, f"pmpaddr{i}",
                  (lambda i: lambda h: h.pmpaddr[i])(i),
                  (lambda i: lambda h, v: h.pmpaddr.__setitem__(i, v & PMPADDR_MASK))(i))
        else:
            f.add(0x3B0 + i, f"pmpaddr{i}", lambda h: 0, lambda h, v: None)
    f.add(0xB00, "mcycle", lambda h: h.read_cycle(), _write_mcycle)
    f.add(0xB02, "minstret", lambda h: h.read_instret(), _write_minstret)
    for i in range(3, 32):
        f.add(0xB00 + i, f"mhpmcounter{i}", lambda h: 0, lambda h, v: None)
        f.add(0x320 + i, f"mhpmevent{i}", lambda h: 0, lambda h, v: None)


# --- supervisor mode ----------------------------------------------------------
# sstatus, sie and sip are views of the CPU's mstatus, mie and mip (privileged spec
# 4.1.1, 4.1.3): on the hart they are what M-mode delegated; on a virtual CPU,
# whose mideleg is every S interrupt, they are all there is.
def _write_sstatus(h, v):
    writable = SSTATUS_WRITABLE | h.fs_writable
    h.set_mstatus((h.mstatus & ~writable) | (v & writable))


def legal_satp(v: int) -> int | None:
    """What a write of ``v`` puts in satp (or vsatp), or None: WARL, a write with an
    unsupported mode is ignored; Bare zeroes it all."""
    mode = v >> 60
    if mode not in (SATP_MODE_BARE, SATP_MODE_SV39, SATP_MODE_SV48):
        return None
    if mode == SATP_MODE_BARE:
        return 0
    return v & ((0xF << 60) | (((1 << SATP_ASID_BITS) - 1) << 44) | ((1 << 44) - 1))


def _write_satp(h, v):
    new = legal_satp(v)
    if new is not None:
        h.set_satp(new)


def supervisor_csrs(f: CsrFile) -> None:
    f.add(0x100, "sstatus", lambda h: _status(h, SSTATUS_VISIBLE | h.fs_writable),
          _write_sstatus)
    f.add(0x104, "sie", lambda h: h.mie & h.mideleg,
          lambda h, v: h.set_mie((h.mie & ~h.mideleg) | (v & h.mideleg)))
    # From S-mode only SSIP is writable in sip (STIP/SEIP belong to M-mode software or devices).
    f.add(0x144, "sip", lambda h: h.mip & h.mideleg,
          lambda h, v: h.set_mip_sw((h.mip_sw & ~(MIP_SSIP & h.mideleg))
                                    | (v & MIP_SSIP & h.mideleg)))
    f.add(0x105, "stvec", *_tvec("stvec"))
    f.add(0x106, "scounteren", *field("scounteren", 0xFFFFFFFF))
    f.add(0x10A, "senvcfg", *field("senvcfg", 1))
    f.add(0x140, "sscratch", *field("sscratch"))
    f.add(0x141, "sepc", *field("sepc", M64 & ~1))
    f.add(0x142, "scause", *field("scause"))
    f.add(0x143, "stval", *field("stval"))
    # TVM: S-mode may not touch satp (privileged spec 3.1.6.5).
    f.add(0x180, "satp", lambda h: h.satp, _write_satp,
          check=lambda h: not (h.priv == S and h.mstatus & MSTATUS_TVM))


# --- unprivileged counters ------------------------------------------------------
def _counter_enabled(i: int):
    """Below M, counter ``i`` is readable where mcounteren allows it (for S and U),
    and scounteren too (for U)."""
    bit = 1 << i
    return lambda h: h.priv == M or (h.mcounteren & bit and (h.priv != U or h.scounteren & bit))


def counter_csrs(f: CsrFile) -> None:
    """Zicntr: cycle, time, instret (read-only)."""
    f.add(0xC00, "cycle", lambda h: h.read_cycle(), check=_counter_enabled(0))
    f.add(0xC01, "time", lambda h: h.read_time(), check=_counter_enabled(1))
    f.add(0xC02, "instret", lambda h: h.read_instret(), check=_counter_enabled(2))


def hpm_csrs(f: CsrFile) -> None:
    """Zihpm: hpmcounter3..31, which count nothing here (read zero)."""
    for i in range(3, 32):
        f.add(0xC00 + i, f"hpmcounter{i}", lambda h: 0, check=_counter_enabled(i))


# --- floating point (F) -------------------------------------------------------------
def _fp_enabled(h) -> bool:
    return bool(h.mstatus & MSTATUS_FS)      # FS Off: the FP CSRs are illegal too


def _write_fp(h, fflags: int, frm: int) -> None:
    h.fflags, h.frm = fflags & 0x1F, frm & 7
    h.mstatus |= MSTATUS_FS                  # Dirty


def fp_csrs(f: CsrFile) -> None:
    """F: fflags (accrued exceptions), frm (dynamic rounding mode), fcsr (both)."""
    f.add(0x001, "fflags", lambda h: h.fflags, lambda h, v: _write_fp(h, v, h.frm),
          check=_fp_enabled)
    f.add(0x002, "frm", lambda h: h.frm, lambda h, v: _write_fp(h, h.fflags, v),
          check=_fp_enabled)
    f.add(0x003, "fcsr", lambda h: h.frm << 5 | h.fflags,
          lambda h, v: _write_fp(h, v, v >> 5), check=_fp_enabled)


# What each privilege level or extension brings to a CPU's CSR file (H after M and S,
# whose CSRs it widens).
REGISTER = {"M": machine_csrs, "S": supervisor_csrs, "Zicntr": counter_csrs, "Zihpm": hpm_csrs,
            "F": fp_csrs, "H": lambda f: hcsrs.hypervisor_csrs(f)}
# Holes (riscv/holes.py adds its parts here): registered last, over the CSRs they open.


def csr_file(parts) -> CsrFile:
    """The CSR file of a CPU with ``parts`` (keys of :data:`REGISTER`)."""
    f = CsrFile()
    for part in parts:
        REGISTER[part](f)
    return f


def hart_parts(variant) -> tuple:
    """What a hart of ISA ``variant`` (isa.Isa) registers: M mode always, S where the
    variant has it, the counters."""
    return ("M",) + (("S",) if "S" in variant.extensions else ()) + ("Zicntr", "Zihpm") \
        + (("F",) if "F" in variant.extensions else ()) \
        + (("H",) if "H" in variant.extensions else ()) + tuple(variant.holes)


# The VMM's virtual CPU: a supervisor-only CPU (S and U modes), counters without hpm.
SUPERVISOR_CSRS = ("S", "Zicntr")


from popek.riscv import hcsrs  # noqa: E402  (it builds on this module's names)
