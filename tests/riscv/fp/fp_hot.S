// F and D in hot code, which the translator writes inline (translate_fp.py): loops
// and subroutines run more than 32 times, so they run translated, and then:
// results in every rounding mode (dynamic, through frm), NaN boxing, sign
// injection and moves (x0 too), and traps taken inside translated blocks, where
// the translator checks only once what the hart checks at every instruction:
// FS Off (the instructions before the FP one in the block have run, the ones
// after have not), a reserved frm (mstatus.FS Dirty exactly when an FP register
// was written before the trap), access faults of FP loads and stores and of a
// load after an FP store (FS not made Dirty by them), and a fault in the middle of
// a self-looping block (instret, compared by tests/test_fp.py with the interpreter);
// the four fused multiply-adds of both widths.
// Expected values: softfloat.py's integer reference.
#include "popek_test.h"
#define HOT 40
#define FS_MASK 0x6000
#define FS_CLEAN 0x4000
#define BAD 0x0                     // no device or memory there: access faults

.macro FS_IS num, expect            // mstatus.FS == expect (0..3)
    li TESTNUM, \num
    csrr t5, mstatus
    srli t5, t5, 13
    andi t5, t5, 3
    li t6, \expect
    bne t5, t6, fail
.endm

.macro CHECK_REG num, reg, expect
    li TESTNUM, \num
    bne \reg, \expect, fail
.endm

.macro SET_FS_CLEAN
    li t0, FS_MASK
    csrc mstatus, t0
    li t0, FS_CLEAN
    csrs mstatus, t0
.endm

.macro RUN_HOT insns:vararg             // run insns HOT times: they become translated
    li s2, HOT
1:  \insns
    addi s2, s2, -1
    bnez s2, 1b
.endm

.macro LOOP64 num, rm, expect       // x = 1, 100 rounds of loop64 under frm = rm
    li TESTNUM, \num
    csrwi frm, \rm
    csrw fflags, zero
    fld f1, 0(s0)
    li t1, 100
    call loop64
    fmv.x.d a0, f1
    li t6, \expect
    bne a0, t6, fail
    FLAGS \num, 1
.endm

.macro LOOP32 num, count, expect     // acc = +0, then loop32 over count singles
    li TESTNUM, \num
    fmv.w.x f10, zero
    li t1, \count
    la s1, singles
    call loop32
    fmv.x.d a0, f10
    li t6, \expect
    bne a0, t6, fail
.endm

RVTEST_BEGIN
    li t0, 0x2000                   // FS Initial
    csrs mstatus, t0
    la s0, data
    fld f2, 8(s0)                   // 1.0000001
    fld f3, 16(s0)                  // 0.1
    fld f4, 24(s0)                  // 1.5

    // -- 1. a self-looping block of binary64 arithmetic, in all five modes --
    LOOP64 1, 0, 0x3ffaffa47e629e4d
    LOOP64 2, 1, 0x3ffaffa47e629e49
    LOOP64 3, 2, 0x3ffaffa47e629e49
    LOOP64 4, 3, 0x3ffaffa47e629e53
    LOOP64 5, 4, 0x3ffaffa47e629e52
    csrwi frm, 0

    // -- 2. binary32 through memory: acc = a[i] * 1.5 + acc; a[i] = acc --
    flw f12, 32(s0)                 // 1.5f
    LOOP32 6, 32, 0xffffffff436d9999
    FLAGS 7, 1
    csrwi frm, 2                    // again over the new values, rounding down
    LOOP32 8, 32, 0xffffffff457c732e
    la s1, singles
    lwu a0, 124(s1)
    CHECK 9, a0, 0x457c732e
    FLAGS 10, 1
    csrwi frm, 0
    li t0, 0x3f800000               // 1.0f, not NaN-boxed: a canonical NaN operand
    fmv.d.x f12, t0
    LOOP32 11, 1, 0xffffffff7fc00000
    FLAGS 12, 0                     // (a quiet NaN: no flag)

    // -- 3. moves and sign injection (fmv.d, fneg.d, fabs.d, fsgnj*), x0 both ways --
    li a0, 0x4008000000000000       // 3.0
    RUN_HOT call moves
    CHECK 13, a1, 0xc008000000000000    // fsgnj(|x|, -x)
    CHECK 14, a2, 0xc008000000000000    // fsgnjx(-x, x)
    CHECK 15, a3, 0xc008000000000000    // fsgnjn(x, |x|)
    CHECK 16, a4, 0                     // fmv.d.x from x0
    li a0, 0xfff0000000000001           // a signalling NaN: moved, never canonicalised
    call moves
    CHECK 17, a1, 0x7ff0000000000001
    CHECK 18, a2, 0xfff0000000000001
    CHECK 19, a3, 0xfff0000000000001
    FLAGS 20, 0

    // -- 4. FS Off in a translated block: the trap is at the FP instruction --
    li a0, 0
    li a1, 0
    RUN_HOT call fs_off
    li t0, FS_MASK
    csrc mstatus, t0
    EXPECT_TRAP 21, 2, call fs_off  // illegal instruction
    la t0, fs_off_fp
    CHECK_REG 22, s10, t0
    lwu t0, 0(t0)
    CHECK_REG 23, s11, t0           // mtval: the instruction
    CHECK 24, a0, HOT + 1           // the addi before it ran
    CHECK 25, a1, HOT               // the one after did not
    FS_IS 26, 0
    li t0, 0x2000
    csrs mstatus, t0

    // -- 5. a reserved frm, after an FP write in the same block (FS Dirty) --
    li a0, 0
    li a1, 0
    RUN_HOT call rm_late
    csrwi frm, 5                    // (a write of frm makes FS Dirty: then Clean)
    SET_FS_CLEAN
    EXPECT_TRAP 27, 2, call rm_late
    la t0, rm_late_dyn
    CHECK_REG 28, s10, t0
    CHECK 29, a0, HOT + 1
    CHECK 30, a1, HOT
    FS_IS 31, 3                     // the fadd.d before it made FS Dirty
    // ... and before any FP write (FS stays Clean)
    csrwi frm, 0
    RUN_HOT call rm_first
    csrwi frm, 6
    SET_FS_CLEAN
    EXPECT_TRAP 32, 2, call rm_first
    la t0, rm_first_dyn
    CHECK_REG 33, s10, t0
    FS_IS 34, 2
    csrwi frm, 0

    // -- 6. faults: an FP store then a faulting load (FS stays Clean); FP loads and
    //       stores that fault themselves --
    la s1, scratch
    la a2, scratch
    RUN_HOT call store_then_load
    SET_FS_CLEAN
    li a2, BAD
    EXPECT_TRAP 35, 5, call store_then_load     // load access fault
    FS_IS 36, 2
    la a2, scratch
    call store_then_load
    FS_IS 37, 3
    la a2, scratch
    RUN_HOT call fp_load
    RUN_HOT call fp_store
    SET_FS_CLEAN
    li a2, BAD
    EXPECT_TRAP 38, 5, call fp_load
    FS_IS 39, 2
    EXPECT_TRAP 40, 7, call fp_store           // store access fault
    FS_IS 41, 2

    // -- 7. a fault in the middle of a self-looping block: the 51st pointer is bad --
    fmv.d.x f6, zero
    la s2, pointers
    li t1, 60
    EXPECT_TRAP 42, 5, call walk
    la t0, walk_fld
    CHECK_REG 43, s10, t0
    CHECK 44, t1, 10
    fmv.x.d a0, f6
    CHECK 45, a0, 0x4039000000000000    // 50 × 0.5 = 25.0

    // -- 8. the four fused multiply-adds, both widths: 2 × 3 ± 1, negated or not --
    RUN_HOT call fmas
    CHECK 46, a0, 0x401c000000000000    // fmadd.d: 7
    CHECK 47, a1, 0x4014000000000000    // fmsub.d: 5
    CHECK 48, a2, 0xc014000000000000    // fnmsub.d: -5
    CHECK 49, a3, 0xc01c000000000000    // fnmadd.d: -7
    CHECK 50, a4, 0xffffffff40e00000    // fmadd.s: 7
    CHECK 51, a5, 0xffffffff40a00000    // fmsub.s: 5
    CHECK 52, a6, 0xffffffffc0a00000    // fnmsub.s: -5
    CHECK 53, a7, 0xffffffffc0e00000    // fnmadd.s: -7

    RVTEST_PASS

    .text
    .option norvc                   // (4-byte instructions: addresses and mtval plain)
loop64:                             // t1 rounds of x = f(x), in f1
    fmadd.d f1, f1, f2, f3
    fdiv.d f5, f1, f4
    fsqrt.d f6, f5
    fadd.d f1, f1, f6
    fsub.d f1, f1, f5
    fmul.d f1, f1, f2
    addi t1, t1, -1
    bnez t1, loop64
    ret

loop32:                             // t1 singles from s1: acc (f10) = a[i] × f12 + acc
    flw f11, 0(s1)
    fmadd.s f10, f11, f12, f10
    fsw f10, 0(s1)
    addi s1, s1, 4
    addi t1, t1, -1
    bnez t1, loop32
    ret

moves:                              // a0: bits in; a1..a4: bits out
    fmv.d.x f20, a0
    fneg.d f21, f20
    fabs.d f22, f21
    fsgnj.d f23, f22, f21
    fsgnjx.d f24, f21, f20
    fsgnjn.d f25, f20, f22
    fmv.x.d a1, f23
    fmv.x.d a2, f24
    fmv.x.d a3, f25
    fmv.x.d zero, f25
    fmv.d.x f26, zero
    fmv.x.d a4, f26
    ret

fs_off:
    addi a0, a0, 1
fs_off_fp:
    fadd.d f7, f7, f8
    addi a1, a1, 1
    ret

rm_late:
    fadd.d f7, f7, f8, rne
    addi a0, a0, 1
rm_late_dyn:
    fmul.d f9, f7, f8               // dynamic
    addi a1, a1, 1
    ret

rm_first:
    addi a0, a0, 1
rm_first_dyn:
    fmul.d f9, f7, f8
    ret

store_then_load:
    fsd f1, 0(s1)
    ld t0, 0(a2)
    fadd.d f14, f14, f0
    ret

fp_load:
    fld f13, 0(a2)
    ret

fp_store:
    fsd f13, 8(a2)
    ret

fmas:
    li t0, 2
    fcvt.d.l f27, t0
    fcvt.s.l f28, t0
    li t0, 3
    fcvt.d.l f29, t0
    fcvt.s.l f30, t0
    li t0, 1
    fcvt.d.l f31, t0
    fcvt.s.l f0, t0
    fmadd.d f1, f27, f29, f31
    fmsub.d f2, f27, f29, f31
    fnmsub.d f3, f27, f29, f31
    fnmadd.d f4, f27, f29, f31
    fmadd.s f5, f28, f30, f0
    fmsub.s f6, f28, f30, f0
    fnmsub.s f7, f28, f30, f0
    fnmadd.s f8, f28, f30, f0
    fmv.x.d a0, f1
    fmv.x.d a1, f2
    fmv.x.d a2, f3
    fmv.x.d a3, f4
    fmv.x.d a4, f5
    fmv.x.d a5, f6
    fmv.x.d a6, f7
    fmv.x.d a7, f8
    ret

walk:                               // t1 pointers from s2: f6 += *p
    ld t0, 0(s2)
walk_fld:
    fld f5, 0(t0)
    fadd.d f6, f6, f5
    addi s2, s2, 8
    addi t1, t1, -1
    bnez t1, walk
    ret
    .option rvc

RVTEST_END

    .data
    .align 3
data:
    .double 1.0, 1.0000001, 0.1, 1.5
    .float 1.5
    .align 3
half:
    .double 0.5
scratch:
    .dword 0, 0
pointers:
    .rept 50
    .dword half
    .endr
    .dword BAD
    .rept 9
    .dword half
    .endr
singles:
    .word 0x3e99999a, 0x3f19999a, 0x3f666666, 0x3f99999a, 0x3fc00000, 0x3fe66666, 0x40066666, 0x4019999a
    .word 0x402ccccd, 0x40400000, 0x40533333, 0x40666666, 0x4079999a, 0x40866666, 0x40900000, 0x4099999a
    .word 0x40a33333, 0x40accccd, 0x40b66666, 0x40c00000, 0x40c9999a, 0x40d33333, 0x40dccccd, 0x40e66666
    .word 0x40f00000, 0x40f9999a, 0x4101999a, 0x41066666, 0x410b3333, 0x41100000, 0x4114cccd, 0x4119999a
