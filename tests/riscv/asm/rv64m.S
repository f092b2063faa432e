// M extension: products (low and high halves, each signedness) and division
// with the corner cases the ISA defines: divide by zero and signed overflow.
#include "popek_test.h"
RVTEST_BEGIN
    TEST_RR 1, mul, 0x0000000000001200, 0x100, 0x12
    TEST_RR 2, mul, 0x0000000000000001, -1, -1
    TEST_RR 3, mul, 0x8000000000000000, 0x4000000000000000, 2
    TEST_RR 4, mulh, -1, -1, 1                      // (-1 * 1) >> 64 = -1
    TEST_RR 5, mulh, 0x3fffffffffffffff, 0x7fffffffffffffff, 0x7fffffffffffffff
    TEST_RR 6, mulh, 0x4000000000000000, 0x8000000000000000, 0x8000000000000000
    TEST_RR 7, mulhu, 0xfffffffffffffffe, -1, -1
    TEST_RR 8, mulhu, 0, 0x100, 0x100
    TEST_RR 9, mulhsu, -1, -1, 1                    // signed -1 * unsigned 1
    TEST_RR 10, mulhsu, 0xffffffffffffffff, -1, -1  // -1 * (2^64-1) >> 64 = -1
    TEST_RR 11, mulhsu, 0x7ffffffffffffffe, 0x7fffffffffffffff, -1
    TEST_RR 12, mulw, 0xffffffff80000000, 0x40000000, 2
    TEST_RR 13, mulw, 1, 0x1ffffffff, 0x1ffffffff   // only the low 32 bits matter
    TEST_RR 20, div, -3, 20, -6
    TEST_RR 21, div, 3, -20, -6
    TEST_RR 22, div, -1, 5, 0                       // by zero: all ones
    TEST_RR 23, div, 0x8000000000000000, 0x8000000000000000, -1   // overflow: dividend
    TEST_RR 24, divu, 0x7fffffffffffffff, -1, 2
    TEST_RR 25, divu, -1, 5, 0
    TEST_RR 26, rem, 2, 20, -6                      // sign of the dividend
    TEST_RR 27, rem, -2, -20, 6
    TEST_RR 28, rem, 7, 7, 0                        // by zero: dividend
    TEST_RR 29, rem, 0, 0x8000000000000000, -1      // overflow: zero
    TEST_RR 30, remu, 1, -1, 2
    TEST_RR 31, remu, 9, 9, 0
    TEST_RR 40, divw, -3, 20, -6
    TEST_RR 41, divw, -1, 5, 0
    TEST_RR 42, divw, 0xffffffff80000000, 0x80000000, -1          // overflow
    TEST_RR 43, divuw, 0x7fffffff, 0xfffffffe, 2
    TEST_RR 44, divuw, -1, 5, 0
    TEST_RR 45, divuw, 0xffffffff80000000, 0x180000000, 1        // result sign-extended
    TEST_RR 46, remw, -2, -20, 6
    TEST_RR 47, remw, 0, 0x80000000, -1
    TEST_RR 48, remw, 0xffffffff80000000, 0x80000000, 0          // by zero: sext(dividend)
    TEST_RR 49, remuw, 1, 0xffffffff, 2
    TEST_RR 50, remuw, 0xffffffff80000001, 0x80000001, 0
    RVTEST_PASS
RVTEST_END
