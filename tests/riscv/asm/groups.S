// Runs of loads or stores off one base register, which the translator does with
// one page check and plain indexing: the fast path (routines called 100 times, so
// they are translated), the fallback when a run straddles two pages, a load into
// the base register ending a run, and a fault in the middle of a run, which must
// leave the accesses before it done and none after.
#include "popek_test.h"
#define RAM_END 0x88000000              /* 128 MiB at 0x8000_0000; nothing above */
RVTEST_BEGIN
    li s0, 100
    li s1, 0                            // sum of what load3 read back
    la a0, page
1:  mv a1, s0
    call store3
    call load3
    add s1, s1, a2
    addi s0, s0, -1
    bnez s0, 1b
    CHECK 1, s1, 15150                  // 3 * (1 + ... + 100)

    // a run straddling two pages: the slow path, access by access
    la a0, page + 4096 - 8
    li a1, 0x123456789
    call store3
    call load3
    CHECK 2, a2, 0x369d0369b
    la a0, page + 4096
    lwu t0, 4(a0)
    CHECK 3, t0, 1                      // the upper half of the second dword

    // a load into the base ends its run: t0 = first field, a0 = second (100 times)
    li s0, 100
    la s2, page
    li t0, 77
    sd t0, 0(s2)
    li t0, 88
    sd t0, 8(s2)
2:  mv a0, s2
    call chase
    addi s0, s0, -1
    bnez s0, 2b
    CHECK 4, a0, 88
    CHECK 5, t0, 77

    // a store run faulting at its second access: the first is done, the third not
    li a0, RAM_END - 8
    li a1, 0x5a5a
    EXPECT_TRAP 6, 7, call store3
    CHECK 7, s11, RAM_END
    la t0, store3_second
    li TESTNUM, 8
    bne s10, t0, fail
    li a0, RAM_END - 8
    ld t0, 0(a0)
    CHECK 9, t0, 0x5a5a

    // a load run faulting at its third access: the two before it landed
    li a0, RAM_END - 16
    li t0, 1
    li t1, 0
    li t2, 99
    EXPECT_TRAP 10, 5, call load3
    CHECK 11, t0, 0
    CHECK 12, t1, 0x5a5a
    CHECK 13, s11, RAM_END
    CHECK 14, t2, 99
    RVTEST_PASS

store3:
    sd a1, 0(a0)
store3_second:
    sd a1, 8(a0)
    sd a1, 16(a0)
    ret
load3:
    ld t0, 0(a0)
    ld t1, 8(a0)
    ld t2, 16(a0)
    add a2, t0, t1
    add a2, a2, t2
    ret
chase:
    ld t0, 0(a0)
    ld a0, 8(a0)
    ret
RVTEST_END
    .data
    .align 12
page: .skip 8192
