// A long loop with an interrupt pending but masked (MSIP set, mie.MSIE set,
// mstatus.MIE 0), as Linux runs its early memory set-up with SSIP pending and
// sstatus.SIE 0: nothing may be taken, and the loop must stay in translated code
// (tests/test_translator.py counts the dispatcher's interrupt checks); then, with
// MIE set, the interrupt is taken at once.
#include "popek_test.h"
RVTEST_BEGIN
    li TESTNUM, 1
    li t0, CLINT_MSIP
    li t1, 1
    sw t1, 0(t0)
    li a0, (1 << 3)                  // MSIE
    csrs mie, a0
    csrr a1, mip
    andi a1, a1, (1 << 3)
    beqz a1, fail                    // pending ...
    li t2, 300000
    li a3, 0
1:  addi a3, a3, 3                   // ... while a long loop runs
    xor a3, a3, t2
    addi t2, t2, -1
    bnez t2, 1b
    li TESTNUM, 2
    la s8, 2f
    csrsi mstatus, MSTATUS_MIE       // taken here, before the next instruction
    j fail
2:  li t6, IRQ_BIT | 3
    bne s9, t6, fail
    li t0, CLINT_MSIP
    sw zero, 0(t0)
    RVTEST_PASS
RVTEST_END
