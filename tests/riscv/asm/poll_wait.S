// Busy-waiting on the time CSR, as udelay and firmware countdowns do.  At the
// default 1 GHz icount rate a guest second of polling would be a billion
// instructions; popek skips a polling loop's wait (clock.py, guest_time), and the
// test in test_conformance.py checks that this program retires few.
//   1  a one-second wait ends, one second or a little more after it began
//   2  a timer deadline met while polling: MTIP is seen within 10 us of the deadline
//      (the skip never jumps past it)
#include "popek_test.h"
#define SECOND 10000000              // ticks of the 10 MHz timebase
#define MIP_MTIP (1 << 7)
RVTEST_BEGIN
    li TESTNUM, 1
    rdtime s0
    li t0, SECOND
    add s1, s0, t0
1:  rdtime t1
    bltu t1, s1, 1b
    sub t2, t1, s0
    li t0, SECOND
    bltu t2, t0, fail
    li t0, SECOND + SECOND / 100     // overshoot under 1 %
    bgeu t2, t0, fail

    li TESTNUM, 2
    rdtime s0
    li t0, SECOND / 4
    add s1, s0, t0                   // the deadline: a quarter second away
    li t0, CLINT_MTIMECMP
    sd s1, 0(t0)
    li t0, MIP_MTIP
    csrs mie, t0                     // (mstatus.MIE stays 0: nothing is taken)
2:  rdtime t1
    csrr t2, mip
    andi t2, t2, MIP_MTIP
    beqz t2, 2b
    bltu t1, s1, fail                // seen no earlier than due ...
    li t0, 100
    add t0, s1, t0
    bgeu t1, t0, fail                // ... and within 10 us of it
    RVTEST_PASS
RVTEST_END
