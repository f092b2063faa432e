"""softfloat.py's fast path (host floats where they provably give the same answer)
against its integer reference, which tests/test_softfloat.py checks against exact
arithmetic and tests/test_fp_qemu.py against QEMU.

Every fast function must return the reference's bits, and its flags, except that it
may leave out flags it was told are already raised (``known``: accruing them again
would change nothing).  Operands: random bit patterns, ordinary numbers (the fast
path's domain), short significands (exact results and ties), values near each
other (cancellation), fused multiply-adds whose addend nearly cancels the product,
and values at the edges of the fast range; in all five rounding modes.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from popek.riscv import softfloat as sf
from popek.riscv.softfloat import F32, F64, NX, RMM, RNE, RTZ

FUZZ = settings(max_examples=1500, deadline=None, derandomize=True, database=None)
MODES = st.integers(0, 4)
KNOWN = st.sampled_from([0, NX])
BINARY = {"add": sf.add, "sub": sf.sub, "mul": sf.mul, "div": sf.div}
FORMAT = {64: F64, 32: F32}


def pack(f, sign: int, exp: int, frac: int) -> int:
    return sign << (f.width - 1) | exp << f.frac_bits | frac


def numbers(f):
    """Bit patterns of format ``f`` that reach the fast path and its edges."""
    bias, fb, top = f.bias, f.frac_bits, (1 << f.exp_bits) - 1
    ordinary = st.builds(lambda s, e, m: pack(f, s, bias + e, m), st.integers(0, 1),
                         st.integers(-60, 60), st.integers(0, (1 << fb) - 1))
    short = st.builds(lambda s, e, k, m: pack(f, s, bias + e, (m << (fb - k)) & ((1 << fb) - 1)),
                      st.integers(0, 1), st.integers(-30, 30), st.integers(1, 12),
                      st.integers(0, 1 << 12))
    edge = st.builds(lambda s, e, m: pack(f, s, e, m), st.integers(0, 1),
                     st.one_of(st.integers(0, 60), st.integers(top - 60, top)),
                     st.integers(0, (1 << fb) - 1))
    return st.one_of(ordinary, short, edge, st.integers(0, (1 << f.width) - 1))


def near(f, a: int, delta: int, negate: bool) -> int:
    return ((a + delta) % (1 << f.width)) ^ (negate << (f.width - 1))


def same(fast: tuple[int, int], ref: tuple[int, int], known: int) -> bool:
    return fast[0] == ref[0] and fast[1] | known == ref[1] | known


@pytest.mark.parametrize("width", [64, 32])
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_operations_equal_the_reference(op, width):
    f = FORMAT[width]
    fast = getattr(sf, f"{op}{width}")

    @FUZZ
    @given(numbers(f), numbers(f), st.integers(-4, 4), st.booleans(), st.booleans(), MODES,
           KNOWN)
    def check(a, b, delta, close, negate, rm, known):
        if close:                                       # cancellation, near-equal quotients
            b = near(f, a, delta, negate)
        ref = BINARY[op](f, a, b, rm)
        assert same(fast(a, b, rm, known), ref, known), (hex(a), hex(b), rm, known, ref)
    check()


@pytest.mark.parametrize("width", [64, 32])
def test_sqrt_equals_the_reference(width):
    f = FORMAT[width]
    fast = getattr(sf, f"sqrt{width}")

    @FUZZ
    @given(numbers(f), MODES, KNOWN)
    def check(a, rm, known):
        ref = sf.sqrt(f, a, rm)
        assert same(fast(a, rm, known), ref, known), (hex(a), rm, known, ref)
    check()


@pytest.mark.parametrize("width", [64, 32])
def test_fma_equals_the_reference(width):
    """Including addends that nearly cancel the product: the reference's product,
    rounded toward zero and nudged by a few ulps, negated."""
    f = FORMAT[width]
    fast = getattr(sf, f"fma{width}")

    @FUZZ
    @given(numbers(f), numbers(f), numbers(f), st.integers(-4, 4), st.booleans(), MODES,
           KNOWN)
    def check(a, b, c, delta, cancel, rm, known):
        if cancel:
            c = near(f, sf.mul(f, a, b, RTZ)[0], delta, True)
        ref = sf.fma(f, a, b, c, rm)
        assert same(fast(a, b, c, rm, known), ref, known), (hex(a), hex(b), hex(c), rm, ref)
    check()


@pytest.mark.parametrize("width", [64, 32])
def test_comparisons_min_max_and_conversions_equal_the_reference(width):
    f = FORMAT[width]
    other = 32 if width == 64 else 64

    @FUZZ
    @given(numbers(f), numbers(f), numbers(FORMAT[other]), st.booleans(),
           st.sampled_from([(32, True), (32, False), (64, True), (64, False)]),
           st.integers(0, (1 << 64) - 1), MODES)
    def check(a, b, wide, close, kind, integer, rm):
        if close:
            b = near(f, a, 1, False)
        for op, ref in (("eq", sf.eq), ("lt", sf.lt), ("le", sf.le)):
            assert sf.compare(op, width, a, b) == ref(f, a, b), (op, hex(a), hex(b))
        for want_max in (False, True):
            assert sf.min_max(width, a, b, want_max) == sf._min_max(f, a, b, want_max)
        bits, signed = kind
        assert sf.to_int_fast(width, a, bits, signed, rm) == sf.to_int(f, a, bits, signed, rm)
        small = integer >> (integer % 64)               # (exact and inexact conversions)
        assert sf.from_int_fast(width, small, bits, signed, rm) == \
            sf.from_int(f, small, bits, signed, rm)
        assert sf.convert_fast(other, width, wide, rm) == \
            sf.convert(FORMAT[other], f, wide, rm)
    check()


@pytest.mark.parametrize("width", [64, 32])
def test_many_random_operations_equal_the_reference(width):
    """Seeded random operands in bulk (the fast path's whole domain, cheaply)."""
    f = FORMAT[width]
    rng = random.Random(width)
    bias, fb = f.bias, f.frac_bits
    for _ in range(2000):
        a, b, c = (pack(f, rng.getrandbits(1), bias + rng.randint(-40, 40), rng.getrandbits(fb))
                   for _ in range(3))
        for rm in range(5):
            known = rng.choice((0, NX))
            for op, ref in BINARY.items():
                assert same(getattr(sf, f"{op}{width}")(a, b, rm, known), ref(f, a, b, rm),
                            known), (op, hex(a), hex(b), rm)
            assert same(getattr(sf, f"fma{width}")(a, b, c, rm, known),
                        sf.fma(f, a, b, c, rm), known), (hex(a), hex(b), hex(c), rm)
            assert same(getattr(sf, f"sqrt{width}")(a, rm, known), sf.sqrt(f, a, rm), known)


def test_ties_in_every_mode():
    """Exact halfway cases, where RMM and RNE part or agree: sums and products of
    significands a few bits longer than half, and fmas adding such a sum to an exact
    product; on both sides of zero.  At least some must be ties (by the reference)."""
    ties = 0
    for width in (64, 32):
        f = FORMAT[width]
        fast_add, fast_mul, fast_fma = (getattr(sf, f"{op}{width}") for op in ("add", "mul", "fma"))
        one = pack(f, 0, f.bias, 0)
        for i in range(1, 40):
            m = i << (f.frac_bits - 6)                  # (1 + i/64)
            for x, y in ((one | 1 + 2 * i, pack(f, 0, f.bias - f.frac_bits - 1, m)),
                         (pack(f, 0, f.bias, m | 1), pack(f, 0, f.bias, 1 << (f.frac_bits - 1)))):
                for sign in (0, 1 << (f.width - 1)):
                    x ^= sign
                    ties += sf.add(f, x, y, RMM) != sf.add(f, x, y, RNE)
                    ties += sf.mul(f, x, y, RMM) != sf.mul(f, x, y, RNE)
                    for rm in range(5):
                        assert fast_add(x, y, rm) == sf.add(f, x, y, rm), (hex(x), hex(y), rm)
                        assert fast_mul(x, y, rm) == sf.mul(f, x, y, rm), (hex(x), hex(y), rm)
                        assert fast_fma(x, one, y, rm) == sf.fma(f, x, one, y, rm)
                        assert fast_fma(x, y, one, rm) == sf.fma(f, x, y, one, rm)
    assert ties > 40


def test_the_fast_path_is_taken_for_ordinary_operands(monkeypatch):
    """The fast functions do not fall back to the reference on ordinary numbers (were
    they always to, the tests above would prove nothing about them)."""
    for name in ("add", "mul", "div", "sqrt", "fma", "round_pack"):
        monkeypatch.setattr(sf, name, lambda *args, _n=name: pytest.fail(f"{_n} called"))
    rng = random.Random(1)
    for width in (64, 32):
        f = FORMAT[width]
        for _ in range(200):
            a, b, c = (pack(f, rng.getrandbits(1), f.bias + rng.randint(-20, 20),
                            rng.getrandbits(f.frac_bits)) for _ in range(3))
            for rm in range(5):
                for op in ("add", "sub", "mul", "div"):
                    getattr(sf, f"{op}{width}")(a, b, rm)
                getattr(sf, f"sqrt{width}")(a & ~(1 << (width - 1)), rm)
                try:
                    getattr(sf, f"fma{width}")(a, b, c, rm)
                except pytest.fail.Exception:           # (fma64 leaves ~1 in 2^50 to ints)
                    pytest.fail(f"fma{width} fell back on {a:#x} {b:#x} {c:#x} {rm}")


def test_a_host_without_ieee_binary64_gets_the_reference_alone():
    """Were the host's float not what the fast path assumes (probed at import), every
    fast function is replaced by the reference: check those replacements."""
    assert sf._host_is_ieee()
    ref = sf._reference_only()
    assert set(ref) >= {f"{op}{w}" for op in ("add", "sub", "mul", "div", "sqrt", "fma")
                        for w in (32, 64)}
    assert all(callable(getattr(sf, name)) for name in ref)
    rng = random.Random(5)
    for width in (64, 32):
        f = FORMAT[width]
        for _ in range(50):
            a, b, c = (rng.getrandbits(width) for _ in range(3))
            rm = rng.randrange(5)
            for op, fn in BINARY.items():
                assert ref[f"{op}{width}"](a, b, rm, NX) == fn(f, a, b, rm)
            assert ref[f"sqrt{width}"](a, rm) == sf.sqrt(f, a, rm)
            assert ref[f"fma{width}"](a, b, c, rm) == sf.fma(f, a, b, c, rm)
            assert ref["compare"]("lt", width, a, b) == sf.lt(f, a, b)
            assert ref["min_max"](width, a, b, True) == sf.fmax(f, a, b)
            assert ref["to_int_fast"](width, a, 32, True, rm) == sf.to_int(f, a, 32, True, rm)
            assert ref["from_int_fast"](width, c, 64, False, rm) == sf.from_int(f, c, 64, False, rm)
            assert ref["convert_fast"](width, 96 - width, a, rm) == \
                sf.convert(f, FORMAT[96 - width], a, rm)


def test_conversions_at_the_integer_limits():
    """fcvt to and from integers around 0, 2^24, 2^31, 2^32, 2^53, 2^63 and 2^64, ± a
    half and an ulp, both signs, every width and mode (saturation, NX, ties)."""
    import math
    import struct
    edges = []
    for base in (0.0, 1.0, 2.0 ** 24, 2.0 ** 31, 2.0 ** 32, 2.0 ** 53, 2.0 ** 63, 2.0 ** 64):
        for delta in (-1.5, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 1.5):
            for v in (base + delta, -(base + delta)):
                edges += [v, math.nextafter(v, math.inf), math.nextafter(v, -math.inf)]
    kinds = [(32, True), (32, False), (64, True), (64, False)]
    for v in edges:
        for width, fmt in (("d", F64), ("f", F32)):
            a = struct.unpack("<Q" if width == "d" else "<I", struct.pack("<" + width, v))[0]
            w = fmt.width
            for (bits, signed), rm in itertools.product(kinds, range(5)):
                assert sf.to_int_fast(w, a, bits, signed, rm) == sf.to_int(fmt, a, bits, signed, rm)
    for n in (0, 1, 2 ** 24, 2 ** 24 + 1, 2 ** 31, 2 ** 32 - 1, 2 ** 53, 2 ** 53 + 1, 2 ** 63,
              2 ** 64 - 1):
        for v in (n, -n & ((1 << 64) - 1)):
            for (bits, signed), rm, w in itertools.product(kinds, range(5), (32, 64)):
                assert sf.from_int_fast(w, v, bits, signed, rm) == \
                    sf.from_int(FORMAT[w], v, bits, signed, rm)
