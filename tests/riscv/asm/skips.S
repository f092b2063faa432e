// Skips (riscv/blockshape.py): a taken branch forward to an instruction of its own
// block goes on inside the block.  Each loop below is one block, run often enough
// to be translated; both engines must retire exactly the instructions the
// architecture says, whichever branches are taken.
#include "popek_test.h"
RVTEST_BEGIN
    // 1: skips nested in a skip (B ends before A), and a branch inside A that
    // jumps past A's end (C: it cannot nest, so it stays a side exit).
    li s4, 256
    li s0, 0
    li s1, 0
    li s3, 0
    li s5, 0
    csrr s2, minstret
1:  andi t0, s4, 1
    beqz t0, 3f                 // A: even rounds skip to 3
    addi s0, s0, 1
    andi t1, s4, 2
    beqz t1, 2f                 // B, inside A
    addi s1, s1, 1
2:  andi t2, s4, 4
    bnez t2, 4f                 // C: crosses A's end
    addi s3, s3, 1
3:  addi s5, s5, 1
4:  addi s4, s4, -1
    bnez s4, 1b
    csrr s6, minstret
    sub s6, s6, s2
    CHECK 1, s0, 128            // odd rounds
    CHECK 2, s1, 64             // s4 & 3 == 3
    CHECK 3, s3, 64             // odd, bit 2 clear
    CHECK 4, s5, 192            // even, or odd with bit 2 clear
    // csrr, then 128 even rounds of 5; 32 each of s4 & 7 == 1, 5, 3, 7: 11, 9, 12, 10
    CHECK 5, s6, 1985

    // 2: a trap inside a skip's range, in the last round (the others skip it): the
    // instructions before it retired, those it skipped in earlier rounds did not.
    li TESTNUM, 6
    li s4, 100
    li s7, 0
    li t3, 0x10                 // nothing there: a load access fault
    csrr s2, minstret
    la s8, 6f
5:  addi s7, s7, 1
    li t0, 1
    bne s4, t0, 7f              // skips the load but in the last round
    addi s7, s7, 16
    ld t4, 0(t3)
7:  addi s4, s4, -1
    bnez s4, 5b
    j fail
6:  csrr s6, minstret
    sub s6, s6, s2
    li t6, 5
    bne s9, t6, fail            // a load access fault
    CHECK 7, s7, 116
    CHECK 8, s4, 1
    // csrr, la (2), 99 rounds of 5, then addi, li, bne, addi (the ld faults), and the
    // handler's 12 (3 csrr, beqz, li (2), csrs, li, csrc, csrw, li, mret)
    CHECK 9, s6, 514

    // 3: a hundred branches to one target in one block, each inside the one before:
    // those nested deeper than blockshape.MAX_DEPTH stay side exits (Python cannot
    // compile a hundred nested blocks; this one is translated, and must not fail).
    li TESTNUM, 10
    li s4, 64
    li s3, 0
    csrr s2, minstret
8:  andi t0, s4, 1
    .rept 100
    bnez t0, 9f
    .endr
    addi s3, s3, 1              // even rounds
9:  addi s4, s4, -1
    bnez s4, 8b
    csrr s6, minstret
    sub s6, s6, s2
    CHECK 11, s3, 32
    // csrr, then 32 odd rounds of 4 (andi, the first bnez, addi, bnez), 32 even of 104
    CHECK 12, s6, 3457
    RVTEST_PASS
RVTEST_END
