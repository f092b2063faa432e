// A extension: every AMO's result and memory effect, LR/SC reservation rules,
// and alignment faults (LR: load misaligned; SC/AMO: store/AMO misaligned).
#include "popek_test.h"
.macro TEST_AMO num, op, init, src, old, new
    li TESTNUM, \num
    la s0, word
    li a0, \init
    sd a0, 0(s0)
    li a1, \src
    \op a2, a1, (s0)
    li t6, \old
    bne a2, t6, fail
    ld a3, 0(s0)
    li t6, \new
    bne a3, t6, fail
.endm
RVTEST_BEGIN
    TEST_AMO 1, amoswap.d, 5, 7, 5, 7
    TEST_AMO 2, amoadd.d, 5, 7, 5, 12
    TEST_AMO 3, amoxor.d, 0xff, 0x0f, 0xff, 0xf0
    TEST_AMO 4, amoand.d, 0xff, 0x0f, 0xff, 0x0f
    TEST_AMO 5, amoor.d, 0xf0, 0x0f, 0xf0, 0xff
    TEST_AMO 6, amomin.d, 1, -1, 1, -1
    TEST_AMO 7, amomax.d, 1, -1, 1, 1
    TEST_AMO 8, amominu.d, 1, -1, 1, 1
    TEST_AMO 9, amomaxu.d, 1, -1, 1, -1
    // .w forms: 32-bit memory, sign-extended old value, upper word untouched
    TEST_AMO 10, amoswap.w, 0x1111111180000000, 1, 0xffffffff80000000, 0x1111111100000001
    TEST_AMO 11, amoadd.w, 0x22222222ffffffff, 1, -1, 0x2222222200000000
    TEST_AMO 12, amomin.w, 0x0000000000000005, 0xfffffffe, 5, 0xfffffffe
    TEST_AMO 13, amomaxu.w, 0x0000000000000005, 0xfffffffe, 5, 0xfffffffe
    TEST_AMO 14, amomax.w, 0x0000000000000005, 0xfffffffe, 5, 5
    TEST_AMO 15, amominu.w, 0x0000000000000005, 0xfffffffe, 5, 5
    TEST_AMO 16, amoxor.w, 0x00000000ffff0000, 0xffffffff, 0xffffffffffff0000, 0x000000000000ffff
    // LR/SC: success stores and writes 0; SC without a reservation fails (1) and stores nothing
    li TESTNUM, 20
    la s0, word
    li a0, 40
    sd a0, 0(s0)
    lr.d a1, (s0)
    addi a1, a1, 2
    sc.d a2, a1, (s0)
    bnez a2, fail
    ld a3, 0(s0)
    li t6, 42
    bne a3, t6, fail
    li TESTNUM, 21
    li a1, 99
    sc.d a2, a1, (s0)               // the reservation was used up by the last sc
    beqz a2, fail
    ld a3, 0(s0)
    li t6, 42
    bne a3, t6, fail
    li TESTNUM, 22
    lr.w a1, (s0)                   // reservation on another address does not count
    addi s1, s0, 8
    sc.w a2, a1, (s1)
    beqz a2, fail
    li TESTNUM, 23
    li a0, 0xffffffff80000000
    sw a0, 0(s0)
    lr.w a1, (s0)                   // lr.w sign-extends
    bne a1, a0, fail
    // a trap between lr and sc breaks the reservation
    li TESTNUM, 24
    lr.d a1, (s0)
    EXPECT_TRAP 24, 11, ecall
    li TESTNUM, 25
    sc.d a2, a1, (s0)
    beqz a2, fail
    // misaligned atomics trap
    la s0, word
    addi s1, s0, 4
    EXPECT_TRAP 30, 4, lr.d a1, (s1)
    EXPECT_TRAP 31, 6, sc.d a2, a1, (s1)
    EXPECT_TRAP 32, 6, amoadd.d a2, a1, (s1)
    addi s1, s0, 2
    EXPECT_TRAP 33, 6, amoswap.w a2, a1, (s1)
    li TESTNUM, 34
    bne s11, s1, fail               // mtval holds the address
    RVTEST_PASS
RVTEST_END
    .data
    .align 4
word: .dword 0, 0
