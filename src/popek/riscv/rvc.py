"""The C extension as an expander: each 16-bit instruction becomes the 32-bit
instruction it stands for (ISA manual, "C" chapter, RVC instruction listings),
so compressed code runs through the same decoder and semantics as the rest.

``expand`` returns ``None`` for reserved and illegal encodings, and for the
floating-point forms, which :func:`expand_fp` expands for a CPU with D.
"""

from __future__ import annotations


def _r(op, rd, f3, rs1, rs2, f7):
    return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op


def _i(op, rd, f3, rs1, imm):
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op


def _s(op, f3, rs1, rs2, imm):
    imm &= 0xFFF
    return ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1F) << 7) | op


def _b(f3, rs1, rs2, imm):
    imm &= 0x1FFF
    return (((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3F) << 25) | (rs2 << 20) | (rs1 << 15) \
        | (f3 << 12) | (((imm >> 1) & 0xF) << 8) | (((imm >> 11) & 1) << 7) | 0x63


def _j(rd, imm):
    imm &= 0x1FFFFF
    return (((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3FF) << 21) | (((imm >> 11) & 1) << 20) \
        | (((imm >> 12) & 0xFF) << 12) | (rd << 7) | 0x6F


def _bits(v, hi, lo):
    return (v >> lo) & ((1 << (hi - lo + 1)) - 1)


def _sext(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


def expand(c: int) -> int | None:
    op, f3 = c & 3, c >> 13
    rdp, rs2p = 8 + _bits(c, 4, 2), 8 + _bits(c, 4, 2)
    rs1p = 8 + _bits(c, 9, 7)
    rd = _bits(c, 11, 7)
    rs2 = _bits(c, 6, 2)
    # The 6-bit immediate of CI-format: imm[5] at bit 12, imm[4:0] at bits 6:2.
    ci = _sext((_bits(c, 12, 12) << 5) | _bits(c, 6, 2), 6)
    if op == 0:
        if f3 == 0:    # c.addi4spn
            nz = (_bits(c, 12, 11) << 4) | (_bits(c, 10, 7) << 6) | (_bits(c, 6, 6) << 2) \
                | (_bits(c, 5, 5) << 3)
            return None if nz == 0 else _i(0x13, rdp, 0, 2, nz)
        uw = (_bits(c, 12, 10) << 3) | (_bits(c, 6, 6) << 2) | (_bits(c, 5, 5) << 6)
        ud = (_bits(c, 12, 10) << 3) | (_bits(c, 6, 5) << 6)
        if f3 == 2:    # c.lw
            return _i(0x03, rdp, 2, rs1p, uw)
        if f3 == 3:    # c.ld
            return _i(0x03, rdp, 3, rs1p, ud)
        if f3 == 6:    # c.sw
            return _s(0x23, 2, rs1p, rs2p, uw)
        if f3 == 7:    # c.sd
            return _s(0x23, 3, rs1p, rs2p, ud)
        return None    # c.fld, c.fsd, reserved
    if op == 1:
        if f3 == 0:    # c.addi / c.nop
            return _i(0x13, rd, 0, rd, ci)
        if f3 == 1:    # c.addiw
            return None if rd == 0 else _i(0x1B, rd, 0, rd, ci)
        if f3 == 2:    # c.li
            return _i(0x13, rd, 0, 0, ci)
        if f3 == 3:
            if rd == 2:    # c.addi16sp
                nz = _sext((_bits(c, 12, 12) << 9) | (_bits(c, 6, 6) << 4) | (_bits(c, 5, 5) << 6)
                           | (_bits(c, 4, 3) << 7) | (_bits(c, 2, 2) << 5), 10)
                return None if nz == 0 else _i(0x13, 2, 0, 2, nz)
            if ci == 0:    # c.lui with nzimm == 0 is reserved
                return None
            return ((ci & 0xFFFFF) << 12) | (rd << 7) | 0x37
        if f3 == 4:
            f2 = _bits(c, 11, 10)
            shamt = (_bits(c, 12, 12) << 5) | _bits(c, 6, 2)
            if f2 == 0:    # c.srli
                return _i(0x13, rs1p, 5, rs1p, shamt)
            if f2 == 1:    # c.srai
                return _i(0x13, rs1p, 5, rs1p, shamt | 0x400)
            if f2 == 2:    # c.andi
                return _i(0x13, rs1p, 7, rs1p, ci)
            sel = _bits(c, 6, 5)
            if not _bits(c, 12, 12):
                f3r, f7 = ((0, 0x20), (4, 0), (6, 0), (7, 0))[sel]    # sub xor or and
                return _r(0x33, rs1p, f3r, rs1p, rs2p, f7)
            if sel == 0:   # c.subw
                return _r(0x3B, rs1p, 0, rs1p, rs2p, 0x20)
            if sel == 1:   # c.addw
                return _r(0x3B, rs1p, 0, rs1p, rs2p, 0)
            return None
        if f3 == 5:    # c.j
            off = _sext((_bits(c, 12, 12) << 11) | (_bits(c, 11, 11) << 4) | (_bits(c, 10, 9) << 8)
                        | (_bits(c, 8, 8) << 10) | (_bits(c, 7, 7) << 6) | (_bits(c, 6, 6) << 7)
                        | (_bits(c, 5, 3) << 1) | (_bits(c, 2, 2) << 5), 12)
            return _j(0, off)
        # c.beqz / c.bnez
        off = _sext((_bits(c, 12, 12) << 8) | (_bits(c, 11, 10) << 3) | (_bits(c, 6, 5) << 6)
                    | (_bits(c, 4, 3) << 1) | (_bits(c, 2, 2) << 5), 9)
        return _b(0 if f3 == 6 else 1, rs1p, 0, off)
    if op == 2:
        if f3 == 0:    # c.slli
            return _i(0x13, rd, 1, rd, (_bits(c, 12, 12) << 5) | _bits(c, 6, 2))
        if f3 == 2:    # c.lwsp
            u = (_bits(c, 12, 12) << 5) | (_bits(c, 6, 4) << 2) | (_bits(c, 3, 2) << 6)
            return None if rd == 0 else _i(0x03, rd, 2, 2, u)
        if f3 == 3:    # c.ldsp
            u = (_bits(c, 12, 12) << 5) | (_bits(c, 6, 5) << 3) | (_bits(c, 4, 2) << 6)
            return None if rd == 0 else _i(0x03, rd, 3, 2, u)
        if f3 == 4:
            if not _bits(c, 12, 12):
                if rs2 == 0:   # c.jr
                    return None if rd == 0 else _i(0x67, 0, 0, rd, 0)
                return _r(0x33, rd, 0, 0, rs2, 0)      # c.mv
            if rs2 == 0:
                if rd == 0:    # c.ebreak
                    return 0x00100073
                return _i(0x67, 1, 0, rd, 0)           # c.jalr
            return _r(0x33, rd, 0, rd, rs2, 0)         # c.add
        if f3 == 6:    # c.swsp
            u = (_bits(c, 12, 9) << 2) | (_bits(c, 8, 7) << 6)
            return _s(0x23, 2, 2, rs2, u)
        if f3 == 7:    # c.sdsp
            u = (_bits(c, 12, 10) << 3) | (_bits(c, 9, 7) << 6)
            return _s(0x23, 3, 2, rs2, u)
        return None    # c.fldsp, c.fsdsp
    return None


def expand_fp(c: int) -> int | None:
    """The compressed double-precision loads and stores of RV64C (c.fld, c.fsd,
    c.fldsp, c.fsdsp), for a CPU with D; None for anything else."""
    op, f3 = c & 3, c >> 13
    ud = (_bits(c, 12, 10) << 3) | (_bits(c, 6, 5) << 6)
    if op == 0 and f3 == 1:      # c.fld
        return _i(0x07, 8 + _bits(c, 4, 2), 3, 8 + _bits(c, 9, 7), ud)
    if op == 0 and f3 == 5:      # c.fsd
        return _s(0x27, 3, 8 + _bits(c, 9, 7), 8 + _bits(c, 4, 2), ud)
    if op == 2 and f3 == 1:      # c.fldsp
        u = (_bits(c, 12, 12) << 5) | (_bits(c, 6, 5) << 3) | (_bits(c, 4, 2) << 6)
        return _i(0x07, _bits(c, 11, 7), 3, 2, u)
    if op == 2 and f3 == 5:      # c.fsdsp
        u = (_bits(c, 12, 10) << 3) | (_bits(c, 9, 7) << 6)
        return _s(0x27, 3, 2, _bits(c, 6, 2), u)
    return None
