"""The H extension's CSRs, and CSR access from the virtual modes (VS, VU).

HS-mode gets the hypervisor CSRs (hstatus, hedeleg, hideleg, hvip/hip/hie, hgatp,
htval, htinst, hcounteren, htimedelta, henvcfg, hgeie/hgeip: GEILEN is 0, so no
guest external interrupts) and the VS CSRs (vsstatus ... vsatp), M-mode gets
mtval2 and mtinst, and some machine CSRs widen (medeleg, mideleg, mie, mip).

How VS state is kept, as QEMU keeps it: the supervisor registers the hart runs
with (``stvec``, ``sepc``, ... ``satp``, and sstatus's bits of ``mstatus``) are those
of the current mode: HS's while V=0, VS's while V=1; the other set waits in the
hart's ``vs_bank`` and the two are exchanged when V changes (hart/virt.py).  So
everything written once for S-mode (trap entry, sret, the walk's SUM/MXR, the CSRs
sstatus/stvec/... themselves) serves VS-mode unchanged, and a vs* CSR, which only
V=0 code can reach, is simply the bank.  What is left is the access rule of the
virtual modes (:func:`virtual_access`, privileged spec's hypervisor chapter,
"virtual instruction exception") and the two CSRs whose V=1 view is not a copy:
sie and sip, which in VS-mode show the VS-level interrupts shifted down one bit.
"""

from __future__ import annotations

from popek.riscv import csrs, traps
from popek.riscv.csrs import (M64, MIP_SSIP, MSTATUS_FS, MSTATUS_MXR, MSTATUS_SD, MSTATUS_SIE,
                              MSTATUS_SPIE, MSTATUS_SPP, MSTATUS_SUM, MSTATUS_TVM,
                              MSTATUS_UXL, S, S_INTERRUPTS, U, Csr, CsrFile)
from popek.riscv.traps import Trap

# hstatus fields (RV64).
HSTATUS_GVA = 1 << 6
HSTATUS_SPV = 1 << 7
HSTATUS_SPVP = 1 << 8
HSTATUS_HU = 1 << 9
HSTATUS_VTVM = 1 << 20
HSTATUS_VTW = 1 << 21
HSTATUS_VTSR = 1 << 22
HSTATUS_VSXL = 2 << 32                  # VS-mode is 64-bit (read-only)
HSTATUS_WRITABLE = (HSTATUS_GVA | HSTATUS_SPV | HSTATUS_SPVP | HSTATUS_HU | HSTATUS_VTVM
                    | HSTATUS_VTW | HSTATUS_VTSR)
# mstatus's H fields (RV64).
MSTATUS_GVA = 1 << 38
MSTATUS_MPV = 1 << 39

# VS-level interrupts (bits 2, 6, 10) and the supervisor guest external one (12).
MIP_VSSIP = 1 << traps.IRQ_VS_SOFT
MIP_VSTIP = 1 << traps.IRQ_VS_TIMER
MIP_VSEIP = 1 << traps.IRQ_VS_EXT
MIP_SGEIP = 1 << traps.IRQ_SG_EXT
VS_INTERRUPTS = MIP_VSSIP | MIP_VSTIP | MIP_VSEIP

# What may be delegated.  medeleg gains ecall-from-VS (10), the guest-page faults
# (20, 21, 23) and virtual-instruction (22); hedeleg may pass on to VS-mode anything but
# the ecalls from HS and VS (and M), the guest-page faults and virtual-instruction,
# which only a hypervisor can handle.
MEDELEG_WRITABLE = csrs.MEDELEG_WRITABLE | (1 << 10) | (0xF << 20)
HEDELEG_WRITABLE = csrs.MEDELEG_WRITABLE & ~((1 << 9) | (1 << 10))
SSTATUS_BANKED = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS
HGATP_MODE_BARE, HGATP_MODE_SV39X4, HGATP_MODE_SV48X4 = 0, 8, 9
VMID_BITS = 14
HCOUNTEREN_TM = 1 << 1

# S-level CSRs whose VS-mode view is not the current register.
SIE, SIP, SATP = 0x104, 0x144, 0x180
COUNTERS = range(0xC00, 0xC20)


class VsBank:
    """The set of supervisor registers not in use: VS's while V=0, HS's while V=1."""
    __slots__ = ("status", "stvec", "sscratch", "sepc", "scause", "stval", "satp")

    def __init__(self):
        self.status = 0                 # its sstatus bits (SSTATUS_BANKED)
        self.stvec = self.sscratch = self.sepc = self.scause = self.stval = self.satp = 0


def _vs_view(bits: int) -> int:
    """hip/hie's VS bits (2, 6, 10) as vsip/vsie show them (1, 5, 9)."""
    return (bits & VS_INTERRUPTS) >> 1


# -- vs* from HS-mode: the bank --------------------------------------------------------
def _bank(attr: str, mask: int = M64):
    def read(h):
        return getattr(h.vs_bank, attr)

    def write(h, v):
        setattr(h.vs_bank, attr, v & mask)
    return read, write


def _read_vsstatus(h) -> int:
    v = h.vs_bank.status | MSTATUS_UXL
    return v | MSTATUS_SD if v & MSTATUS_FS == MSTATUS_FS else v


def _write_vsstatus(h, v):
    bank = h.vs_bank
    old = bank.status
    bank.status = v & (csrs.SSTATUS_WRITABLE | h.fs_writable)
    if (old ^ bank.status) & (MSTATUS_SUM | MSTATUS_MXR):
        h.flush_virtual_tlbs()


def _write_vsatp(h, v):
    new = csrs.legal_satp(v)
    if new is not None:
        h.vs_bank.satp = new
        h.flush_virtual_tlbs()


def _write_vstvec(h, v):
    h.vs_bank.stvec = v & ~2 & M64


# vsie/vsip (and sie/sip in VS-mode): the VS-level bits hideleg passes on, shifted down.
def _read_vsie(h) -> int:
    return _vs_view(h.mie & h.hideleg)


def _write_vsie(h, v):
    mask = h.hideleg & VS_INTERRUPTS
    h.set_mie((h.mie & ~mask) | ((v << 1) & mask))


def _read_vsip(h) -> int:
    return _vs_view(h.mip & h.hideleg)


def _write_vsip(h, v):
    if h.hideleg & MIP_VSSIP:              # only VSSIP is software's
        h.set_mip_sw((h.mip_sw & ~MIP_VSSIP) | ((v << 1) & MIP_VSSIP))


# -- hypervisor CSRs ---------------------------------------------------------------
def _write_hstatus(h, v):
    h.hstatus = (h.hstatus & ~HSTATUS_WRITABLE) | (v & HSTATUS_WRITABLE) | HSTATUS_VSXL


def _write_hgatp(h, v):
    # WARL field by field (not ignored wholesale as satp is): an unsupported MODE keeps
    # the old one, as Spike does; the root table is 16 KiB, so PPN's two low bits are zero.
    mode = v >> 60
    if mode not in (HGATP_MODE_BARE, HGATP_MODE_SV39X4, HGATP_MODE_SV48X4):
        mode = h.hgatp >> 60
    h.hgatp = (mode << 60) | (v & ((((1 << VMID_BITS) - 1) << 44) | (((1 << 44) - 1) & ~3)))
    h.flush_virtual_tlbs()


def _not_tvm(h) -> bool:
    """mstatus.TVM keeps HS-mode from hgatp (and HFENCE.GVMA), as from satp."""
    return not (h.priv == S and h.mstatus & MSTATUS_TVM)


def hypervisor_csrs(f: CsrFile) -> None:
    """H: the HS-mode CSRs, the VS CSRs, mtval2/mtinst, and the wider machine CSRs."""
    f.add(0x600, "hstatus", lambda h: h.hstatus, _write_hstatus)
    f.add(0x602, "hedeleg", *csrs.field("hedeleg", HEDELEG_WRITABLE))
    f.add(0x603, "hideleg", *csrs.field("hideleg", VS_INTERRUPTS))
    f.add(0x604, "hie", lambda h: h.mie & (VS_INTERRUPTS | MIP_SGEIP),
          lambda h, v: h.set_mie((h.mie & ~(VS_INTERRUPTS | MIP_SGEIP))
                                 | (v & (VS_INTERRUPTS | MIP_SGEIP))))
    f.add(0x605, "htimedelta", *csrs.field("htimedelta"))
    f.add(0x606, "hcounteren", *csrs.field("hcounteren", 0xFFFFFFFF))
    f.add(0x607, "hgeie", lambda h: 0, lambda h, v: None)      # GEILEN = 0
    f.add(0x60A, "henvcfg", *csrs.field("henvcfg", 1))         # FIOM only, as menvcfg
    f.add(0x643, "htval", *csrs.field("htval"))
    # hip: VSSIP is hvip's (writable here too); VSTIP and VSEIP are read-only views.
    f.add(0x644, "hip", lambda h: h.mip & (VS_INTERRUPTS | MIP_SGEIP),
          lambda h, v: h.set_mip_sw((h.mip_sw & ~MIP_VSSIP) | (v & MIP_VSSIP)))
    f.add(0x645, "hvip", lambda h: h.mip_sw & VS_INTERRUPTS,
          lambda h, v: h.set_mip_sw((h.mip_sw & ~VS_INTERRUPTS) | (v & VS_INTERRUPTS)))
    f.add(0x64A, "htinst", *csrs.field("htinst"))
    f.add(0x680, "hgatp", lambda h: h.hgatp, _write_hgatp, check=_not_tvm)
    f.add(0xE12, "hgeip", lambda h: 0)
    # VS CSRs (reached by their own numbers from HS and M only).
    f.add(0x200, "vsstatus", _read_vsstatus, _write_vsstatus)
    f.add(0x204, "vsie", _read_vsie, _write_vsie)
    f.add(0x205, "vstvec", lambda h: h.vs_bank.stvec, _write_vstvec)
    f.add(0x240, "vsscratch", *_bank("sscratch"))
    f.add(0x241, "vsepc", *_bank("sepc", M64 & ~1))
    f.add(0x242, "vscause", *_bank("scause"))
    f.add(0x243, "vstval", *_bank("stval"))
    f.add(0x244, "vsip", _read_vsip, _write_vsip)
    f.add(0x280, "vsatp", lambda h: h.vs_bank.satp, _write_vsatp)
    # M-mode: the guest-physical address of a guest-page fault, and the trapped instruction.
    f.add(0x34B, "mtval2", *csrs.field("mtval2"))
    f.add(0x34A, "mtinst", *csrs.field("mtinst"))
    # The machine CSRs H widens: more to delegate; mideleg's VS bits read-only one (VS
    # interrupts always go to HS, which passes them on through hideleg); the VS bits
    # in mie, and VSSIP (hvip's) writable in mip.
    f.replace(0x302, "medeleg", *csrs.field("medeleg", MEDELEG_WRITABLE))
    f.replace(0x303, "mideleg", lambda h: h.mideleg,
              lambda h, v: h.set_mideleg((v & S_INTERRUPTS) | VS_INTERRUPTS))
    f.replace(0x304, "mie", lambda h: h.mie,
              lambda h, v: h.set_mie(v & (csrs.ALL_INTERRUPTS | VS_INTERRUPTS | MIP_SGEIP)))
    writable = csrs.MIP_SW_WRITABLE | MIP_VSSIP
    f.replace(0x344, "mip", lambda h: h.mip,
              lambda h, v: h.set_mip_sw((h.mip_sw & ~writable) | (v & writable)),
              rmw=lambda h: (h.mip & ~csrs.MIP_SEIP) | (h.mip_sw & csrs.MIP_SEIP))
    # HS-mode's sie/sip show the S-level interrupts only (the VS ones are hie/hip's).
    f.replace(SIE, "sie", lambda h: h.mie & h.mideleg & S_INTERRUPTS,
              lambda h, v: h.set_mie((h.mie & ~(h.mideleg & S_INTERRUPTS))
                                     | (v & h.mideleg & S_INTERRUPTS)))
    f.replace(SIP, "sip", lambda h: h.mip & h.mideleg & S_INTERRUPTS,
              lambda h, v: h.set_mip_sw((h.mip_sw & ~(MIP_SSIP & h.mideleg))
                                        | (v & MIP_SSIP & h.mideleg)))
    # VS-mode's own view of the S-level CSRs that are not simply the current register.
    f.virtual[SIE] = Csr("sie", _read_vsie, _write_vsie)
    f.virtual[SIP] = Csr("sip", _read_vsip, _write_vsip)


def virtual_access(cpu, num: int, c: Csr | None, write: bool) -> Csr:
    """The CSR an access from VS- or VU-mode reaches, or the trap it raises.

    Illegal-instruction where HS-mode could not make the access either (no such CSR,
    an M-level CSR, a write to a read-only one, a counter mcounteren hides);
    virtual-instruction where HS-mode could but a virtual mode may not: the
    hypervisor and VS CSRs, any S-level CSR from VU-mode, satp under hstatus.VTVM,
    a counter hcounteren (or, from VU-mode, scounteren) hides."""
    level = (num >> 8) & 3
    if c is None or level == 3 or (write and num >> 10 == 3):
        raise Trap(traps.ILLEGAL_INSN, None)
    if level == 2 or (level == 1 and cpu.priv == U):
        raise Trap(traps.VIRTUAL_INSN, None)
    if num in COUNTERS:
        bit = 1 << (num - 0xC00)
        if not cpu.mcounteren & bit:
            raise Trap(traps.ILLEGAL_INSN, None)
        if not cpu.hcounteren & bit or (cpu.priv == U and not cpu.scounteren & bit):
            raise Trap(traps.VIRTUAL_INSN, None)
        return c
    if num == SATP:                     # (mstatus.TVM is HS-mode's: VS-mode has VTVM)
        if cpu.hstatus & HSTATUS_VTVM:
            raise Trap(traps.VIRTUAL_INSN, None)
        return c
    if c.check is not None and not c.check(cpu):
        raise Trap(traps.ILLEGAL_INSN, None)
    return cpu.csrs.virtual.get(num, c)
