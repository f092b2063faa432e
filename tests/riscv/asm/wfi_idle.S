// Sleeps one guest second in wfi (timer interrupts disabled globally, so wfi
// just wakes): the deterministic clock must skip the idle time, not spin.
#include "popek_test.h"
RVTEST_BEGIN
    li t0, CLINT_MTIME
    ld s0, 0(t0)
    li t1, 10000000                  // 1 s at the 10 MHz timebase
    add t1, s0, t1
    li t0, CLINT_MTIMECMP
    sd t1, 0(t0)
    li a0, (1 << 7)
    csrs mie, a0
1:  wfi
    csrr a1, mip
    andi a1, a1, (1 << 7)
    beqz a1, 1b
    li TESTNUM, 1
    li t0, CLINT_MTIME
    ld a2, 0(t0)
    sub a2, a2, s0
    li t6, 10000000
    bltu a2, t6, fail
    RVTEST_PASS
RVTEST_END
