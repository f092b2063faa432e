"""Control and status registers: registered objects with a read and a write.

Each CSR is a :class:`Csr` with a side-effect-free ``read(hart)`` and a
``write(hart, value)`` (``None`` for read-only ones).  The access check common to
all of them (privilege from address bits 9:8, read-only from bits 11:10,
counter enables) lives in :meth:`Hart.csr_access`.  A CSR that is not
registered raises illegal-instruction, which is how OpenSBI probes for features.

Fields follow the privileged spec v1.12 for RV64 with S and U modes, no F/D/V.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from popek.riscv import traps

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
MSTATUS_UXL = 2 << 32          # XLEN=64 for U-mode, read-only
MSTATUS_SXL = 2 << 34          # XLEN=64 for S-mode, read-only
MSTATUS_WRITABLE = (MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP
                    | MSTATUS_MPP | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM
                    | MSTATUS_TW | MSTATUS_TSR)
SSTATUS_VISIBLE = (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR
                   | MSTATUS_UXL)
SSTATUS_WRITABLE = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR

# misa: MXL=2 (RV64) and exactly the extensions implemented: A C I M S U.
MISA = (2 << 62) | sum(1 << (ord(e) - ord("A")) for e in "ACIMSU")
ISA_STRING = "rv64imac_zicsr_zifencei"

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


@dataclass(frozen=True)
class Csr:
    name: str
    read: Callable
    write: Callable | None = None


CSRS: dict[int, Csr] = {}
CSR_NAMES: dict[str, int] = {}


def csr(number: int, name: str, read, write=None) -> None:
    assert number not in CSRS, name
    CSRS[number] = Csr(name, read, write)
    CSR_NAMES[name] = number


def _field(attr: str, mask: int = M64):
    """A plain storage CSR backed by hart attribute ``attr``, writable bits ``mask``."""
    def read(h):
        return getattr(h, attr)

    def write(h, v):
        setattr(h, attr, v & mask)
    return read, write


# --- machine information ---------------------------------------------------
csr(0xF11, "mvendorid", lambda h: 0)
csr(0xF12, "marchid", lambda h: 0)
csr(0xF13, "mimpid", lambda h: 0)
csr(0xF14, "mhartid", lambda h: h.hartid)
csr(0xF15, "mconfigptr", lambda h: 0)


# --- status ----------------------------------------------------------------
def _write_mstatus(h, v):
    new = (h.mstatus & ~MSTATUS_WRITABLE) | (v & MSTATUS_WRITABLE)
    if (new & MSTATUS_MPP) == (2 << MSTATUS_MPP_SHIFT):      # reserved mode: keep old MPP
        new = (new & ~MSTATUS_MPP) | (h.mstatus & MSTATUS_MPP)
    h.set_mstatus(new)


def _write_sstatus(h, v):
    h.set_mstatus((h.mstatus & ~SSTATUS_WRITABLE) | (v & SSTATUS_WRITABLE))


csr(0x300, "mstatus", lambda h: h.mstatus, _write_mstatus)
csr(0x100, "sstatus", lambda h: h.mstatus & SSTATUS_VISIBLE, _write_sstatus)
csr(0x301, "misa", lambda h: MISA, lambda h, v: None)       # WARL: nothing is switchable
csr(0x302, "medeleg", *_field("medeleg", MEDELEG_WRITABLE))
csr(0x303, "mideleg", lambda h: h.mideleg, lambda h, v: h.set_mideleg(v & S_INTERRUPTS))


# --- interrupts ------------------------------------------------------------
csr(0x304, "mie", lambda h: h.mie, lambda h, v: h.set_mie(v & ALL_INTERRUPTS))
csr(0x344, "mip", lambda h: h.mip,
    lambda h, v: h.set_mip_sw((h.mip_sw & ~MIP_SW_WRITABLE) | (v & MIP_SW_WRITABLE)))
csr(0x104, "sie", lambda h: h.mie & h.mideleg,
    lambda h, v: h.set_mie((h.mie & ~h.mideleg) | (v & h.mideleg)))
# From S-mode only SSIP is writable in sip (STIP/SEIP belong to M-mode software or devices).
csr(0x144, "sip", lambda h: h.mip & h.mideleg,
    lambda h, v: h.set_mip_sw((h.mip_sw & ~(MIP_SSIP & h.mideleg)) | (v & MIP_SSIP & h.mideleg)))


# --- trap setup and handling -------------------------------------------------
def _tvec(attr):
    # Modes 0 (direct) and 1 (vectored); modes >= 2 are reserved, so fall back to direct.
    def write(h, v):
        setattr(h, attr, v & ~2 & M64)
    return lambda h: getattr(h, attr), write


csr(0x305, "mtvec", *_tvec("mtvec"))
csr(0x105, "stvec", *_tvec("stvec"))
csr(0x306, "mcounteren", *_field("mcounteren", 0xFFFFFFFF))
csr(0x106, "scounteren", *_field("scounteren", 0xFFFFFFFF))
csr(0x30A, "menvcfg", *_field("menvcfg", 1))     # FIOM only; no Sstc/Svpbmt/Zicbo*
csr(0x10A, "senvcfg", *_field("senvcfg", 1))
csr(0x320, "mcountinhibit", *_field("mcountinhibit", 0xFFFFFFFD))
csr(0x340, "mscratch", *_field("mscratch"))
csr(0x140, "sscratch", *_field("sscratch"))
csr(0x341, "mepc", *_field("mepc", M64 & ~1))
csr(0x141, "sepc", *_field("sepc", M64 & ~1))
csr(0x342, "mcause", *_field("mcause"))
csr(0x142, "scause", *_field("scause"))
csr(0x343, "mtval", *_field("mtval"))
csr(0x143, "stval", *_field("stval"))


# --- address translation ---------------------------------------------------
def _write_satp(h, v):
    mode = v >> 60
    if mode not in (SATP_MODE_BARE, SATP_MODE_SV39, SATP_MODE_SV48):
        return                  # WARL: an unsupported mode leaves satp unchanged
    if mode == SATP_MODE_BARE:
        v = 0
    h.set_satp(v & ((0xF << 60) | (((1 << SATP_ASID_BITS) - 1) << 44) | ((1 << 44) - 1)))


csr(0x180, "satp", lambda h: h.satp, _write_satp)


# --- PMP: registers that hold what was written (not enforced) ---------------
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


# RV64: even-numbered pmpcfg CSRs only, 8 entries each; those beyond PMP_COUNT read zero.
for _i in range(8):
    if _i < PMP_COUNT // 8:
        csr(0x3A0 + 2 * _i, f"pmpcfg{2 * _i}", *_pmpcfg(_i))
    else:
        csr(0x3A0 + 2 * _i, f"pmpcfg{2 * _i}", lambda h: 0, lambda h, v: None)
for _i in range(64):
    if _i < PMP_COUNT:
        csr(0x3B0 + _i, f"pmpaddr{_i}",
            (lambda i: lambda h: h.pmpaddr[i])(_i),
            (lambda i: lambda h, v: h.pmpaddr.__setitem__(i, v & PMPADDR_MASK))(_i))
    else:
        csr(0x3B0 + _i, f"pmpaddr{_i}", lambda h: 0, lambda h, v: None)


# --- counters --------------------------------------------------------------
def _write_mcycle(h, v):
    h.cycle_offset = (v - h.instret - h.cycle_extra) & M64


def _write_minstret(h, v):
    h.instret_offset = (v - h.instret) & M64


csr(0xB00, "mcycle", lambda h: h.read_cycle(), _write_mcycle)
csr(0xB02, "minstret", lambda h: (h.instret + h.instret_offset) & M64, _write_minstret)
csr(0xC00, "cycle", lambda h: h.read_cycle())
csr(0xC01, "time", lambda h: h.read_time())
csr(0xC02, "instret", lambda h: (h.instret + h.instret_offset) & M64)
for _i in range(3, 32):
    csr(0xB00 + _i, f"mhpmcounter{_i}", lambda h: 0, lambda h, v: None)
    csr(0x320 + _i, f"mhpmevent{_i}", lambda h: 0, lambda h, v: None)
    csr(0xC00 + _i, f"hpmcounter{_i}", lambda h: 0)
