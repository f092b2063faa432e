// RV64I integer computation: every register-register and register-immediate op,
// the 32-bit (W) forms, lui/auipc, and writes to x0.
#include "popek_test.h"
RVTEST_BEGIN
    TEST_RR 1, add, 0x0000000100000000, 0xffffffff, 1
    TEST_RR 2, add, 0, -1, 1
    TEST_RR 3, sub, -1, 0, 1
    TEST_RR 4, sub, 0x8000000000000000, 0x7fffffffffffffff, -1
    TEST_RR 5, sll, 0x8000000000000000, 1, 63
    TEST_RR 6, sll, 2, 1, 65                       // shift amount is rs2[5:0]
    TEST_RR 7, srl, 1, 0x8000000000000000, 63
    TEST_RR 8, sra, -1, 0x8000000000000000, 63
    TEST_RR 9, slt, 1, -1, 0
    TEST_RR 10, slt, 0, 0, -1
    TEST_RR 11, sltu, 0, -1, 0
    TEST_RR 12, sltu, 1, 0, -1
    TEST_RR 13, xor, 0xf00ff00f, 0xff00ff00, 0x0f0f0f0f
    TEST_RR 14, or, 0xff0fff0f, 0xff00ff00, 0x0f0f0f0f
    TEST_RR 15, and, 0x0f000f00, 0xff00ff00, 0x0f0f0f0f
    TEST_RI 20, addi, 0x7ff, 0, 2047
    TEST_RI 21, addi, -2048, 0, -2048
    TEST_RI 22, addi, 0, 1, -1
    TEST_RI 23, slti, 1, -5, -4
    TEST_RI 24, slti, 0, 5, -4
    TEST_RI 25, sltiu, 1, 5, -1                    // imm sign-extends, then compares unsigned
    TEST_RI 26, sltiu, 0, -1, -2
    TEST_RI 27, xori, 0xffffffffffffff0f, 0xf0, -1
    TEST_RI 28, ori, -1, 0x1234, -1
    TEST_RI 29, andi, 0x0234, 0x1234, 0x6ff
    TEST_RI 30, slli, 0x8000000000000000, 1, 63
    TEST_RI 31, srli, 0x00000000ffffffff, -1, 32
    TEST_RI 32, srai, 0xffffffff80000000, 0x8000000000000000, 32
    // 32-bit forms: results are sign-extended from bit 31
    TEST_RR 40, addw, 0xffffffff80000000, 0x7fffffff, 1
    TEST_RR 41, subw, 0x000000007fffffff, 0x80000000, 1
    TEST_RR 42, sllw, 0xffffffff80000000, 1, 31
    TEST_RR 43, sllw, 2, 1, 33                     // shift amount is rs2[4:0]
    TEST_RR 44, srlw, 1, 0xffffffff80000000, 31
    TEST_RR 45, sraw, -1, 0x0000000080000000, 31
    TEST_RR 46, addw, 0, 0x1234567800000000, 0
    TEST_RI 47, addiw, 0xffffffff80000000, 0x7fffffff, 1
    TEST_RI 48, addiw, 5, 0xffffffff00000004, 1    // upper bits of rs1 ignored
    TEST_RI 49, slliw, 0xffffffff80000000, 1, 31
    TEST_RI 50, srliw, 0x1, 0x80000000, 31
    TEST_RI 51, sraiw, 0xffffffffffffffff, 0x80000000, 31
    TEST_RI 52, srliw, 0x7fffffff, 0xfffffffffffffffe, 1
    // lui / auipc
    li TESTNUM, 60
    lui a0, 0x80000
    li t6, 0xffffffff80000000
    bne a0, t6, fail
    li TESTNUM, 61
1:  auipc a0, 0
    la a1, 1b
    bne a0, a1, fail
    li TESTNUM, 62
2:  auipc a0, 0x1
    la a1, 2b
    sub a0, a0, a1
    li t6, 0x1000
    bne a0, t6, fail
    // x0 stays zero whatever is written to it
    li TESTNUM, 70
    li a1, 5
    add x0, a1, a1
    addi x0, x0, 1
    lui x0, 0x12345
    bnez x0, fail
    mv a2, x0
    bnez a2, fail
    RVTEST_PASS
RVTEST_END
