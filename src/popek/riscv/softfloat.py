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
