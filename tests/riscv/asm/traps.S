// Exceptions: causes, epc, tval; mret/sret privilege transitions; privileged
// instructions from the wrong mode; access faults; delegation with medeleg;
// precise state on a fault in the middle of a block.
#include "popek_test.h"
RVTEST_BEGIN
    EXPECT_TRAP 1, 11, ecall
    EXPECT_TRAP 2, 3, 1: ebreak
    li TESTNUM, 3
    la a0, 1b
    bne s10, a0, fail               // mepc = the ebreak
    EXPECT_TRAP 4, 2, 2: .word 0xffffffff
    li TESTNUM, 5
    li t6, 0xffffffff
    bne s11, t6, fail               // mtval = the instruction bits
    la a0, 2b
    bne s10, a0, fail
    // ecall from S and from U
    IN_MODE 1
    EXPECT_TRAP 6, 9, ecall
    IN_MODE 0
    EXPECT_TRAP 7, 8, ecall
    // the trap from U recorded MPP = U; from S, MPP = S (checked through mstatus
    // before the handler rewrote it: the handler sets MPP=M, so use sret/mret instead)
    // privileged instructions from lower modes
    IN_MODE 1
    EXPECT_TRAP 8, 2, mret
    IN_MODE 0
    EXPECT_TRAP 9, 2, sret
    IN_MODE 0
    EXPECT_TRAP 10, 2, wfi
    IN_MODE 0
    EXPECT_TRAP 11, 2, sfence.vma
    // TSR, TVM, TW trap the S-mode forms
    li a0, (1 << 22)
    csrs mstatus, a0
    IN_MODE 1
    EXPECT_TRAP 12, 2, sret
    li a0, (1 << 22) | (1 << 20) | (1 << 21)
    csrc mstatus, a0
    li a0, (1 << 20)
    csrs mstatus, a0
    IN_MODE 1
    EXPECT_TRAP 13, 2, sfence.vma
    IN_MODE 1
    EXPECT_TRAP 14, 2, csrr a0, satp
    li a0, (1 << 20)
    csrc mstatus, a0
    li a0, (1 << 21)
    csrs mstatus, a0
    IN_MODE 1
    EXPECT_TRAP 15, 2, wfi
    li a0, (1 << 21)
    csrc mstatus, a0
    // access faults: nothing is mapped at 0x1200_0000 (physical; 0x4000_0000 is PCIe memory)
    li s0, 0x12000000
    EXPECT_TRAP 16, 5, ld a0, 0(s0)
    CHECK 17, s11, 0x12000000
    EXPECT_TRAP 18, 7, sd a0, 8(s0)
    CHECK 19, s11, 0x12000008
    EXPECT_TRAP 20, 1, jalr s0
    CHECK 21, s10, 0x12000000
    // mret goes to MPP with MIE = MPIE, and sets MPIE, MPP = U
    li TESTNUM, 22
    li a0, MSTATUS_MPP | MSTATUS_MPIE
    csrs mstatus, a0                // MPP = M, MPIE = 1
    la a0, 3f
    csrw mepc, a0
    mret
3:  csrr a0, mstatus
    andi a1, a0, MSTATUS_MIE
    beqz a1, fail
    li a1, MSTATUS_MPP
    and a1, a0, a1
    bnez a1, fail
    csrci mstatus, MSTATUS_MIE
    // sret from S to U: SIE = SPIE, SPP cleared
    li TESTNUM, 23
    IN_MODE 1
    li a0, MSTATUS_SPIE
    csrs sstatus, a0
    li a0, MSTATUS_SPP
    csrc sstatus, a0                // SPP = U
    la a0, 4f
    csrw sepc, a0
    sret
4:  EXPECT_TRAP 23, 2, csrr a0, sstatus   // now in U-mode
    // delegation: with medeleg[ecall-from-U], U's ecall goes to the S handler
    li TESTNUM, 24
    li a0, (1 << 8)
    csrw medeleg, a0
    li s4, 0
    IN_MODE 0
    la s8, 5f
    ecall                           // → S handler records scause, then ecall → M
5:  CHECK 25, s4, 8
    CHECK 26, s9, 9                 // the S handler's own ecall reached M
    // an exception in M-mode is never delegated
    EXPECT_TRAP 27, 2, .word 0
    li s4, 0
    li TESTNUM, 28
    li a0, (1 << 2)
    csrw medeleg, a0
    EXPECT_TRAP 28, 2, .word 0
    bnez s4, fail
    // from S-mode, a delegated illegal instruction goes to stvec with sepc/stval
    IN_MODE 1
    la s8, 6f
7:  .word 0
6:  CHECK 29, s4, 2
    la a0, 7b
    bne s5, a0, fail
    csrw medeleg, zero
    // precise state: instructions before the faulting load retired, none after
    li TESTNUM, 30
    li a0, 0
    li a1, 0
    li a3, 0
    li s0, 0x12000000
    csrr s2, minstret
    la s8, 8f
    addi a0, a0, 1
    addi a1, a1, 2
    ld a2, 0(s0)
    addi a3, a3, 3
8:  CHECK 31, a0, 1
    CHECK 32, a1, 2
    CHECK 33, a3, 0
    RVTEST_PASS
RVTEST_END
