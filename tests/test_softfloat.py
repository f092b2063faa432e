"""The soft-float core (riscv/softfloat.py) against independent oracles.

* binary64, round to nearest even: the host's own float (+ - * / sqrt), bit for bit;
* binary32, round to nearest even: the host's float, rounded once more to binary32
  by struct (double rounding is innocuous for + - * / sqrt when the wider format has
  at least 2p+2 bits: 53 >= 50, Figueroa 1995);
* every rounding mode and the inexact flag: exact rational arithmetic (fractions)
  and the neighbours of the result, which must bracket the exact value as the mode
  says;
* directed cases for each flag, NaN canonicalisation, signed zeros, min/max, class,
  conversions with saturation.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from popek.riscv import softfloat as sf
from popek.riscv.softfloat import DZ, F32, F64, NV, NX, OF, RDN, RMM, RNE, RTZ, RUP, UF

FUZZ = settings(max_examples=2000, deadline=None, derandomize=True, database=None)


def f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def d(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def s(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def value(f, bits) -> Fraction:
    sign, m, e = sf.decode(f, bits)
    v = Fraction(m) * (Fraction(2) ** e)
    return -v if sign else v


# Bit patterns that reach every class and edge: zeros, subnormals, the normal
# boundary, large values, infinities, NaNs, and random ones.
def patterns(f):
    special = [0, 1, 2, (1 << f.frac_bits) - 1, 1 << f.frac_bits, (1 << f.frac_bits) + 1,
               f.bias << f.frac_bits, (f.bias + 1) << f.frac_bits, sf.largest(f, 0),
               sf.infinity(f, 0), f.canonical_nan, sf.infinity(f, 0) | 1]
    special += [x | 1 << (f.width - 1) for x in special]
    return st.one_of(st.sampled_from(special), st.integers(0, (1 << f.width) - 1))


ROUNDING = st.sampled_from([RNE, RTZ, RDN, RUP, RMM])
OPS64 = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
         "div": lambda a, b: a / b}


def host(op, a: float, b: float):
    try:
        return OPS64[op](a, b)
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1, b)
    except OverflowError:
        return math.inf


@FUZZ
@given(op=st.sampled_from(sorted(OPS64)), a=patterns(F64), b=patterns(F64))
def test_binary64_nearest_even_is_the_hosts(op, a, b):
    got, _ = getattr(sf, op)(F64, a, b, RNE)
    want = host(op, d(a), d(b))
    if math.isnan(want):
        assert got == F64.canonical_nan
    else:
        assert got == f64(want), (op, hex(a), hex(b))


@FUZZ
@given(op=st.sampled_from(sorted(OPS64)), a=patterns(F32), b=patterns(F32))
def test_binary32_nearest_even_is_the_hosts_rounded_once_more(op, a, b):
    got, _ = getattr(sf, op)(F32, a, b, RNE)
    want = host(op, s(a), s(b))
    if math.isnan(want):
        assert got == F32.canonical_nan
    else:
        try:
            assert got == f32(want), (op, hex(a), hex(b))
        except OverflowError:                               # beyond binary32: infinity
            assert got == sf.infinity(F32, int(want < 0))


@FUZZ
@given(f=st.sampled_from([F32, F64]), a=st.data())
def test_sqrt_nearest_even_is_the_hosts(f, a):
    x = a.draw(patterns(f))
    got, flags = sf.sqrt(f, x, RNE)
    v = d(x) if f is F64 else s(x)
    if math.isnan(v) or (v < 0 and v != 0):
        assert got == f.canonical_nan
        return
    want = math.sqrt(v)
    assert got == (f64(want) if f is F64 else f32(want)), hex(x)


def _step(f, bits: int, up: bool) -> int:
    """The next representable value above (``up``) or below ``bits``."""
    sign = bits >> (f.width - 1)
    if bits & ((1 << (f.width - 1)) - 1) == 0:             # a zero: the smallest subnormal
        return 1 if up else 1 | 1 << (f.width - 1)
    return bits + 1 if up != bool(sign) else bits - 1


def _bracket(f, exact: Fraction, got: int, rm: int, flags: int):
    """The rounded result is the neighbour of the exact value that mode ``rm`` picks,
    and NX is raised exactly when it is not the exact value."""
    if sf.is_inf(f, got) or got & ((1 << (f.width - 1)) - 1) == sf.largest(f, 0):
        return                                              # overflow: test_the_flags
    r = value(f, got)
    assert bool(flags & NX) == (r != exact)
    if r == exact:
        return
    other = _step(f, got, exact > r)                        # the neighbour on exact's far side
    o = value(f, other)
    lo, hi = (r, o) if exact > r else (o, r)
    assert lo < exact < hi                                  # r is one of exact's neighbours
    toward_zero = r if abs(r) < abs(o) else o
    if rm == RDN:
        assert r == lo
    elif rm == RUP:
        assert r == hi
    elif rm == RTZ:
        assert r == toward_zero
    else:
        dr, do = abs(r - exact), abs(o - exact)
        assert dr <= do
        if dr == do:                                        # a tie
            assert (got & 1 == 0) if rm == RNE else abs(r) > abs(o)


@FUZZ
@given(f=st.sampled_from([F32, F64]), op=st.sampled_from(["add", "mul", "div"]), rm=ROUNDING,
       data=st.data())
def test_every_rounding_mode_brackets_the_exact_result(f, op, rm, data):
    a, b = data.draw(patterns(f)), data.draw(patterns(f))
    if sf.is_nan(f, a) or sf.is_nan(f, b) or sf.is_inf(f, a) or sf.is_inf(f, b):
        return
    if op == "div" and sf.is_zero(f, b):
        return
    got, flags = getattr(sf, op)(f, a, b, rm)
    exact = {"add": lambda x, y: x + y, "mul": lambda x, y: x * y,
             "div": lambda x, y: x / y}[op](value(f, a), value(f, b))
    _bracket(f, exact, got, rm, flags)


def test_the_flags():
    one, zero_, inf = f64(1.0), f64(0.0), f64(math.inf)
    assert sf.div(F64, one, zero_, RNE) == (inf, DZ)
    assert sf.div(F64, zero_, zero_, RNE) == (F64.canonical_nan, NV)
    assert sf.sub(F64, inf, inf, RNE) == (F64.canonical_nan, NV)
    assert sf.mul(F64, inf, zero_, RNE) == (F64.canonical_nan, NV)
    assert sf.sqrt(F64, f64(-1.0), RNE) == (F64.canonical_nan, NV)
    big = sf.largest(F64, 0)
    assert sf.add(F64, big, big, RNE) == (inf, OF | NX)
    assert sf.add(F64, big, big, RTZ) == (big, OF | NX)
    assert sf.add(F64, big, big, RDN) == (big, OF | NX)
    assert sf.div(F64, one, f64(3.0), RNE)[1] == NX
    tiny = 1                                                # the smallest subnormal
    assert sf.mul(F64, tiny, f64(0.5), RNE) == (0, UF | NX)        # rounds to 0
    assert sf.mul(F64, tiny, f64(0.5), RUP) == (1, UF | NX)
    assert sf.mul(F64, tiny, f64(2.0), RNE) == (2, 0)               # exact: no UF
    # Tininess after rounding: just below 2^emin rounding up to it is not tiny.
    below = (1 << F64.frac_bits) - 1                        # largest subnormal
    x, flags = sf.mul(F64, below, f64(1.0 + 2 ** -52), RNE)
    assert x == 1 << F64.frac_bits and flags == NX          # 2^emin: inexact, not underflow
    # a signalling NaN anywhere: NV; a quiet one alone: no flag; result canonical
    snan, qnan = sf.infinity(F64, 0) | 1, F64.canonical_nan | 5
    assert sf.add(F64, snan, one, RNE) == (F64.canonical_nan, NV)
    assert sf.add(F64, qnan, one, RNE) == (F64.canonical_nan, 0)


def test_fused_multiply_add_rounds_once():
    a = f64(1.0 + 2 ** -30)
    c = f64(-(1.0 + 2 ** -29))
    # a*a = 1 + 2^-29 + 2^-60: rounded first it would lose 2^-60 and give 0
    got, flags = sf.fma(F64, a, a, c, RNE)
    assert d(got) == 2 ** -60 and flags == 0
    assert sf.fma(F64, sf.infinity(F64, 0), f64(0.0), F64.canonical_nan, RNE) == \
        (F64.canonical_nan, NV)                             # inf × 0 + qNaN: invalid
    assert sf.fma(F64, f64(-0.0), f64(1.0), f64(0.0), RNE)[0] == f64(0.0)
    assert sf.fma(F64, f64(-0.0), f64(1.0), f64(-0.0), RNE)[0] == f64(-0.0)
    assert sf.fma(F64, f64(1.0), f64(1.0), f64(-1.0), RDN)[0] == f64(-0.0)


def test_signed_zeros():
    pz, nz = f64(0.0), f64(-0.0)
    assert sf.add(F64, pz, nz, RNE)[0] == pz
    assert sf.add(F64, pz, nz, RDN)[0] == nz
    assert sf.add(F64, nz, nz, RNE)[0] == nz
    assert sf.sub(F64, f64(1.0), f64(1.0), RNE)[0] == pz
    assert sf.sub(F64, f64(1.0), f64(1.0), RDN)[0] == nz
    assert sf.sqrt(F64, nz, RNE) == (nz, 0)


def test_min_max_and_compare():
    pz, nz, one = f64(0.0), f64(-0.0), f64(1.0)
    snan, qnan = sf.infinity(F64, 0) | 1, F64.canonical_nan
    assert sf.fmin(F64, pz, nz) == (nz, 0) and sf.fmax(F64, nz, pz) == (pz, 0)
    assert sf.fmin(F64, qnan, one) == (one, 0)
    assert sf.fmin(F64, snan, one) == (one, NV)
    assert sf.fmax(F64, qnan, qnan) == (F64.canonical_nan, 0)
    assert sf.eq(F64, qnan, one) == (0, 0) and sf.eq(F64, snan, one) == (0, NV)
    assert sf.lt(F64, qnan, one) == (0, NV) and sf.le(F64, one, qnan) == (0, NV)
    assert sf.eq(F64, pz, nz) == (1, 0) and sf.le(F64, nz, pz) == (1, 0)
    assert sf.lt(F64, nz, pz) == (0, 0)


def test_classify_every_class():
    f = F32
    cases = {sf.infinity(f, 1): 0, f32(-1.0): 1, (1 << 31) | 1: 2, 1 << 31: 3, 0: 4, 1: 5,
             f32(1.0): 6, sf.infinity(f, 0): 7, sf.infinity(f, 0) | 1: 8, f.canonical_nan: 9}
    for bits, cls in cases.items():
        assert sf.classify(f, bits) == 1 << cls, hex(bits)


@pytest.mark.parametrize("x, rm, bits, signed, want", [
    (2.5, RNE, 32, True, (2, NX)), (3.5, RNE, 32, True, (4, NX)), (-2.5, RNE, 32, True,
                                                                    ((-2) & 0xFFFFFFFF, NX)),
    (2.5, RMM, 32, True, (3, NX)), (-2.5, RDN, 32, True, ((-3) & 0xFFFFFFFF, NX)),
    (2.5, RUP, 32, True, (3, NX)), (-0.5, RTZ, 32, False, (0, NX)),
    (-1.0, RTZ, 32, False, (0, NV)), (3e9, RTZ, 32, True, (0x7FFFFFFF, NV)),
    (3e9, RTZ, 32, False, (3000000000, 0)), (-3e9, RTZ, 32, True, (0x80000000, NV)),
    (math.inf, RTZ, 64, True, ((1 << 63) - 1, NV)), (-math.inf, RTZ, 64, False, (0, NV)),
    (math.nan, RTZ, 32, True, (0x7FFFFFFF, NV)), (math.nan, RTZ, 64, False, ((1 << 64) - 1, NV)),
    (2.0 ** 63, RTZ, 64, True, ((1 << 63) - 1, NV)), (2.0 ** 63, RTZ, 64, False, (1 << 63, 0)),
])
def test_conversions_to_integers_saturate(x, rm, bits, signed, want):
    assert sf.to_int(F64, f64(x), bits, signed, rm) == want


def test_conversions_from_integers_and_between_formats():
    assert sf.from_int(F32, (1 << 24) + 1, 32, True, RNE) == (f32(16777216.0), NX)
    assert sf.from_int(F32, (1 << 24) + 1, 32, True, RUP) == (f32(16777218.0), NX)
    assert sf.from_int(F64, 0xFFFFFFFF, 32, True, RNE) == (f64(-1.0), 0)
    assert sf.from_int(F64, 0xFFFFFFFF, 32, False, RNE) == (f64(4294967295.0), 0)
    assert sf.convert(F32, F64, f32(1.5), RNE) == (f64(1.5), 0)
    assert sf.convert(F64, F32, f64(1e300), RNE) == (sf.infinity(F32, 0), OF | NX)
    assert sf.convert(F64, F32, f64(1e-50), RNE) == (0, UF | NX)
    assert sf.convert(F32, F64, sf.infinity(F32, 0) | 1, RNE) == (F64.canonical_nan, NV)


@FUZZ
@given(f=st.sampled_from([F32, F64]), rm=ROUNDING, data=st.data())
def test_fused_multiply_add_brackets_the_exact_result(f, rm, data):
    a, b, c = (data.draw(patterns(f)) for _ in range(3))
    if any(sf.is_nan(f, x) or sf.is_inf(f, x) for x in (a, b, c)):
        return
    got, flags = sf.fma(f, a, b, c, rm)
    _bracket(f, value(f, a) * value(f, b) + value(f, c), got, rm, flags)


@FUZZ
@given(f=st.sampled_from([F32, F64]), rm=ROUNDING, data=st.data())
def test_sqrt_brackets_the_exact_root(f, rm, data):
    """r is the rounded root when r^2 and its neighbours' squares bracket x as the mode says."""
    x = data.draw(patterns(f))
    if sf.is_nan(f, x) or sf.is_inf(f, x) or x >> (f.width - 1) or sf.is_zero(f, x):
        return
    got, flags = sf.sqrt(f, x, rm)
    v, r = value(f, x), value(f, got)
    assert bool(flags & NX) == (r * r != v)
    if r * r == v:
        return
    o = value(f, _step(f, got, r * r < v))
    lo, hi = (r, o) if r * r < v else (o, r)
    assert lo * lo < v < hi * hi
    if rm in (RDN, RTZ):
        assert r == lo
    elif rm == RUP:
        assert r == hi
    else:                                                   # nearest: compare with the midpoint
        mid = (lo + hi) / 2
        assert (r == lo) == (v < mid * mid)                 # (no ties: a root is never a midpoint)
