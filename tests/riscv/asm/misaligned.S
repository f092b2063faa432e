// popek performs misaligned loads and stores to RAM in hardware (the ISA
// allows this or a trap), including ones that straddle a page boundary.
#include "popek_test.h"
RVTEST_BEGIN
    la s0, buf
    li a0, 0x0807060504030201
    sd a0, 0(s0)
    li a0, 0x100f0e0d0c0b0a09
    sd a0, 8(s0)
    li TESTNUM, 1
    ld a1, 1(s0)
    li t6, 0x0908070605040302
    bne a1, t6, fail
    li TESTNUM, 2
    lw a1, 3(s0)
    li t6, 0x07060504
    bne a1, t6, fail
    li TESTNUM, 3
    lh a1, 7(s0)
    li t6, 0x0908
    bne a1, t6, fail
    li TESTNUM, 4
    li a0, 0xaabbccddeeff1122
    sd a0, 5(s0)
    ld a1, 5(s0)
    bne a1, a0, fail
    lbu a1, 5(s0)
    li t6, 0x22
    bne a1, t6, fail
    // across the page boundary at page+0x1000
    li TESTNUM, 5
    la s1, page
    li t0, 0x1000 - 3
    add s1, s1, t0
    li a0, 0x1122334455667788
    sd a0, 0(s1)
    ld a1, 0(s1)
    bne a1, a0, fail
    lbu a1, 3(s1)                  // first byte of the next page
    li t6, 0x55
    bne a1, t6, fail
    li TESTNUM, 6
    sw a0, 1(s1)
    lw a1, 1(s1)
    li t6, 0x55667788
    bne a1, t6, fail
    RVTEST_PASS
RVTEST_END
    .data
    .align 12
page: .skip 0x2000
buf: .skip 64
