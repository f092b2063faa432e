// Branches (taken / not taken, signed / unsigned), jal and jalr link values,
// jalr clearing bit 0 of the target, and jalr with rd == rs1.
#include "popek_test.h"
.macro TEST_BR num, op, a, b, taken
    li TESTNUM, \num
    li a1, \a
    li a2, \b
    \op a1, a2, .Ltaken\@
    li t6, \taken
    bnez t6, fail
    j .Ldone\@
.Ltaken\@:
    li t6, \taken
    beqz t6, fail
.Ldone\@:
.endm
RVTEST_BEGIN
    TEST_BR 1, beq, 5, 5, 1
    TEST_BR 2, beq, 5, 6, 0
    TEST_BR 3, bne, 5, 6, 1
    TEST_BR 4, bne, -1, -1, 0
    TEST_BR 5, blt, -1, 0, 1
    TEST_BR 6, blt, 0, -1, 0
    TEST_BR 7, blt, 3, 3, 0
    TEST_BR 8, bge, 3, 3, 1
    TEST_BR 9, bge, -2, -1, 0
    TEST_BR 10, bltu, 0, -1, 1
    TEST_BR 11, bltu, -1, 0, 0
    TEST_BR 12, bgeu, -1, 0, 1
    TEST_BR 13, bgeu, 0, 1, 0
    TEST_BR 14, bgeu, 7, 7, 1
    // jal links to the next instruction
    li TESTNUM, 20
    jal a0, 1f
2:  j fail
1:  la a1, 2b
    bne a0, a1, fail
    // jalr: target = (rs1 + imm) & ~1
    li TESTNUM, 21
    la a1, 3f
    addi a1, a1, 1            // odd address: bit 0 is cleared
    jalr a0, 0(a1)
4:  j fail
3:  la a2, 4b
    bne a0, a2, fail
    // jalr with rd == rs1 uses the old value as base
    li TESTNUM, 22
    la a0, 5f
    jalr a0, 0(a0)
6:  j fail
5:  la a2, 6b
    bne a0, a2, fail
    // backward branch loop: sum 1..100
    li TESTNUM, 23
    li a0, 0
    li a1, 100
7:  add a0, a0, a1
    addi a1, a1, -1
    bnez a1, 7b
    li t6, 5050
    bne a0, t6, fail
    RVTEST_PASS
RVTEST_END
