// Interrupts: CLINT timer and software interrupts, global and per-source enables,
// wfi wake-up, vectored mtvec, delegation of S-level interrupts with mideleg,
// and which privilege levels take which interrupts.
#include "popek_test.h"
.macro TIMER_IN ticks                // mtimecmp = mtime + ticks
    li t0, CLINT_MTIME
    ld t1, 0(t0)
    addi t1, t1, \ticks
    li t0, CLINT_MTIMECMP
    sd t1, 0(t0)
.endm
.macro TIMER_OFF
    li t0, CLINT_MTIMECMP
    li t1, -1
    sd t1, 0(t0)
.endm
RVTEST_BEGIN
    // the timer fires into a spin loop once MTIE and MIE are set
    li TESTNUM, 1
    TIMER_IN 50
    li a0, (1 << 7)
    csrs mie, a0
    la s8, 1f
    csrsi mstatus, MSTATUS_MIE
2:  j 2b
1:  li t6, IRQ_BIT | 7
    bne s9, t6, fail
    TIMER_OFF
    // pending but globally disabled in M-mode: not taken; mip shows it
    li TESTNUM, 2
    TIMER_IN 10
    li a0, 2000
3:  addi a0, a0, -1
    bnez a0, 3b
    csrr a1, mip
    andi a1, a1, (1 << 7)
    beqz a1, fail
    TIMER_OFF
    csrr a1, mip
    andi a1, a1, (1 << 7)
    bnez a1, fail
    // wfi wakes on a pending enabled interrupt even with MIE clear, and does not trap
    li TESTNUM, 3
    TIMER_IN 1000
    wfi
    csrr a1, mip
    andi a1, a1, (1 << 7)
    beqz a1, fail
    TIMER_OFF
    // ...and with MIE set the interrupt is taken right after wfi
    li TESTNUM, 4
    TIMER_IN 1000
    la s8, 4f
    csrsi mstatus, MSTATUS_MIE
    wfi
    j fail
4:  li t6, IRQ_BIT | 7
    bne s9, t6, fail
    TIMER_OFF
    csrw mie, zero
    // software interrupt through CLINT msip
    li TESTNUM, 5
    li a0, (1 << 3)
    csrs mie, a0
    la s8, 5f
    csrsi mstatus, MSTATUS_MIE
    li t0, CLINT_MSIP
    li t1, 1
    sw t1, 0(t0)
6:  j 6b
5:  li t6, IRQ_BIT | 3
    bne s9, t6, fail
    li t0, CLINT_MSIP
    sw zero, 0(t0)
    csrw mie, zero
    // vectored mode: an interrupt goes to base + 4 * cause
    li TESTNUM, 6
    la a0, vectors
    ori a0, a0, 1
    csrw mtvec, a0
    li s7, 0
    TIMER_IN 20
    li a0, (1 << 7)
    csrs mie, a0
    la s8, 7f
    csrsi mstatus, MSTATUS_MIE
8:  j 8b
7:  li t6, 0x77
    bne s7, t6, fail
    TIMER_OFF
    la a0, trap_handler
    csrw mtvec, a0
    // exceptions in vectored mode still go to base (checked with the plain handler above)
    // M-level interrupts preempt S-mode whatever mstatus.MIE says
    li TESTNUM, 7
    csrci mstatus, MSTATUS_MIE
    TIMER_IN 30
    la s8, 9f                       // may fire on S-mode's very first instruction
    IN_MODE 1
10: j 10b
9:  li t6, IRQ_BIT | 7
    bne s9, t6, fail
    TIMER_OFF
    csrw mie, zero
    // a delegated supervisor timer interrupt is taken by S-mode (stvec)
    li TESTNUM, 8
    li a0, (1 << 5)
    csrw mideleg, a0
    csrs mie, a0                    // STIE
    li s4, 0
    IN_MODE 1
    csrsi sstatus, MSTATUS_SIE
    li a0, 0
    la s8, 11f
    // M-mode software would set STIP; here S-mode cannot, so go back up to do it
    ecall
11: li a0, (1 << 5)
    csrs mip, a0                    // STIP pending, delegated; we are in M: not taken
    nop
    nop
    CHECK 9, s4, 0
    // enter S with SIE set (mret to S restores nothing of SIE: set it in S)
    li a0, MSTATUS_SIE
    csrs mstatus, a0
    la s8, 12f
    IN_MODE 1
13: j 13b                           // the S handler runs, then ecalls back to M
12: li t6, IRQ_BIT | 5
    bne s4, t6, fail
    CHECK 10, s9, 9
    li a0, (1 << 5)
    csrc mip, a0
    // supervisor software interrupt raised by S-mode itself through sip
    li TESTNUM, 11
    li a0, (1 << 1)
    csrw mideleg, a0
    csrw mie, a0
    li s4, 0
    li a0, MSTATUS_SIE
    csrs mstatus, a0
    la s8, 14f
    IN_MODE 1
    csrsi sip, (1 << 1)
15: j 15b
14: li t6, IRQ_BIT | 1
    bne s4, t6, fail
    csrci mip, (1 << 1)
    csrw mie, zero
    csrw mideleg, zero
    RVTEST_PASS
    .align 2
    .option push
    .option norvc                   // each entry must be exactly 4 bytes
vectors:
    .rept 7
    j trap_handler
    .endr
    j timer_vector                  // entry 7: machine timer
    .rept 8
    j trap_handler
    .endr
    .option pop
timer_vector:
    li s7, 0x77
    j trap_handler
RVTEST_END
