// Loads and stores of every width, sign and zero extension, and store-to-load.
#include "popek_test.h"
RVTEST_BEGIN
    la s0, data
    li TESTNUM, 1
    lb a0, 0(s0)
    li t6, 0xffffffffffffff81
    bne a0, t6, fail
    li TESTNUM, 2
    lbu a0, 0(s0)
    li t6, 0x81
    bne a0, t6, fail
    li TESTNUM, 3
    lh a0, 0(s0)
    li t6, 0xffffffffffff8281
    bne a0, t6, fail
    li TESTNUM, 4
    lhu a0, 0(s0)
    li t6, 0x8281
    bne a0, t6, fail
    li TESTNUM, 5
    lw a0, 0(s0)
    li t6, 0xffffffff84838281
    bne a0, t6, fail
    li TESTNUM, 6
    lwu a0, 0(s0)
    li t6, 0x84838281
    bne a0, t6, fail
    li TESTNUM, 7
    ld a0, 0(s0)
    li t6, 0x8887868584838281
    bne a0, t6, fail
    li TESTNUM, 8
    lb a0, 8(s0)               // positive byte
    li t6, 0x7f
    bne a0, t6, fail
    li TESTNUM, 9
    la s1, data+16
    ld a0, -8(s1)
    li t6, 0x000000000000007f
    bne a0, t6, fail
    // stores of each width, then read back as a doubleword
    li TESTNUM, 10
    la s1, scratch
    sd zero, 0(s1)
    li a0, 0x1122334455667788
    sb a0, 0(s1)
    sh a0, 2(s1)
    sw a0, 4(s1)
    ld a1, 0(s1)
    li t6, 0x5566778877880088
    bne a1, t6, fail
    li TESTNUM, 11
    sd a0, 8(s1)
    ld a1, 8(s1)
    bne a1, a0, fail
    li TESTNUM, 12
    lbu a1, 15(s1)
    li t6, 0x11
    bne a1, t6, fail
    // negative offsets
    li TESTNUM, 13
    addi s2, s1, 16
    li a0, -2
    sw a0, -4(s2)
    lw a1, -4(s2)
    bne a1, a0, fail
    RVTEST_PASS
RVTEST_END
    .data
    .align 3
data: .byte 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x7f, 0, 0, 0, 0, 0, 0, 0
scratch: .skip 64
