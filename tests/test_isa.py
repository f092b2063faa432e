"""The ISA table: encodings do not overlap, decoding and RVC expansion are right."""

from __future__ import annotations

import itertools

import pytest

from popek.riscv import isa, rvc


def test_no_two_encodings_overlap():
    for a, b in itertools.combinations(isa.INSNS, 2):
        common = a.mask & b.mask
        assert (a.match & common) != (b.match & common), f"{a.name} overlaps {b.name}"


def test_every_match_fits_its_mask():
    for i in isa.INSNS:
        assert i.match & ~i.mask == 0, i.name


@pytest.mark.parametrize("word,text", [
    (0x00500093, "addi ra, zero, 5"),
    (0xFFF00093, "addi ra, zero, -1"),
    (0x00B50533, "add a0, a0, a1"),
    (0x40B50533, "sub a0, a0, a1"),
    (0x0005B503, "ld a0, 0(a1)"),
    (0x00A5B423, "sd a0, 8(a1)"),
    (0x30200073, "mret"),
    (0x12000073, "sfence.vma zero, zero"),
    (0x34202573, "csrrs a0, 0x342, zero"),
    (0x100525AF, "lr.w a1, (a0)"),
    (0x02B50533, "mul a0, a0, a1"),
    (0xFFFFFFFF, "illegal 0xffffffff"),
])
def test_decode_and_disassemble(word, text):
    assert isa.disassemble(isa.decode(word)) == text


@pytest.mark.parametrize("half,expanded", [
    (0x4515, 0x00500513),         # c.li a0, 5      → addi a0, zero, 5
    (0x852E, 0x00B00533),         # c.mv a0, a1     → add a0, zero, a1
    (0x9002, 0x00100073),         # c.ebreak        → ebreak
    (0x8082, 0x00008067),         # c.jr ra (ret)   → jalr zero, 0(ra)
    (0x6108, 0x00053503),         # c.ld a0, 0(a0)  → ld a0, 0(a0)
])
def test_rvc_expansion(half, expanded):
    got = rvc.expand(half)
    # Compare what the instructions mean, not incidental bits.
    assert isa.disassemble(isa.decode32(got)) == isa.disassemble(isa.decode32(expanded))


@pytest.mark.parametrize("half", [0x0000, 0x2000, 0xA000, 0x6002, 0x8002])
def test_rvc_reserved_and_fp_forms_are_illegal(half):
    # 0x0000: all zero; 0x2000: c.fld; 0xA000: c.fsd; c.ldsp rd=0; c.jr rs1=0
    assert rvc.expand(half) is None
    assert isa.decode(half).insn is isa.ILLEGAL


def test_x0_writes_go_to_the_spare_slot():
    class FakeHart:
        x = [0] * 33
    h = FakeHart()
    h.x[1] = 7
    op = isa.make_op(h, isa.decode(0x00108013), 0)      # addi x0, x1, 1
    op()
    assert h.x[0] == 0 and h.x[32] == 8
