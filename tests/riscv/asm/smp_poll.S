// Two harts (--smp 2): hart 1 counts in a loop while hart 0 busy-waits 1 ms polling
// rdtime.  Skipping a polling loop's wait (clock.py) is for a machine whose other harts
// sleep: with hart 1 busy, time must pass at hart 1's pace too, so hart 1 gets its
// share of that millisecond (about half of 1 M instructions at 1 GHz) instead of a
// few quanta.
//   1  hart 1 counted at least 100,000 times during hart 0's millisecond
#include "popek_test.h"
#define MS 10000                     // ticks of the 10 MHz timebase
RVTEST_BEGIN
    csrr t0, mhartid
    bnez t0, counter
    li TESTNUM, 1
    la a0, count
1:  ld t1, 0(a0)                     // wait until hart 1 runs
    beqz t1, 1b
    rdtime s0
    li t0, MS
    add s1, s0, t0
2:  rdtime t1
    bltu t1, s1, 2b
    ld t1, 0(a0)
    li t2, 100000
    bltu t1, t2, fail
    RVTEST_PASS

counter:
    la a0, count
3:  ld t1, 0(a0)
    addi t1, t1, 1
    sd t1, 0(a0)
    j 3b
RVTEST_END

    .section .data
    .align 3
count: .dword 0
