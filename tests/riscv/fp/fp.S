// F and D: every instruction class with its edge cases, the flags they raise,
// rounding modes (static and dynamic), NaN boxing and the canonical NaN, signed
// zeros, fmin/fmax and comparisons with NaNs, conversions that saturate, fclass,
// the compressed loads and stores, and mstatus.FS (Off: illegal; writes: Dirty).
#include "popek_test.h"
#define FS_DIRTY 0x6000
#define CANON_D  0x7ff8000000000000
#define CANON_S  0x7fc00000

RVTEST_BEGIN
    // -- FS Off: FP instructions and CSRs are illegal --
    li t0, FS_DIRTY
    csrc mstatus, t0
    EXPECT_TRAP 1, 2, fadd.d f0, f0, f0
    EXPECT_TRAP 2, 2, csrr a0, fcsr
    // -- on (Initial), then Dirty after a write, and SD set --
    li t0, 0x2000
    csrs mstatus, t0
    fmv.d.x f1, zero
    csrr a0, mstatus
    srli a1, a0, 13
    andi a1, a1, 3
    CHECK 3, a1, 3
    srli a1, a0, 63
    CHECK 4, a1, 1

    la s0, data
    // -- binary64 arithmetic --
    fld f1, 0(s0)               // 1.5
    fld f2, 8(s0)               // 2.0
    fadd.d f3, f1, f2
    fmv.x.d a0, f3
    li a1, 0x400c000000000000   // 3.5
    CHECK 5, a0, 0x400c000000000000
    FLAGS 6, 0
    fld f4, 16(s0)              // 1.0
    fld f5, 24(s0)              // 3.0
    fdiv.d f6, f4, f5           // 1/3, inexact
    fmv.x.d a0, f6
    CHECK 7, a0, 0x3fd5555555555555
    FLAGS 8, 1                  // NX
    fdiv.d f6, f4, f5, rup
    fmv.x.d a0, f6
    CHECK 9, a0, 0x3fd5555555555556
    li t0, 3                    // frm = RUP, dynamic
    csrw frm, t0
    fdiv.d f6, f4, f5
    fmv.x.d a0, f6
    CHECK 10, a0, 0x3fd5555555555556
    csrw frm, zero
    FLAGS 11, 1
    fmv.d.x f7, zero
    fdiv.d f8, f4, f7           // 1/0
    fmv.x.d a0, f8
    CHECK 12, a0, 0x7ff0000000000000
    FLAGS 13, 8                 // DZ
    fdiv.d f8, f7, f7           // 0/0
    fmv.x.d a0, f8
    CHECK 14, a0, CANON_D
    FLAGS 15, 16                // NV
    fsqrt.d f8, f2              // sqrt 2
    fmv.x.d a0, f8
    CHECK 16, a0, 0x3ff6a09e667f3bcd
    FLAGS 17, 1
    fld f9, 32(s0)              // largest double
    fadd.d f10, f9, f9
    fmv.x.d a0, f10
    CHECK 18, a0, 0x7ff0000000000000
    FLAGS 19, 5                 // OF | NX
    fadd.d f10, f9, f9, rtz
    fmv.x.d a0, f10
    li a1, 0x7fefffffffffffff
    bne a0, a1, fail
    FLAGS 20, 5
    fld f11, 40(s0)             // smallest subnormal
    fmul.d f12, f11, f4         // exact
    FLAGS 21, 0
    fld f13, 48(s0)             // 0.5
    fmul.d f12, f11, f13        // underflows to 0
    fmv.x.d a0, f12
    CHECK 22, a0, 0
    FLAGS 23, 3                 // UF | NX
    // -- fused multiply-add rounds once: (1+2^-30)^2 - (1+2^-29) = 2^-60 --
    fld f1, 56(s0)
    fld f2, 64(s0)
    fmsub.d f3, f1, f1, f2
    fmv.x.d a0, f3
    CHECK 24, a0, 0x3c30000000000000
    fnmadd.d f3, f4, f4, f4     // -(1*1) - 1 = -2
    fmv.x.d a0, f3
    CHECK 25, a0, 0xc000000000000000
    FLAGS 26, 0
    // -- binary32 and NaN boxing --
    flw f1, 72(s0)              // 1.5f
    flw f2, 76(s0)              // 2.0f
    fadd.s f3, f1, f2
    fmv.x.d a0, f3              // boxed: upper half all ones
    li a1, 0xffffffff40600000
    bne a0, a1, fail
    fmv.x.w a0, f3
    CHECK 27, a0, 0x40600000
    fmv.d.x f4, zero            // not a boxed single: reads as the canonical NaN
    fadd.s f5, f4, f1
    fmv.x.w a0, f5
    CHECK 28, a0, CANON_S
    FLAGS 29, 0
    li t0, 0xbf800000           // -1.0f, fmv.x.w sign-extends
    fmv.w.x f6, t0
    fmv.x.w a0, f6
    li a1, 0xffffffffbf800000
    bne a0, a1, fail
    // -- signed zeros, fmin/fmax, compares --
    fmv.d.x f1, zero
    li t0, 0x8000000000000000
    fmv.d.x f2, t0
    fmin.d f3, f1, f2
    fmv.x.d a0, f3
    CHECK 30, a0, 0x8000000000000000
    fmax.d f3, f2, f1
    fmv.x.d a0, f3
    CHECK 31, a0, 0
    li t0, 0x7ff0000000000001   // a signalling NaN
    fmv.d.x f7, t0
    fld f4, 16(s0)              // 1.0
    fmin.d f3, f7, f4
    fmv.x.d a0, f3
    CHECK 32, a0, 0x3ff0000000000000
    FLAGS 33, 16
    feq.d a0, f1, f2            // +0 == -0
    CHECK 34, a0, 1
    li t0, CANON_D
    fmv.d.x f8, t0
    feq.d a0, f8, f4            // quiet compare with qNaN: no flag
    CHECK 35, a0, 0
    FLAGS 36, 0
    flt.d a0, f8, f4            // signalling compare: NV
    CHECK 37, a0, 0
    FLAGS 38, 16
    // -- conversions --
    fld f1, 80(s0)              // 2.5
    fcvt.w.d a0, f1             // RNE: 2
    CHECK 39, a0, 2
    fcvt.w.d a0, f1, rmm        // 3
    CHECK 40, a0, 3
    FLAGS 41, 1
    fld f2, 88(s0)              // -3e9
    fcvt.w.d a0, f2, rtz        // saturates
    li a1, 0xffffffff80000000
    bne a0, a1, fail
    FLAGS 42, 16
    fcvt.wu.d a0, f8            // NaN -> all ones, sign-extended
    CHECK 43, a0, -1
    FLAGS 44, 16
    li t0, -7
    fcvt.d.l f3, t0
    fmv.x.d a0, f3
    CHECK 45, a0, 0xc01c000000000000
    fcvt.s.d f4, f1             // 2.5 -> 2.5f
    fmv.x.w a0, f4
    CHECK 46, a0, 0x40200000
    fcvt.d.s f5, f4
    fmv.x.d a0, f5
    CHECK 47, a0, 0x4004000000000000
    // -- fclass --
    fclass.d a0, f2             // negative normal
    CHECK 48, a0, 2
    fclass.d a0, f7             // signalling NaN
    CHECK 49, a0, 256
    fclass.s a0, f4             // positive normal
    CHECK 50, a0, 64
    // -- sign injection --
    fsgnjn.d f3, f1, f1         // -2.5
    fmv.x.d a0, f3
    CHECK 51, a0, 0xc004000000000000
    fsgnjx.d f3, f3, f3         // |-2.5|
    fmv.x.d a0, f3
    CHECK 52, a0, 0x4004000000000000
    // -- compressed loads and stores --
    mv s1, s0
    c.fld f9, 16(s1)            // 1.0
    c.fsd f9, 96(s1)
    ld a0, 96(s0)
    CHECK 53, a0, 0x3ff0000000000000
    addi sp, sp, -16
    c.fsdsp f1, 0(sp)
    c.fldsp f10, 0(sp)
    addi sp, sp, 16
    fmv.x.d a0, f10
    CHECK 54, a0, 0x4004000000000000
    // -- a hot loop (so the translator translates FP code too): 0.1 added 100 times --
    fld f1, 104(s0)             // 0.1
    fmv.d.x f2, zero
    li t1, 100
1:  fadd.d f2, f2, f1
    fmadd.s f3, f4, f4, f4
    addi t1, t1, -1
    bnez t1, 1b
    fmv.x.d a0, f2
    CHECK 56, a0, 0x4023fffffffffff5   // 9.99999999999998: rounded at each step
    FLAGS 57, 1
    // -- a reserved rounding mode is illegal --
    li t0, 5
    csrw frm, t0
    EXPECT_TRAP 55, 2, fadd.d f0, f1, f1
    csrw frm, zero
    RVTEST_PASS
RVTEST_END

    .data
    .align 3
data:
    .double 1.5, 2.0, 1.0, 3.0      // 0, 8, 16, 24
    .dword 0x7fefffffffffffff       // 32: largest
    .dword 1                        // 40: smallest subnormal
    .double 0.5                     // 48
    .dword 0x3ff0000000400000       // 56: 1 + 2^-30
    .dword 0x3ff0000000800000       // 64: 1 + 2^-29
    .float 1.5, 2.0                 // 72, 76
    .double 2.5, -3e9               // 80, 88
    .dword 0                        // 96
    .double 0.1                     // 104
