"""The F and D extensions (single and double precision floating point) as an ISA
variant: ``rv64imafdc``, the base table plus these instructions.

Like every instruction, each is its encoding and a semantics snippet; the
snippets call the hart's floating-point unit (hart/fp.py), which checks
mstatus.FS, NaN-boxes single-precision values in the 64-bit registers, takes the
rounding mode from the instruction or frm, accrues fflags, and computes with the
soft-float core (softfloat.py).  ``FRD``/``FRS1``/``FRS2`` are the register fields
as numbers (f0 is a register like any other), ``INSN`` the instruction bits (rs3
and rm live there); ``x[rd]``/``x[rs1]`` are integer registers, as everywhere.
The compressed c.fld/c.fsd/c.fldsp/c.fsdsp expand to fld/fsd (rvc.expand_fp).
"""

from __future__ import annotations

from popek.riscv.isa import ALU, INSNS, Insn, Isa, _enc

FD_INSNS: list[Insn] = []


def _fp(name, fmt, enc, body):
    match, mask = enc
    FD_INSNS.append(Insn(name, fmt, match, mask, body, "", ALU, False, True, False, None))


# (suffix, fmt field, width): single and double precision.
for _sfx, _fmt, _w in (("s", 0, 32), ("d", 1, 64)):
    _size = _w // 8
    _f3 = 2 if _w == 32 else 3
    _fp(f"fl{'w' if _w == 32 else 'd'}", "FI", _enc(op=0x07, f3=_f3),
        f"h.fload(FRD, (x[rs1] + imm) & M, {_size})")
    _fp(f"fs{'w' if _w == 32 else 'd'}", "FS", _enc(op=0x27, f3=_f3),
        f"h.fstore(FRS2, (x[rs1] + imm) & M, {_size})")
    for _n, _op, _np, _na in (("fmadd", 0x43, 0, 0), ("fmsub", 0x47, 0, 1),
                              ("fnmsub", 0x4B, 1, 0), ("fnmadd", 0x4F, 1, 1)):
        _fp(f"{_n}.{_sfx}", "FR", _enc(op=_op, fmt=_fmt),
            f"h.ffma({_w}, FRD, FRS1, FRS2, INSN, {_np}, {_na})")
    for _n, _f5 in (("fadd", 0x00), ("fsub", 0x01), ("fmul", 0x02), ("fdiv", 0x03)):
        _fp(f"{_n}.{_sfx}", "FR", _enc(op=0x53, f7=_f5 << 2 | _fmt),
            f"h.farith('{_n[1:]}', {_w}, FRD, FRS1, FRS2, INSN)")
    _fp(f"fsqrt.{_sfx}", "FR", _enc(op=0x53, f7=0x0B << 2 | _fmt, rs2=0),
        f"h.fsqrt({_w}, FRD, FRS1, INSN)")
    for _n, _f3s in (("fsgnj", 0), ("fsgnjn", 1), ("fsgnjx", 2)):
        _fp(f"{_n}.{_sfx}", "FR", _enc(op=0x53, f7=0x04 << 2 | _fmt, f3=_f3s),
            f"h.fsgnj({_w}, FRD, FRS1, FRS2, {_f3s})")
    for _n, _f3s in (("fmin", 0), ("fmax", 1)):
        _fp(f"{_n}.{_sfx}", "FR", _enc(op=0x53, f7=0x05 << 2 | _fmt, f3=_f3s),
            f"h.fminmax({_w}, FRD, FRS1, FRS2, {_f3s})")
    for _n, _f3s in (("fle", 0), ("flt", 1), ("feq", 2)):
        _fp(f"{_n}.{_sfx}", "FR", _enc(op=0x53, f7=0x14 << 2 | _fmt, f3=_f3s),
            f"x[rd] = h.fcompare('{_n[1:]}', {_w}, FRS1, FRS2)")
    _fp(f"fclass.{_sfx}", "FR", _enc(op=0x53, f7=0x1C << 2 | _fmt, f3=1, rs2=0),
        f"x[rd] = h.fclass({_w}, FRS1)")
    _fp(f"fmv.x.{'w' if _w == 32 else 'd'}", "FR", _enc(op=0x53, f7=0x1C << 2 | _fmt, f3=0, rs2=0),
        f"x[rd] = h.fmv_to_x({_w}, FRS1)")
    _fp(f"fmv.{'w' if _w == 32 else 'd'}.x", "FR", _enc(op=0x53, f7=0x1E << 2 | _fmt, f3=0, rs2=0),
        f"h.fmv_from_x({_w}, FRD, x[rs1])")
    for _isfx, _sel, _ibits, _signed in (("w", 0, 32, True), ("wu", 1, 32, False),
                                          ("l", 2, 64, True), ("lu", 3, 64, False)):
        _fp(f"fcvt.{_isfx}.{_sfx}", "FR", _enc(op=0x53, f7=0x18 << 2 | _fmt, rs2=_sel),
            f"x[rd] = h.fcvt_to_int({_w}, FRS1, INSN, {_ibits}, {_signed})")
        _fp(f"fcvt.{_sfx}.{_isfx}", "FR", _enc(op=0x53, f7=0x1A << 2 | _fmt, rs2=_sel),
            f"h.fcvt_from_int({_w}, FRD, x[rs1], INSN, {_ibits}, {_signed})")
_fp("fcvt.s.d", "FR", _enc(op=0x53, f7=0x08 << 2 | 0, rs2=1), "h.fcvt_format(32, 64, FRD, FRS1, INSN)")
_fp("fcvt.d.s", "FR", _enc(op=0x53, f7=0x08 << 2 | 1, rs2=0), "h.fcvt_format(64, 32, FRD, FRS1, INSN)")

# RV64GC: I M A F D C, Zicsr, Zifencei; S and U modes.
RV64GC = Isa("rv64imafdc", INSNS + FD_INSNS, extensions="ACDFIMSU",
             isa_string="rv64imafdc_zicsr_zifencei")
