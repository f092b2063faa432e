// PMP registers hold what was written (WARL rules: W without R reads back cleared,
// locked entries keep their value).  popek does not enforce PMP.
#include "popek_test.h"
RVTEST_BEGIN
    li TESTNUM, 1
    li a0, 0x0000000080001fff
    csrw pmpaddr0, a0
    csrr a1, pmpaddr0
    bne a1, a0, fail
    li TESTNUM, 2
    li a0, -1
    csrw pmpaddr1, a0
    csrr a1, pmpaddr1
    li t6, 0x003fffffffffffff        // 54 address bits
    bne a1, t6, fail
    li TESTNUM, 3
    li a0, 0x1f0f
    csrw pmpcfg0, a0
    csrr a1, pmpcfg0
    li t6, 0x1f0f
    bne a1, t6, fail
    li TESTNUM, 4
    li a0, 0x06                      // W without R: reserved, cleared
    csrw pmpcfg0, a0
    csrr a1, pmpcfg0
    li t6, 0x04
    bne a1, t6, fail
    li TESTNUM, 5
    li a0, 0x9f00                    // entry 1 locked
    csrw pmpcfg0, a0
    li a0, 0
    csrw pmpcfg0, a0
    csrr a1, pmpcfg0
    li t6, 0x9f00
    bne a1, t6, fail
    li TESTNUM, 6
    li a0, 0x0f
    csrw pmpcfg2, a0
    csrr a1, pmpcfg2
    bne a1, a0, fail
    RVTEST_PASS
RVTEST_END
