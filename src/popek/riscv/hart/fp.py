"""The hart's floating-point unit (the F and D extensions: riscv/fd.py).

32 registers of 64 bits, ``f``; single-precision values live NaN-boxed in them
(the upper 32 bits all ones: a value that is not boxed reads as the canonical
NaN).  Every instruction first checks mstatus.FS (Off: illegal instruction, so
a kernel can switch FP state lazily) and marks it Dirty when it writes an FP
register or fflags.  The rounding mode comes from the instruction, or from frm
when it says "dynamic"; a reserved mode is an illegal instruction.  Flags accrue
in ``fflags``.  The arithmetic is softfloat.py, bit- and flag-exact.
"""

from __future__ import annotations

from popek.riscv import softfloat as sf
from popek.riscv import traps
from popek.riscv.csrs import MSTATUS_FS
from popek.riscv.traps import Trap

BOX = 0xFFFFFFFF00000000            # the upper half of a NaN-boxed single
FORMATS = {32: sf.F32, 64: sf.F64}
M64 = (1 << 64) - 1


class HartFp:
    """Mixed into :class:`~popek.riscv.hart.Hart`."""

    # -- state ---------------------------------------------------------------------------
    def _fp_on(self) -> None:
        if not self.mstatus & MSTATUS_FS:
            raise Trap(traps.ILLEGAL_INSN, None)

    def _rounding(self, insn: int) -> int:
        rm = insn >> 12 & 7
        if rm == 7:
            rm = self.frm
        if rm > 4:
            raise Trap(traps.ILLEGAL_INSN, None)
        return rm

    def _get(self, width: int, r: int) -> int:
        v = self.f[r]
        if width == 32:
            return v & 0xFFFFFFFF if v & BOX == BOX else sf.F32.canonical_nan
        return v

    def _set(self, width: int, r: int, bits: int) -> None:
        self.f[r] = bits | BOX if width == 32 else bits
        self.mstatus |= MSTATUS_FS                      # Dirty

    def _accrue(self, flags: int) -> None:
        if flags:
            self.fflags |= flags
            self.mstatus |= MSTATUS_FS

    # -- loads and stores ------------------------------------------------------------------
    def fload(self, rd: int, va: int, size: int) -> None:
        self._fp_on()
        v = self.load32(va) if size == 4 else self.load64(va)
        self._set(8 * size, rd, v)

    def fstore(self, rs: int, va: int, size: int) -> None:
        self._fp_on()
        if size == 4:
            self.store32(va, self.f[rs] & 0xFFFFFFFF)    # the raw bits, boxed or not
        else:
            self.store64(va, self.f[rs])

    # -- arithmetic --------------------------------------------------------------------------
    def farith(self, op: str, width: int, rd: int, rs1: int, rs2: int, insn: int) -> None:
        self._fp_on()
        fmt = FORMATS[width]
        bits, flags = getattr(sf, op)(fmt, self._get(width, rs1), self._get(width, rs2),
                                      self._rounding(insn))
        self._accrue(flags)
        self._set(width, rd, bits)

    def fsqrt(self, width: int, rd: int, rs1: int, insn: int) -> None:
        self._fp_on()
        bits, flags = sf.sqrt(FORMATS[width], self._get(width, rs1), self._rounding(insn))
        self._accrue(flags)
        self._set(width, rd, bits)

    def ffma(self, width: int, rd: int, rs1: int, rs2: int, insn: int, neg_product: int,
             neg_addend: int) -> None:
        """fmadd (a×b+c), fmsub (a×b−c), fnmsub (−a×b+c), fnmadd (−a×b−c); rs3 is insn[31:27]."""
        self._fp_on()
        fmt = FORMATS[width]
        sign = 1 << (width - 1)
        a = self._get(width, rs1) ^ (sign if neg_product else 0)
        c = self._get(width, insn >> 27) ^ (sign if neg_addend else 0)
        bits, flags = sf.fma(fmt, a, self._get(width, rs2), c, self._rounding(insn))
        self._accrue(flags)
        self._set(width, rd, bits)

    def fsgnj(self, width: int, rd: int, rs1: int, rs2: int, mode: int) -> None:
        """fsgnj (sign of rs2), fsgnjn (its opposite), fsgnjx (xor): no flags, no NaN rules."""
        self._fp_on()
        sign = 1 << (width - 1)
        a, b = self._get(width, rs1), self._get(width, rs2)
        s = b & sign if mode == 0 else (~b & sign if mode == 1 else (a ^ b) & sign)
        self._set(width, rd, (a & ~sign) | s)

    def fminmax(self, width: int, rd: int, rs1: int, rs2: int, want_max: int) -> None:
        self._fp_on()
        fmt = FORMATS[width]
        op = sf.fmax if want_max else sf.fmin
        bits, flags = op(fmt, self._get(width, rs1), self._get(width, rs2))
        self._accrue(flags)
        self._set(width, rd, bits)

    def fcompare(self, op: str, width: int, rs1: int, rs2: int) -> int:
        self._fp_on()
        result, flags = getattr(sf, op)(FORMATS[width], self._get(width, rs1),
                                        self._get(width, rs2))
        self._accrue(flags)
        return result

    def fclass(self, width: int, rs1: int) -> int:
        self._fp_on()
        return sf.classify(FORMATS[width], self._get(width, rs1))

    # -- moves and conversions ----------------------------------------------------------------
    def fmv_to_x(self, width: int, rs1: int) -> int:
        """fmv.x.w: the low 32 bits, sign-extended (whatever the boxing); fmv.x.d: all 64."""
        self._fp_on()
        v = self.f[rs1]
        if width == 32:
            v &= 0xFFFFFFFF
            return v | BOX if v >> 31 else v
        return v

    def fmv_from_x(self, width: int, rd: int, value: int) -> None:
        self._fp_on()
        self._set(width, rd, value & (0xFFFFFFFF if width == 32 else M64))

    def fcvt_to_int(self, width: int, rs1: int, insn: int, bits: int, signed: bool) -> int:
        self._fp_on()
        v, flags = sf.to_int(FORMATS[width], self._get(width, rs1), bits, signed,
                             self._rounding(insn))
        self._accrue(flags)
        if bits == 32 and v >> 31:                      # results are sign-extended to 64
            v |= BOX
        return v

    def fcvt_from_int(self, width: int, rd: int, value: int, insn: int, bits: int,
                      signed: bool) -> None:
        self._fp_on()
        v, flags = sf.from_int(FORMATS[width], value, bits, signed, self._rounding(insn))
        self._accrue(flags)
        self._set(width, rd, v)

    def fcvt_format(self, dst: int, src: int, rd: int, rs1: int, insn: int) -> None:
        self._fp_on()
        v, flags = sf.convert(FORMATS[src], FORMATS[dst], self._get(src, rs1),
                              self._rounding(insn))
        self._accrue(flags)
        self._set(dst, rd, v)
