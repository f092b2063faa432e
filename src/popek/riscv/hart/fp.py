"""The hart's floating-point unit (the F and D extensions: riscv/fd.py).

32 registers of 64 bits, ``f``; single-precision values live NaN-boxed in them
(the upper 32 bits all ones: a value that is not boxed reads as the canonical
NaN).  Every instruction first checks mstatus.FS (Off: illegal instruction, so
a kernel can switch FP state lazily) and marks it Dirty when it writes an FP
register or fflags.  The rounding mode comes from the instruction, or from frm
when it says "dynamic"; a reserved mode is an illegal instruction.  Flags accrue
in ``fflags``.  The arithmetic is softfloat.py, bit- and flag-exact, through its
fast path (host floats where they provably give the same bits and flags, its
integer reference elsewhere), told the flags already raised (``known``).

These methods are what every FP instruction's snippet calls, in both engines, so
the hot ones (loads, stores, arithmetic) do their checks inline rather than in
helper methods: a call costs about a fifth of a fast-path operation.
"""

from __future__ import annotations

from popek.riscv import softfloat as sf
from popek.riscv import traps
from popek.riscv.csrs import MSTATUS_FS
from popek.riscv.traps import Trap

BOX = 0xFFFFFFFF00000000            # the upper half of a NaN-boxed single
M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
NAN32 = sf.F32.canonical_nan        # what a single that is not NaN-boxed reads as
SIGN = {32: 1 << 31, 64: 1 << 63}
FORMATS = {32: sf.F32, 64: sf.F64}
ARITH = {64: {"add": sf.add64, "sub": sf.sub64, "mul": sf.mul64, "div": sf.div64},
         32: {"add": sf.add32, "sub": sf.sub32, "mul": sf.mul32, "div": sf.div32}}


class HartFp:
    """Mixed into :class:`~popek.riscv.hart.Hart`."""

    # -- state ---------------------------------------------------------------------------
    def _fp_on(self) -> None:
        if not self.mstatus & MSTATUS_FS:
            raise Trap(traps.ILLEGAL_INSN, None)

    def _fp_rm(self, insn: int) -> int:
        """FS on (else illegal), and the instruction's rounding mode (reserved: illegal)."""
        if not self.mstatus & MSTATUS_FS:
            raise Trap(traps.ILLEGAL_INSN, None)
        rm = insn >> 12 & 7
        if rm == 7:
            rm = self.frm
        if rm > 4:
            raise Trap(traps.ILLEGAL_INSN, None)
        return rm

    def _get(self, width: int, r: int) -> int:
        v = self.f[r]
        if width == 32:
            return v & M32 if v >= BOX else NAN32
        return v

    def _set(self, width: int, r: int, bits: int, flags: int = 0) -> None:
        """Write an FP register (a single NaN-boxed), accrue ``flags``; FS becomes Dirty."""
        self.f[r] = bits | BOX if width == 32 else bits
        if flags:
            self.fflags |= flags
        self.mstatus |= MSTATUS_FS

    def _accrue(self, flags: int) -> None:
        if flags:
            self.fflags |= flags
            self.mstatus |= MSTATUS_FS

    # -- loads and stores ------------------------------------------------------------------
    def fload(self, rd: int, va: int, size: int) -> None:
        if not self.mstatus & MSTATUS_FS:
            raise Trap(traps.ILLEGAL_INSN, None)
        self.f[rd] = self.load32(va) | BOX if size == 4 else self.load64(va)
        self.mstatus |= MSTATUS_FS

    def fstore(self, rs: int, va: int, size: int) -> None:
        if not self.mstatus & MSTATUS_FS:
            raise Trap(traps.ILLEGAL_INSN, None)
        if size == 4:
            self.store32(va, self.f[rs] & M32)          # the raw bits, boxed or not
        else:
            self.store64(va, self.f[rs])

    # -- arithmetic --------------------------------------------------------------------------
    def farith(self, op: str, width: int, rd: int, rs1: int, rs2: int, insn: int) -> None:
        rm = self._fp_rm(insn)
        f = self.f
        a, b = f[rs1], f[rs2]
        if width == 32:
            a = a & M32 if a >= BOX else NAN32
            b = b & M32 if b >= BOX else NAN32
        self._set(width, rd, *ARITH[width][op](a, b, rm, self.fflags))

    def fsqrt(self, width: int, rd: int, rs1: int, insn: int) -> None:
        rm = self._fp_rm(insn)
        fn = sf.sqrt64 if width == 64 else sf.sqrt32
        self._set(width, rd, *fn(self._get(width, rs1), rm, self.fflags))

    def ffma(self, width: int, rd: int, rs1: int, rs2: int, insn: int, neg_product: int,
             neg_addend: int) -> None:
        """fmadd (a×b+c), fmsub (a×b−c), fnmsub (−a×b+c), fnmadd (−a×b−c); rs3 is insn[31:27]."""
        rm = self._fp_rm(insn)
        f = self.f
        a, b, c = f[rs1], f[rs2], f[insn >> 27]
        if width == 32:
            a = a & M32 if a >= BOX else NAN32
            b = b & M32 if b >= BOX else NAN32
            c = c & M32 if c >= BOX else NAN32
        if neg_product:
            a ^= SIGN[width]
        if neg_addend:
            c ^= SIGN[width]
        fn = sf.fma64 if width == 64 else sf.fma32
        self._set(width, rd, *fn(a, b, c, rm, self.fflags))

    def fsgnj(self, width: int, rd: int, rs1: int, rs2: int, mode: int) -> None:
        """fsgnj (sign of rs2), fsgnjn (its opposite), fsgnjx (xor): no flags, no NaN rules."""
        self._fp_on()
        sign = SIGN[width]
        a, b = self._get(width, rs1), self._get(width, rs2)
        s = b & sign if mode == 0 else (~b & sign if mode == 1 else (a ^ b) & sign)
        self._set(width, rd, (a & ~sign) | s)

    def fminmax(self, width: int, rd: int, rs1: int, rs2: int, want_max: int) -> None:
        self._fp_on()
        self._set(width, rd, *sf.min_max(width, self._get(width, rs1), self._get(width, rs2),
                                         bool(want_max)))

    def fcompare(self, op: str, width: int, rs1: int, rs2: int) -> int:
        self._fp_on()
        result, flags = sf.compare(op, width, self._get(width, rs1), self._get(width, rs2))
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
            v &= M32
            return v | BOX if v >> 31 else v
        return v

    def fmv_from_x(self, width: int, rd: int, value: int) -> None:
        self._fp_on()
        self._set(width, rd, value & (M32 if width == 32 else M64))

    def fcvt_to_int(self, width: int, rs1: int, insn: int, bits: int, signed: bool) -> int:
        rm = self._fp_rm(insn)
        v, flags = sf.to_int_fast(width, self._get(width, rs1), bits, signed, rm)
        self._accrue(flags)
        if bits == 32 and v >> 31:                      # results are sign-extended to 64
            v |= BOX
        return v

    def fcvt_from_int(self, width: int, rd: int, value: int, insn: int, bits: int,
                      signed: bool) -> None:
        rm = self._fp_rm(insn)
        self._set(width, rd, *sf.from_int_fast(width, value, bits, signed, rm))

    def fcvt_format(self, dst: int, src: int, rd: int, rs1: int, insn: int) -> None:
        rm = self._fp_rm(insn)
        self._set(dst, rd, *sf.convert_fast(src, dst, self._get(src, rs1), rm))
