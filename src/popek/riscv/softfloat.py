"""IEEE 754 binary32 and binary64 arithmetic, exact to the bit and the flag, in
integers (the F and D extensions' arithmetic; RISC-V unprivileged spec, chapters
"F" and "D").

Python's float is binary64 with round-to-nearest-even only, no exception flags,
and no binary32; so values are taken apart into sign, integer significand and
exponent, operated on exactly (Python integers do not overflow), and rounded
once, in :func:`round_pack`, by any of the five rounding modes, raising the flags
the spec asks for:

    NV invalid  DZ divide by zero  OF overflow  UF underflow  NX inexact
    (fflags bits 4..0)

RISC-V's choices where IEEE 754 leaves one: tininess is detected *after*
rounding; a NaN result is always the canonical NaN (no payload propagation);
``fmin``/``fmax`` are IEEE 754-2019 minimumNumber/maximumNumber with -0 < +0; a
fused multiply-add of infinity and zero is invalid even when the addend is a quiet
NaN; conversions to integers saturate (NaN converts to the largest integer).

Every operation takes the format (:data:`F32`, :data:`F64`), operand bit patterns
and a rounding mode, and returns ``(result bits, flags)``: no state, so the
interpreter and the translator call the same functions.  (TinyEMU's softfp and
Berkeley SoftFloat show the algorithms; this is written for Python integers.)
"""

from __future__ import annotations

import math
import sys
from math import isqrt
from typing import NamedTuple

# Rounding modes (frm), and the flags (fflags).
RNE, RTZ, RDN, RUP, RMM = 0, 1, 2, 3, 4
NX, UF, OF, DZ, NV = 1, 2, 4, 8, 16


class Format(NamedTuple):
    exp_bits: int
    frac_bits: int

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def width(self) -> int:
        return 1 + self.exp_bits + self.frac_bits

    @property
    def canonical_nan(self) -> int:
        return ((1 << self.exp_bits) - 1) << self.frac_bits | 1 << (self.frac_bits - 1)


F32 = Format(8, 23)
F64 = Format(11, 52)

# Classes, as fclass reports them (bit numbers of its result).
NEG_INF, NEG_NORMAL, NEG_SUBNORMAL, NEG_ZERO = 0, 1, 2, 3
POS_ZERO, POS_SUBNORMAL, POS_NORMAL, POS_INF, SNAN, QNAN = 4, 5, 6, 7, 8, 9


# -- taking values apart ---------------------------------------------------------------
def fields(f: Format, x: int) -> tuple[int, int, int]:
    """(sign, biased exponent, fraction) of the bit pattern ``x``."""
    return x >> (f.width - 1) & 1, x >> f.frac_bits & ((1 << f.exp_bits) - 1), \
        x & ((1 << f.frac_bits) - 1)


def is_nan(f: Format, x: int) -> bool:
    _, e, m = fields(f, x)
    return e == (1 << f.exp_bits) - 1 and m != 0


def is_snan(f: Format, x: int) -> bool:
    return is_nan(f, x) and not x >> (f.frac_bits - 1) & 1


def is_inf(f: Format, x: int) -> bool:
    _, e, m = fields(f, x)
    return e == (1 << f.exp_bits) - 1 and m == 0


def is_zero(f: Format, x: int) -> bool:
    return x & ((1 << (f.width - 1)) - 1) == 0


def decode(f: Format, x: int) -> tuple[int, int, int]:
    """A finite value as (sign, significand, exponent): (-1)^sign × significand × 2^exponent."""
    s, e, m = fields(f, x)
    if e == 0:
        return s, m, 1 - f.bias - f.frac_bits             # zero or subnormal
    return s, m | 1 << f.frac_bits, e - f.bias - f.frac_bits


def infinity(f: Format, sign: int) -> int:
    return sign << (f.width - 1) | ((1 << f.exp_bits) - 1) << f.frac_bits


def zero(f: Format, sign: int) -> int:
    return sign << (f.width - 1)


def largest(f: Format, sign: int) -> int:
    return sign << (f.width - 1) | ((1 << f.exp_bits) - 2) << f.frac_bits | ((1 << f.frac_bits) - 1)


# -- rounding ----------------------------------------------------------------------------
def _increment(rm: int, sign: int, lsb: int, half: int, rest: bool) -> bool:
    """Whether rounding adds one ulp: ``half`` is the first dropped bit, ``rest``
    whether anything below it was non-zero, ``lsb`` the kept least significant bit."""
    if rm == RNE:
        return bool(half and (rest or lsb))
    if rm == RMM:
        return bool(half)
    if rm == RDN:
        return bool(sign and (half or rest))
    if rm == RUP:
        return bool(not sign and (half or rest))
    return False                                            # RTZ


def round_pack(f: Format, sign: int, m: int, e: int, rm: int, sticky: bool = False) -> tuple[int, int]:
    """Round (-1)^sign × (m + ε) × 2^e to format ``f`` by mode ``rm``: ``sticky`` says a
    non-zero ε < 1 lies below m's last bit (m must then carry at least two bits
    below the result's precision).  Returns (bits, flags)."""
    if m == 0:
        if not sticky:
            return zero(f, sign), 0
        m, e = 1, e - 2                                      # (only ε: round it as a tiny value)
        sticky = True
    p = f.frac_bits + 1
    emin = 1 - f.bias
    top = e + m.bit_length() - 1                            # value in [2^top, 2^(top+1))
    lsb = max(top, emin) - (p - 1)                          # exponent of the kept last bit
    kept, half, rest = _split(m, lsb - e, sticky)
    inexact = half or rest
    flags = 0
    if inexact:
        flags |= NX
        # Tininess after rounding: as if the exponent range were unbounded, the
        # result rounds below 2^emin.
        if top < emin:
            tiny = True
            if top == emin - 1:
                k2, h2, r2 = _split(m, top - (p - 1) - e, sticky)
                if _increment(rm, sign, k2 & 1, h2, r2):
                    k2 += 1
                tiny = k2 < 1 << p                           # did not round up to 2^emin
            if tiny:
                flags |= UF
    if _increment(rm, sign, kept & 1, half, rest):
        kept += 1
        if kept == 1 << p:                                  # carried out: one more exponent
            kept >>= 1
            lsb += 1
    if kept >> (p - 1) == 0:                                # subnormal (or zero)
        return sign << (f.width - 1) | kept, flags
    exp = lsb + (p - 1) + f.bias
    if exp >= (1 << f.exp_bits) - 1:                        # overflow
        flags |= OF | NX
        to_inf = rm in (RNE, RMM) or (rm == RUP and not sign) or (rm == RDN and sign)
        return (infinity(f, sign) if to_inf else largest(f, sign)), flags
    return sign << (f.width - 1) | exp << f.frac_bits | (kept & ((1 << f.frac_bits) - 1)), flags


def _split(m: int, drop: int, sticky: bool) -> tuple[int, int, bool]:
    """m without its ``drop`` low bits: (kept, first dropped bit, anything non-zero below it)."""
    if drop <= 0:
        return m << -drop, 0, sticky
    return m >> drop, m >> (drop - 1) & 1, bool(m & ((1 << (drop - 1)) - 1)) or sticky


# -- NaNs --------------------------------------------------------------------------------
def _nan_operands(f: Format, *xs: int) -> tuple[bool, int]:
    """Whether any operand is a NaN, and NV if any is signalling."""
    nan = any(is_nan(f, x) for x in xs)
    return nan, (NV if any(is_snan(f, x) for x in xs) else 0)


# -- arithmetic --------------------------------------------------------------------------
def add(f: Format, a: int, b: int, rm: int) -> tuple[int, int]:
    nan, flags = _nan_operands(f, a, b)
    if nan:
        return f.canonical_nan, flags
    if is_inf(f, a) or is_inf(f, b):
        if is_inf(f, a) and is_inf(f, b) and (a ^ b) >> (f.width - 1):
            return f.canonical_nan, NV                      # inf - inf
        return (a if is_inf(f, a) else b), 0
    sa, ma, ea = decode(f, a)
    sb, mb, eb = decode(f, b)
    e = min(ea, eb)
    va = (ma << (ea - e)) * (-1 if sa else 1)
    vb = (mb << (eb - e)) * (-1 if sb else 1)
    v = va + vb
    if v == 0:
        # An exact zero: -0 only from (-0) + (-0), or from x - x when rounding down.
        sign = sa if (ma == 0 and mb == 0 and sa == sb) else int(rm == RDN)
        return zero(f, sign), 0
    return round_pack(f, int(v < 0), abs(v), e, rm)


def sub(f: Format, a: int, b: int, rm: int) -> tuple[int, int]:
    return add(f, a, b ^ 1 << (f.width - 1), rm)


def mul(f: Format, a: int, b: int, rm: int) -> tuple[int, int]:
    nan, flags = _nan_operands(f, a, b)
    if nan:
        return f.canonical_nan, flags
    sign = (a ^ b) >> (f.width - 1) & 1
    if is_inf(f, a) or is_inf(f, b):
        if is_zero(f, a) or is_zero(f, b):
            return f.canonical_nan, NV                      # inf × 0
        return infinity(f, sign), 0
    _, ma, ea = decode(f, a)
    _, mb, eb = decode(f, b)
    return round_pack(f, sign, ma * mb, ea + eb, rm)


def div(f: Format, a: int, b: int, rm: int) -> tuple[int, int]:
    nan, flags = _nan_operands(f, a, b)
    if nan:
        return f.canonical_nan, flags
    sign = (a ^ b) >> (f.width - 1) & 1
    if is_inf(f, a):
        return (f.canonical_nan, NV) if is_inf(f, b) else (infinity(f, sign), 0)
    if is_inf(f, b):
        return zero(f, sign), 0
    if is_zero(f, b):
        return (f.canonical_nan, NV) if is_zero(f, a) else (infinity(f, sign), DZ)
    if is_zero(f, a):
        return zero(f, sign), 0
    _, ma, ea = decode(f, a)
    _, mb, eb = decode(f, b)
    k = max(0, f.frac_bits + 4 + mb.bit_length() - ma.bit_length())  # p + 3 quotient bits
    q, r = divmod(ma << k, mb)
    return round_pack(f, sign, q, ea - eb - k, rm, r != 0)


def sqrt(f: Format, a: int, rm: int) -> tuple[int, int]:
    nan, flags = _nan_operands(f, a)
    if nan:
        return f.canonical_nan, flags
    if is_zero(f, a):
        return a, 0                                         # sqrt(-0) = -0
    if a >> (f.width - 1):
        return f.canonical_nan, NV
    if is_inf(f, a):
        return a, 0
    _, m, e = decode(f, a)
    if e & 1:
        m, e = m << 1, e - 1
    k = max(0, (2 * (f.frac_bits + 4) - m.bit_length() + 1) // 2 + 1)
    big = m << (2 * k)
    r = isqrt(big)
    return round_pack(f, 0, r, (e - 2 * k) // 2, rm, r * r != big)


def fma(f: Format, a: int, b: int, c: int, rm: int) -> tuple[int, int]:
    """a × b + c, rounded once."""
    inf_times_zero = (is_inf(f, a) and is_zero(f, b)) or (is_zero(f, a) and is_inf(f, b))
    nan, flags = _nan_operands(f, a, b, c)
    if inf_times_zero:
        return f.canonical_nan, NV                          # even when c is a quiet NaN
    if nan:
        return f.canonical_nan, flags
    psign = (a ^ b) >> (f.width - 1) & 1
    csign = c >> (f.width - 1) & 1
    if is_inf(f, a) or is_inf(f, b):
        if is_inf(f, c) and csign != psign:
            return f.canonical_nan, NV
        return infinity(f, psign), 0
    if is_inf(f, c):
        return c, 0
    _, ma, ea = decode(f, a)
    _, mb, eb = decode(f, b)
    _, mc, ec = decode(f, c)
    mp, ep = ma * mb, ea + eb
    e = min(ep, ec)
    v = (mp << (ep - e)) * (-1 if psign else 1) + (mc << (ec - e)) * (-1 if csign else 1)
    if v == 0:
        both_zero = mp == 0 and mc == 0
        sign = psign if (both_zero and psign == csign) else int(rm == RDN)
        return zero(f, sign), 0
    return round_pack(f, int(v < 0), abs(v), e, rm)


# -- comparisons, min/max, class ----------------------------------------------------------
def _less(f: Format, a: int, b: int) -> bool:
    """a < b for two non-NaN values (so -0 == +0)."""
    if is_zero(f, a) and is_zero(f, b):
        return False
    sa, sb = a >> (f.width - 1), b >> (f.width - 1)
    if sa != sb:
        return bool(sa)
    mag_a, mag_b = a & ((1 << (f.width - 1)) - 1), b & ((1 << (f.width - 1)) - 1)
    return mag_a > mag_b if sa else mag_a < mag_b


def eq(f: Format, a: int, b: int) -> tuple[int, int]:
    """feq: quiet (invalid only for a signalling NaN)."""
    nan, flags = _nan_operands(f, a, b)
    if nan:
        return 0, flags
    return int(a == b or (is_zero(f, a) and is_zero(f, b))), 0


def lt(f: Format, a: int, b: int) -> tuple[int, int]:
    """flt: signalling (invalid for any NaN)."""
    if is_nan(f, a) or is_nan(f, b):
        return 0, NV
    return int(_less(f, a, b)), 0


def le(f: Format, a: int, b: int) -> tuple[int, int]:
    """fle: signalling (invalid for any NaN)."""
    if is_nan(f, a) or is_nan(f, b):
        return 0, NV
    return int(not _less(f, b, a)), 0


def _min_max(f: Format, a: int, b: int, want_max: bool) -> tuple[int, int]:
    flags = NV if is_snan(f, a) or is_snan(f, b) else 0
    if is_nan(f, a) and is_nan(f, b):
        return f.canonical_nan, flags
    if is_nan(f, a):
        return b, flags
    if is_nan(f, b):
        return a, flags
    if is_zero(f, a) and is_zero(f, b):                     # -0 < +0
        sa = a >> (f.width - 1)
        return (b if sa else a) if want_max else (a if sa else b), flags
    a_less = _less(f, a, b)
    return (b if a_less else a) if want_max else (a if a_less else b), flags


def fmin(f: Format, a: int, b: int) -> tuple[int, int]:
    return _min_max(f, a, b, False)


def fmax(f: Format, a: int, b: int) -> tuple[int, int]:
    return _min_max(f, a, b, True)


def classify(f: Format, a: int) -> int:
    """fclass: one bit set, by :data:`NEG_INF` ... :data:`QNAN`."""
    s, e, m = fields(f, a)
    if e == (1 << f.exp_bits) - 1:
        if m == 0:
            return 1 << (NEG_INF if s else POS_INF)
        return 1 << (QNAN if m >> (f.frac_bits - 1) else SNAN)
    if e == 0:
        if m == 0:
            return 1 << (NEG_ZERO if s else POS_ZERO)
        return 1 << (NEG_SUBNORMAL if s else POS_SUBNORMAL)
    return 1 << (NEG_NORMAL if s else POS_NORMAL)


# -- conversions ---------------------------------------------------------------------------
def to_int(f: Format, a: int, bits: int, signed: bool, rm: int) -> tuple[int, int]:
    """fcvt.{w,wu,l,lu}: the integer (two's complement in ``bits`` bits), saturating
    with NV where it does not fit (NaN converts to the largest), NX where inexact."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    mask = (1 << bits) - 1
    if is_nan(f, a):
        return hi & mask, NV
    sign = a >> (f.width - 1) & 1
    if is_inf(f, a):
        return (lo if sign else hi) & mask, NV
    _, m, e = decode(f, a)
    if e >= 0:
        v, inexact = m << e, False
    else:
        kept, half, rest = _split(m, -e, False)
        inexact = bool(half or rest)
        v = kept + _increment(rm, sign, kept & 1, half, rest)
    v = -v if sign else v
    if v < lo or v > hi:
        return (lo if sign else hi) & mask, NV
    return v & mask, (NX if inexact else 0)


def from_int(f: Format, v: int, bits: int, signed: bool, rm: int) -> tuple[int, int]:
    """fcvt.{s,d}.{w,wu,l,lu}: the low ``bits`` bits of ``v`` as an integer, rounded."""
    v &= (1 << bits) - 1
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return round_pack(f, int(v < 0), abs(v), 0, rm)


def convert(src: Format, dst: Format, a: int, rm: int) -> tuple[int, int]:
    """fcvt.s.d / fcvt.d.s."""
    nan, flags = _nan_operands(src, a)
    if nan:
        return dst.canonical_nan, flags
    sign = a >> (src.width - 1) & 1
    if is_inf(src, a):
        return infinity(dst, sign), 0
    _, m, e = decode(src, a)
    return round_pack(dst, sign, m, e, rm)


# -- the fast path: the host's binary64 where it provably gives the same bits and flags ------
#
# The integer code above is the reference; it costs ~10 µs an operation.  The host's
# float is IEEE binary64 rounding to nearest-even, and its +, -, ×, ÷ and sqrt are
# correctly rounded, so for the common case (finite operands, a normal result well
# inside the range) its result is the RNE result, and what the flags and the other
# rounding modes need is only whether the exact result lies above or below it, and
# for RMM whether it is a tie.  Error-free transformations give that exactly, in
# host floats:
#
#   add  TwoSum (Knuth): r + err == x + y exactly, when nothing overflows;
#   mul  TwoProduct (Dekker, Veltkamp's split): r + err == x × y exactly, when nothing
#        overflows and |x × y| ≥ 2^-967 (no partial product underflows);
#   div  the remainder x − r·y, exactly representable: r·y = p + e by TwoProduct,
#        x − p is exact (Sterbenz: p is within a factor 2 of x), and (x − p) − e is
#        then rounded once, which keeps its sign (zero only when it is exactly zero);
#   sqrt the same with x − r·r;
#   fma  TwoProduct, then TwoSums, until x × y + z == r + w + δ exactly; c = RN(w + δ)
#        has the sign of the error, and |c| below half the gap from r to its
#        neighbour on c's side proves r is the correctly rounded result (RN is
#        monotonic: |c| < h, h a float, implies |w + δ| < h); else the slow path.
#
# With the error's sign, a directed mode is r or its neighbour, one step of the bit
# pattern (r is normal and not near the range's ends: a step stays normal and finite).
# Ties happen only for add, mul and fma (x ÷ y or √x equal to a midpoint would need
# more bits than the operands have), so only there can RMM differ from RNE.  The
# range checks (|r| in [2^-1020, 2^1022], or 2^-966 where a product must not
# underflow) leave no overflow, no underflow (an exact normal result is not tiny),
# no invalid and no division by zero; NaN fails every comparison and goes to the slow
# path with infinities, zeros, subnormal results and out-of-range cases.  A
# check that an intermediate overflowed (an error term that is not finite) sends that
# case to the slow path too.
#
# binary32 is computed in binary64.  x × y of two singles is exact there (48 bits);
# x ± y and x × y + z get an exact error from TwoSum.  For x ÷ y and √x, the argument
# behind the double-rounding theorem (Figueroa, "When is double rounding innocuous?",
# 1995; 53 ≥ 2·24 + 2): with x = X·2^a, y = Y·2^b (X, Y < 2^24) and 2^c the spacing
# of 25-bit numbers (singles and the midpoints between them) where the exact q lies,
# q − g for such a number g is (X·2^a − g·Y·2^b) / (Y·2^b), zero or at least
# min(2^c / Y, q / X) > 2^(c−24) in magnitude, far above half a binary64 ulp there,
# 2^(c−29) (for √x, x − g² over q + g, likewise); and q is never a midpoint itself (its
# odd 25-bit significand times Y's, or squared, cannot be X).  So s = RN64(q) lies
# strictly between the same neighbouring singles and midpoints as q, or is a single
# exactly when q is that single: :func:`_round32` rounds s (with the sign of an error
# term below it, where there is one) to binary32 in integers, in any mode; to nearest
# with NX raised already and no error term, the host's own conversion does (the theorem).
#
# ``known`` is the flags already raised (fflags): a fast function may leave those out of
# the flags it returns (accruing them changes nothing), which lets RNE skip the error
# terms once NX is set, as it is in almost any program after its first inexact result.
# Every function here returns exactly what the reference returns otherwise
# (tests/test_softfloat_fast.py checks them against it, in all modes).

_BUF = bytearray(8)
_Q = memoryview(_BUF).cast("Q")         # the buffer as an unsigned 64-bit integer,
_D = memoryview(_BUF).cast("d")         # as a binary64,
_I = memoryview(_BUF).cast("I")         # its first 4 bytes as an unsigned 32-bit integer,
_F = memoryview(_BUF).cast("f")         # and as a binary32 (stored: rounded to nearest-even)

_LO = 2.0 ** -1020                      # binary64 results in [_LO, _HI] in magnitude
_LO_PRODUCT = 2.0 ** -966               # (where a TwoProduct must not underflow)
_HI = 2.0 ** 1022
_LO32 = 2.0 ** -125                     # binary32 results in [_LO32, _HI32]: _round32
_HI32 = 2.0 ** 126
_SPLIT = 134217729.0                    # 2^27 + 1: Veltkamp's splitting constant
_ulp = math.ulp
_sqrt = math.sqrt
_nextafter = math.nextafter
_INF = math.inf


def _finish64(r: float, err: float, rm: int) -> tuple[int, int]:
    """The bits and flags of the exact result r + err (r its RNE rounding, normal and
    inside the fast range; err non-zero exactly when inexact, with the exact error's
    sign, and the exact error itself when ``rm`` is RMM)."""
    _D[0] = r
    bits = _Q[0]
    if err == 0:
        return bits, 0
    if rm == RNE:
        return bits, NX
    away = (err > 0) == (r > 0)                 # the exact result is farther from zero
    if rm == RTZ:
        return (bits if away else bits - 1), NX
    if rm == RMM:                               # a tie away from r: the other neighbour
        return (bits + 1 if away and abs(err) == _ulp(r) * 0.5 else bits), NX
    if (rm == RUP) == (r > 0):                  # rounding away from zero
        return (bits + 1 if away else bits), NX
    return (bits if away else bits - 1), NX


def _two_product_error(x: float, y: float, r: float) -> float:
    """x × y − r exactly, r = RN(x × y) (Dekker): not finite if a split overflowed."""
    c = _SPLIT * x
    xh = c - (c - x)
    xl = x - xh
    c = _SPLIT * y
    yh = c - (c - y)
    yl = y - yh
    return ((xh * yh - r) + xh * yl + xl * yh) + xl * yl


def add64(a: int, b: int, rm: int, known: int = 0) -> tuple[int, int]:
    _Q[0] = a
    x = _D[0]
    _Q[0] = b
    y = _D[0]
    r = x + y
    if _LO <= abs(r) <= _HI:
        if rm == RNE and known & NX:
            _D[0] = r
            return _Q[0], 0
        bb = r - x
        err = (x - (r - bb)) + (y - bb)         # TwoSum: exact (|r| ≤ 2^1022: no overflow)
        return _finish64(r, err, rm)
    return add(F64, a, b, rm)


def sub64(a: int, b: int, rm: int, known: int = 0) -> tuple[int, int]:
    return add64(a, b ^ 1 << 63, rm, known)


def mul64(a: int, b: int, rm: int, known: int = 0) -> tuple[int, int]:
    _Q[0] = a
    x = _D[0]
    _Q[0] = b
    y = _D[0]
    r = x * y
    if _LO_PRODUCT <= abs(r) <= _HI:
        if rm == RNE and known & NX:
            _D[0] = r
            return _Q[0], 0
        err = _two_product_error(x, y, r)
        if -_HI < err < _HI:
            return _finish64(r, err, rm)
    return mul(F64, a, b, rm)


def div64(a: int, b: int, rm: int, known: int = 0) -> tuple[int, int]:
    _Q[0] = a
    x = _D[0]
    _Q[0] = b
    y = _D[0]
    if y and _LO_PRODUCT <= abs(x):
        r = x / y
        if _LO <= abs(r) <= _HI:
            if rm == RNE and known & NX:
                _D[0] = r
                return _Q[0], 0
            p = r * y
            rem = (x - p) - _two_product_error(r, y, p)     # x − r·y, its sign exact
            if -_HI < rem < _HI:
                return _finish64(r, rem if y > 0 else -rem, rm & 3)   # no ties: RMM is RNE
    return div(F64, a, b, rm)


def sqrt64(a: int, rm: int, known: int = 0) -> tuple[int, int]:
    _Q[0] = a
    x = _D[0]
    if _LO_PRODUCT <= x <= _HI:                 # (√x is then in [2^-483, 2^511])
        r = _sqrt(x)
        if rm == RNE and known & NX:
            _D[0] = r
            return _Q[0], 0
        p = r * r
        return _finish64(r, (x - p) - _two_product_error(r, r, p), rm & 3)
    return sqrt(F64, a, rm)


def fma64(a: int, b: int, c: int, rm: int, known: int = 0) -> tuple[int, int]:
    """a × b + c rounded once: see the comment above (no flag but NX can arise here).
    The hottest operation of compiled FP code (-ffp-contract): the nearest-even ending
    is written out here, not called."""
    _Q[0] = a
    x = _D[0]
    _Q[0] = b
    y = _D[0]
    _Q[0] = c
    z = _D[0]
    p = x * y
    if _LO_PRODUCT <= abs(p) <= _HI and abs(z) <= _HI:
        e = _two_product_error(x, y, p)         # x·y = p + e
        s = p + z
        bb = s - p
        t = (p - (s - bb)) + (z - bb)           # p + z = s + t
        g = t + e
        bb = g - t
        d = (t - (g - bb)) + (e - bb)           # t + e = g + d
        r = s + g
        bb = r - s
        w = (s - (r - bb)) + (g - bb)           # s + g = r + w: x·y + z = r + w + d
        if _LO <= abs(r) <= _HI:
            err = w + d                         # the sign of x·y + z − r
            _D[0] = r
            if err == 0:
                return _Q[0], 0
            h = (_nextafter(r, err * _INF) - r) * 0.5
            if abs(err) < abs(h):               # not near a midpoint: r is RN, RMM too
                if rm == RNE or rm == RMM:
                    return _Q[0], NX
                return _finish64(r, err, rm)
    return fma(F64, a, b, c, rm)


def _round32(s: float, t: float, rm: int) -> tuple[int, int] | None:
    """binary32 bits and flags of s + t rounded by ``rm``, for s a binary64 and t its
    error (|t| ≤ half an ulp of s; only its sign counts); None outside the fast range.

    In units of half a binary64 ulp the exact significand is 2m + d, d the sign of t
    relative to s: odd when d is not 0, so never exactly on a boundary where it was
    not already; its 30 bits below binary32's precision decide the rounding."""
    _D[0] = s
    b = _Q[0]
    e = (b >> 52 & 0x7FF) - 896                 # the binary32 biased exponent
    if not 2 <= e <= 253:
        return None
    sign = b >> 63
    base = e << 23 | (b >> 29 & 0x7FFFFF)       # sign-less binary32 bits, truncated
    low = (b & 0x1FFFFFFF) << 1                 # the dropped part, in half binary64 ulps
    if t:
        if (t > 0) == (s > 0):
            low += 1
        elif low:
            low -= 1
        else:                                   # just below s: borrow one binary32 ulp
            base -= 1
            low = (1 << 30) - 1
    if not low:
        return sign << 31 | base, 0
    if rm == RNE:
        up = low > 1 << 29 or (low == 1 << 29 and base & 1)
    elif rm == RMM:
        up = low >= 1 << 29
    elif rm == RTZ:
        up = False
    else:
        up = (rm == RUP) != sign
    return sign << 31 | (base + up), NX


def _single(a: int) -> float:
    _I[0] = a
    return _F[0]


def _from64(s: float, t: float, rm: int, known: int) -> tuple[int, int] | None:
    """A binary32 result from s, its binary64 result, and t, the exact error of s (0 for
    mul, exact, and for div and sqrt, by the double-rounding property); None outside
    the fast range.  Rounding s to nearest is rounding the exact result to nearest (the
    same property, Figueroa's theorem for +, ×, ÷, √) except for an fma, which passes t."""
    if rm == RNE and known & NX and not t:
        if _LO32 <= abs(s) <= _HI32:
            _F[0] = s                               # (the host rounds to nearest-even)
            return _I[0], 0
        return None
    if -_HI < s < _HI:                              # (not NaN or infinite)
        return _round32(s, t, rm)
    return None


def add32(a: int, b: int, rm: int, known: int = 0) -> tuple[int, int]:
    x = _single(a)
    y = _single(b)
    s = x + y
    if rm == RNE and known & NX:                    # (Figueroa: RN32(RN64(x + y)) is right)
        out = _from64(s, 0.0, rm, known)
    else:
        bb = s - x
        out = _from64(s, (x - (s - bb)) + (y - bb), rm, known)
    return out if out is not None else add(F32, a, b, rm)


def sub32(a: int, b: int, rm: int, known: int = 0) -> tuple[int, int]:
    return add32(a, b ^ 1 << 31, rm, known)


def mul32(a: int, b: int, rm: int, known: int = 0) -> tuple[int, int]:
    out = _from64(_single(a) * _single(b), 0.0, rm, known)
    return out if out is not None else mul(F32, a, b, rm)


def div32(a: int, b: int, rm: int, known: int = 0) -> tuple[int, int]:
    y = _single(b)
    out = _from64(_single(a) / y, 0.0, rm, known) if y else None
    return out if out is not None else div(F32, a, b, rm)


def sqrt32(a: int, rm: int, known: int = 0) -> tuple[int, int]:
    x = _single(a)
    out = _from64(_sqrt(x), 0.0, rm, known) if x > 0 else None
    return out if out is not None else sqrt(F32, a, rm)


def fma32(a: int, b: int, c: int, rm: int, known: int = 0) -> tuple[int, int]:
    _I[0] = a
    p = _F[0]
    _I[0] = b
    p *= _F[0]                                      # exact: 48 bits
    _I[0] = c
    z = _F[0]
    s = p + z
    bb = s - p
    t = (p - (s - bb)) + (z - bb)                   # p + z = s + t
    out = _from64(s, t, rm, known)
    return out if out is not None else fma(F32, a, b, c, rm)


# -- fast comparisons and conversions: exact wherever the host's float is the value ---------
def _floats(width: int, a: int, b: int) -> tuple[float, float]:
    """Two operands as host floats (a single widens exactly)."""
    if width == 64:
        _Q[0] = a
        x = _D[0]
        _Q[0] = b
        return x, _D[0]
    _I[0] = a
    x = _F[0]
    _I[0] = b
    return x, _F[0]


def compare(op: str, width: int, a: int, b: int) -> tuple[int, int]:
    """feq/flt/fle (``op`` "eq", "lt", "le"): two non-NaN values compare as host floats
    (-0 == +0 there too, and no flag); a NaN takes the reference's way."""
    x, y = _floats(width, a, b)
    if x == x and y == y:
        return int(x == y if op == "eq" else (x < y if op == "lt" else x <= y)), 0
    return _COMPARE[op](F64 if width == 64 else F32, a, b)


_COMPARE = {"eq": eq, "lt": lt, "le": le}


def min_max(width: int, a: int, b: int, want_max: bool) -> tuple[int, int]:
    """fmin/fmax: two different non-NaN values as host floats; NaNs and equal values (-0
    against +0) as the reference."""
    x, y = _floats(width, a, b)
    if x < y or x > y:                          # (both false for a NaN or x == y)
        return (a if (x > y) == want_max else b), 0
    return _min_max(F64 if width == 64 else F32, a, b, want_max)


_EXACT_INT = {64: 1 << 53, 32: 1 << 24}         # integers each format holds exactly


def from_int_fast(width: int, v: int, bits: int, signed: bool, rm: int) -> tuple[int, int]:
    """fcvt.{s,d}.{w,wu,l,lu}: an integer the format holds exactly converts as a host float."""
    v &= (1 << bits) - 1
    if signed and v >> (bits - 1):
        v -= 1 << bits
    if -_EXACT_INT[width] <= v <= _EXACT_INT[width]:
        if width == 64:
            _D[0] = v
            return _Q[0], 0
        _F[0] = v
        return _I[0], 0
    return from_int(F64 if width == 64 else F32, v, bits, signed, rm)


_TO_INT = {RTZ: int, RNE: round, RDN: math.floor, RUP: math.ceil}   # each exact on a float


def to_int_fast(width: int, a: int, bits: int, signed: bool, rm: int) -> tuple[int, int]:
    """fcvt.{w,wu,l,lu}.{s,d}: a finite value whose rounded integer fits is rounded by the
    host (exactly: Python's ints are unbounded; round() is to nearest-even); NX when the
    integer is not the value.  RMM, NaN, infinities and what does not fit: the reference."""
    x = _floats(width, a, 0)[0]
    to = _TO_INT.get(rm)
    if to is not None and -1e300 < x < 1e300:
        n = to(x)
        if (-(1 << (bits - 1)) if signed else 0) <= n < 1 << (bits - 1 if signed else bits):
            return n & ((1 << bits) - 1), (NX if n != x else 0)
    return to_int(F64 if width == 64 else F32, a, bits, signed, rm)


def convert_fast(src: int, dst: int, a: int, rm: int) -> tuple[int, int]:
    """fcvt.d.s (exact: a single widens as a host float) and fcvt.s.d (rounded by
    :func:`_round32`); NaNs and what falls outside the fast range: the reference."""
    if dst == 64:
        x = _floats(32, a, 0)[0]
        if x == x:
            _D[0] = x
            return _Q[0], 0
    else:
        x = _floats(64, a, 0)[0]
        out = _round32(x, 0.0, rm) if -_HI < x < _HI else None
        if out is not None:
            return out
    return convert(F32 if src == 32 else F64, F64 if dst == 64 else F32, a, rm)


def _host_is_ieee() -> bool:
    """The fast path's premises, probed: binary64, ties to even, gradual underflow (no
    flush to zero), a correctly rounded square root.  (CPython 3.11 requires IEEE 754;
    a library built with -ffast-math can still turn flushing to zero on.)"""
    return (sys.float_info.mant_dig == 53 and 1.0 + 2.0 ** -53 == 1.0
            and 1.0 + 3 * 2.0 ** -53 == 1.0 + 2.0 ** -51 and 2.0 ** -1022 * 0.5 > 0
            and 2.0 ** -1074 / 2 == 0 and math.sqrt(2.0) == 1.4142135623730951)


def _reference_only() -> dict:
    """The fast path's functions, each done by the reference alone (for a host that
    fails :func:`_host_is_ieee`)."""
    table = {}
    for fmt, w in ((F64, 64), (F32, 32)):
        for op in (add, sub, mul, div):
            table[f"{op.__name__}{w}"] = lambda a, b, rm, known=0, _op=op, _f=fmt: _op(_f, a, b, rm)
        table[f"sqrt{w}"] = lambda a, rm, known=0, _f=fmt: sqrt(_f, a, rm)
        table[f"fma{w}"] = lambda a, b, c, rm, known=0, _f=fmt: fma(_f, a, b, c, rm)
    fmt = {32: F32, 64: F64}
    table.update(
        compare=lambda op, w, a, b: _COMPARE[op](fmt[w], a, b),
        min_max=lambda w, a, b, want_max: _min_max(fmt[w], a, b, want_max),
        from_int_fast=lambda w, v, bits, signed, rm: from_int(fmt[w], v, bits, signed, rm),
        to_int_fast=lambda w, a, bits, signed, rm: to_int(fmt[w], a, bits, signed, rm),
        convert_fast=lambda src, dst, a, rm: convert(fmt[src], fmt[dst], a, rm))
    return table


if not _host_is_ieee():
    globals().update(_reference_only())
