// SMP: four harts (run with --smp 4; test_conformance.py runs it so) share memory,
// atomics, IPIs and timers.  Every hart starts here from the reset ROM with its own
// registers; any hart that finds a check failed reports it through tohost.
//   1  hart ids are 0..NHARTS-1, each seen once
//   2  AMOs and LR/SC loops of all harts, interleaved, lose no increment
//   3  an IPI (CLINT msip) wakes a hart sleeping in wfi; it clears its own msip
//   4  a store by another hart breaks a reservation: the SC fails
//   5  each hart's mtimecmp raises its own MTIP only
#include "popek_test.h"
#define NHARTS 4
#define ROUNDS 4000          // each loop runs across several scheduling quanta
#define MIP_MSIP (1 << 3)
#define MIP_MTIP (1 << 7)

RVTEST_BEGIN
    csrr s0, mhartid
    li TESTNUM, 1
    li t0, NHARTS
    bgeu s0, t0, fail
    la a0, seen
    li t1, 1
    sll t1, t1, s0
    amoor.d zero, t1, (a0)

    li TESTNUM, 2
    la a0, counter
    li s1, ROUNDS
1:  li t1, 1
    amoadd.d zero, t1, (a0)
    addi s1, s1, -1
    bnez s1, 1b
    li s1, ROUNDS
2:  lr.d t1, (a0)
    addi t1, t1, 1
    sc.d t2, t1, (a0)
    bnez t2, 2b
    addi s1, s1, -1
    bnez s1, 2b
    la a1, arrived
    li t1, 1
    amoadd.d zero, t1, (a1)
    bnez s0, secondary

// ---------------------------------------------------------------- hart 0
3:  ld t1, 0(a1)                 // everyone has counted
    li t2, NHARTS
    bne t1, t2, 3b
    li TESTNUM, 1
    la a0, seen
    ld t1, 0(a0)
    li t2, (1 << NHARTS) - 1
    bne t1, t2, fail
    li TESTNUM, 2
    la a0, counter
    ld t1, 0(a0)
    li t2, NHARTS * ROUNDS * 2
    bne t1, t2, fail

    li TESTNUM, 3                // wake each sleeping hart with an IPI
    li t0, CLINT_MSIP + 4
    li t1, 1
    li t2, NHARTS - 1
4:  sw t1, 0(t0)
    addi t0, t0, 4
    addi t2, t2, -1
    bnez t2, 4b
    la a0, ipi_acks
5:  ld t1, 0(a0)
    li t2, NHARTS - 1
    bne t1, t2, 5b
    li t0, CLINT_MSIP            // no IPI was ever sent to hart 0
    lw t1, 0(t0)
    bnez t1, fail

    li TESTNUM, 4                // hart 1 stores to a word hart 0 has reserved
    la a0, shared
    lr.d t1, (a0)
    la a1, go
    li t2, 1
    sd t2, 0(a1)
6:  la a1, stored
    ld t2, 0(a1)
    beqz t2, 6b
    li t3, 0x5555
    sc.d t4, t3, (a0)
    beqz t4, fail                // the SC must fail ...
    ld t1, 0(a0)
    li t2, 0x1234
    bne t1, t2, fail             // ... and leave hart 1's value

    li TESTNUM, 5
    la a0, timers
7:  ld t1, 0(a0)
    li t2, NHARTS - 1
    bne t1, t2, 7b
    csrr t1, mip                 // hart 0 set no timer: its MTIP is low
    andi t1, t1, MIP_MTIP
    bnez t1, fail
    RVTEST_PASS

// ---------------------------------------------------------------- harts 1..3
secondary:
    li TESTNUM, 3
    li t0, MIP_MSIP
    csrs mie, t0                 // (mstatus.MIE stays 0: wfi wakes, nothing is taken)
8:  wfi
    csrr t1, mip
    andi t1, t1, MIP_MSIP
    beqz t1, 8b
    li t0, CLINT_MSIP            // clear our own msip: our MSIP goes low
    slli t1, s0, 2
    add t0, t0, t1
    sw zero, 0(t0)
    csrr t1, mip
    andi t1, t1, MIP_MSIP
    bnez t1, fail
    li t0, MIP_MSIP
    csrc mie, t0
    la a0, ipi_acks
    li t1, 1
    amoadd.d zero, t1, (a0)

    li t0, 1                     // hart 1: the store that breaks hart 0's reservation
    bne s0, t0, 10f
    li TESTNUM, 4
    la a1, go
9:  ld t2, 0(a1)
    beqz t2, 9b
    la a0, shared
    li t1, 0x1234
    sd t1, 0(a0)
    la a1, stored
    li t2, 1
    sd t2, 0(a1)

10: li TESTNUM, 5                // a timer of our own, 1000 ticks per hart id away
    li t0, CLINT_MTIME
    ld t1, 0(t0)
    li t2, 1000
    mul t2, t2, s0
    add t1, t1, t2
    li t0, CLINT_MTIMECMP
    slli t2, s0, 3
    add t0, t0, t2
    sd t1, 0(t0)
    li t0, MIP_MTIP
    csrs mie, t0
11: wfi
    csrr t1, mip
    andi t1, t1, MIP_MTIP
    beqz t1, 11b
    li t0, -1                    // quiet our timer again
    li t3, CLINT_MTIMECMP
    slli t4, s0, 3
    add t3, t3, t4
    sd t0, 0(t3)
    la a0, timers
    li t1, 1
    amoadd.d zero, t1, (a0)
12: wfi                          // done: sleep (nothing enabled wakes us)
    j 12b
RVTEST_END

    .section .data
    .align 3
seen:     .dword 0
counter:  .dword 0
arrived:  .dword 0
ipi_acks: .dword 0
go:       .dword 0
stored:   .dword 0
shared:   .dword 0
timers:   .dword 0
