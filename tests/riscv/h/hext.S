// The H extension, checked from M-mode down: misa.H; the CSR access rules of the
// virtual modes (virtual-instruction vs illegal); the VS register bank; ecall from
// VS/VU; delegation through medeleg/hedeleg and mideleg/hideleg (hstatus.SPV/SPVP,
// mstatus.MPV); interrupts injected through hvip; htimedelta and hcounteren;
// sret/wfi/sfence.vma under VTSR/VTW/VTVM.  Paging is hpaging.S.
#include "popek_test.h"
#include "h_test.h"

RVTEST_BEGIN
    H_BEGIN
    // 1: misa says H; hstatus.VSXL says VS-mode is 64-bit
    csrr t0, misa
    li TESTNUM, 1
    andi t1, t0, (1 << 7)
    beqz t1, fail
    csrr t0, hstatus
    srli t0, t0, 32
    andi t0, t0, 3
    CHECK 2, t0, 2

    // mideleg's VS bits are read-only one (and SGEI's where GEILEN > 0: QEMU; popek's is 0)
    csrw mideleg, zero
    csrr t0, mideleg
    andi t0, t0, 0x7ff
    CHECK 3, t0, 0x444
    // medeleg takes ecall-from-VS and the guest-page faults; hedeleg does not
    li t0, -1
    csrw medeleg, t0
    csrr t0, medeleg
    li t1, 0xf0b7ff                  // (QEMU lets more be written; these must be)
    and t0, t0, t1
    CHECK 4, t0, 0xf0b7ff
    li t0, -1
    csrw hedeleg, t0
    csrr t0, hedeleg
    CHECK 5, t0, 0xb1ff
    csrw medeleg, zero
    csrw hedeleg, zero
    li t0, -1
    csrw hideleg, t0
    csrr t0, hideleg
    andi t0, t0, 0x7ff               // (QEMU's has LCOFI's bit 13 too)
    CHECK 6, t0, 0x444
    csrw hideleg, zero

    // VS-mode: hypervisor and VS CSRs raise virtual-instruction, M CSRs illegal
    IN_VMODE 1
    EXPECT_TRAP 7, 22, csrr a0, hstatus
    CHECK 8, s11, 0x60002573                        // mtval: the instruction
    IN_VMODE 1
    EXPECT_TRAP 9, 22, csrr a0, vsstatus
    // ...and the trap from V=1 says so: MPV, MPP = S (s7: mstatus as the trap left it)
    li TESTNUM, 11
    li t1, MSTATUS_MPV
    and t1, s7, t1
    beqz t1, fail
    srli t1, s7, 11
    andi t1, t1, 3
    CHECK 111, t1, 1
#ifndef QEMU_ORACLE
    // mret with MPP = M ignores MPV (stays in M, V=0) and clears it
    li t0, MSTATUS_MPP | MSTATUS_MPV
    csrs mstatus, t0
    la t0, 7f
    csrw mepc, t0
    li TESTNUM, 112
    mret
7:  csrr t0, mstatus                 // (with V=1 this would trap)
    li t1, MSTATUS_MPV
    and t1, t0, t1
    CHECK 113, t1, 0
#endif
    // VU-mode: any S CSR is virtual-instruction
    IN_VMODE 0
    EXPECT_TRAP 12, VU_S_CAUSE, csrr a0, sstatus
    IN_VMODE 0
    EXPECT_TRAP 13, 22, csrr a0, hgatp
    // ecall from VS is 10, from VU 8
    IN_VMODE 1
    EXPECT_TRAP 14, 10, ecall
    IN_VMODE 0
    EXPECT_TRAP 15, 8, ecall

    // The VS bank: VS-mode's sscratch and sstatus are vsscratch and vsstatus
    li t0, 0x1111
    csrw sscratch, t0
    li t0, 0x2222
    csrw vsscratch, t0
    li t0, MSTATUS_SUM
    csrs vsstatus, t0
    csrc sstatus, t0
    IN_VMODE 1
    csrr a0, sscratch
    li t0, 0x3333
    csrw sscratch, t0
    csrr a1, sstatus
    BACK_TO_M
    CHECK 16, a0, 0x2222
    li TESTNUM, 17
    li t0, MSTATUS_SUM
    and t1, a1, t0
    beqz t1, fail
    csrr t0, vsscratch
    CHECK 18, t0, 0x3333
    csrr t0, sscratch
    CHECK 19, t0, 0x1111
    li TESTNUM, 20
    csrr t0, sstatus
    li t1, MSTATUS_SUM
    and t1, t0, t1
    bnez t1, fail

    // Counters: mcounteren hides from HS and VS (illegal), hcounteren from VS (virtual)
    csrw mcounteren, zero
    IN_VMODE 1
    EXPECT_TRAP 21, 2, rdtime a0
    li t0, 7
    csrw mcounteren, t0
    csrw hcounteren, zero
    IN_VMODE 1
    EXPECT_TRAP 22, 22, rdtime a0
    li t0, 7
    csrw hcounteren, t0
#ifndef QEMU_ORACLE                  /* (QEMU's spike board has no time for htimedelta) */
    // with hcounteren.TM the guest reads time + htimedelta
    li t0, 0x100000000
    csrw htimedelta, t0
    IN_VMODE 1
    rdtime a0
    BACK_TO_M
    rdtime a1
    li TESTNUM, 23
    bltu a0, t0, fail                // at least the delta
    sub a0, a0, t0
    bltu a1, a0, fail                // and not ahead of M-mode's later read
    csrw htimedelta, zero
#endif
    // VU-mode also needs scounteren
    csrw scounteren, zero
    IN_VMODE 0
    EXPECT_TRAP 24, 22, rdtime a0

    // Delegation: ecall from VS to HS (medeleg[10]), which sees SPV=1, SPVP=1
    li t0, (1 << 10) | (1 << 8)
    csrw medeleg, t0
    IN_VMODE 1
    li a0, 0
    BACK_TO_M                        // the VS ecall goes to HS, whose handler ecalls (9)
    CHECK 25, s9, 9
    CHECK 26, s4, 10                 // scause in HS
    li TESTNUM, 27
    csrr t0, hstatus
    andi t1, t0, HSTATUS_SPV
    beqz t1, fail
    andi t1, t0, HSTATUS_SPVP
    beqz t1, fail
    // the same from VU: SPVP = 0
    IN_VMODE 0
    li a0, 0
    li s4, 0
    BACK_TO_M
    CHECK 28, s4, 8
    li TESTNUM, 29
    csrr t0, hstatus
    andi t1, t0, HSTATUS_SPVP
    bnez t1, fail
    csrw medeleg, zero
    // hedeleg passes an illegal instruction in VS on to VS (vstvec), V stays 1
    la t0, s_trap_handler
    csrw vstvec, t0
    li t0, (1 << 2)
    csrw medeleg, t0
    csrw hedeleg, t0
    li s4, 0
    IN_VMODE 1
    la s8, 1f
    .word 0                          // illegal
    j fail
1:  CHECK 30, s9, 10                 // the VS handler's ecall: from VS
    CHECK 31, s4, VS_ILLEGAL_CAUSE
    csrr t0, vscause
    CHECK 32, t0, VS_ILLEGAL_CAUSE
    csrr t0, scause                  // HS's untouched (the VU ecall's)
    CHECK 33, t0, 8
    // without hedeleg it stops in HS
    csrw hedeleg, zero
    li s4, 0
    IN_VMODE 1
    la s8, 2f
    .word 0
    j fail
2:  CHECK 34, s9, 9
    CHECK 35, s4, 2
    csrw medeleg, zero

    // sret from HS with SPV=1 enters VS-mode (shown by hstatus trapping there)
    li t0, MSTATUS_SPP
    csrs mstatus, t0
    li t0, HSTATUS_SPV
    csrs hstatus, t0
    la t0, 3f
    csrw sepc, t0
    IN_MODE 1
    li TESTNUM, 36
    la s8, 4f
    sret
3:  csrr a0, hstatus                // in VS: virtual-instruction
    j fail
4:  CHECK 37, s9, 22
    CHECK_ADDR 38, s10, 3b
    // VTSR, VTW, VTVM
    li t0, HSTATUS_VTSR | HSTATUS_VTW | HSTATUS_VTVM
    csrs hstatus, t0
    IN_VMODE 1
    EXPECT_TRAP 39, 22, sret
    IN_VMODE 1
    EXPECT_TRAP 40, 22, wfi
    IN_VMODE 1
    EXPECT_TRAP 41, 22, sfence.vma
#ifndef QEMU_ORACLE
    IN_VMODE 1
    EXPECT_TRAP 42, 22, csrr a0, satp
#endif
    li t0, HSTATUS_VTSR | HSTATUS_VTW | HSTATUS_VTVM
    csrc hstatus, t0
    IN_VMODE 0
    EXPECT_TRAP 43, 22, wfi
    IN_VMODE 0
    EXPECT_TRAP 44, VU_S_CAUSE, sret
    // mstatus.TW makes wfi illegal in VS-mode too
    li t0, (1 << 21)
    csrs mstatus, t0
    IN_VMODE 1
    EXPECT_TRAP 45, 2, wfi
    li t0, (1 << 21)
    csrc mstatus, t0
    // the HFENCEs: virtual-instruction from VS, illegal from U
    IN_VMODE 1
    EXPECT_TRAP 46, 22, hfence.gvma zero, zero
    IN_MODE 0
    EXPECT_TRAP 47, 2, hfence.vvma zero, zero

    // Interrupts.  hvip.VSSIP with hideleg: taken in VS-mode as SSIP (cause 1)
    li t0, MIP_VSSIP
    csrw hideleg, t0
    csrs mie, t0                     // (hie.VSSIE is mie's bit 2)
    csrs hvip, t0
    csrr t1, mip
    li TESTNUM, 48
    and t1, t1, t0
    beqz t1, fail
    li t0, MSTATUS_SIE
    csrs vsstatus, t0
    li s4, 0
    la s8, 5f
    IN_VMODE 1
    nop
    j fail
5:  CHECK 49, s9, 10
    CHECK 50, s4, IRQ_BIT | 1
    csrr t0, vsip                    // vsip shows it as bit 1
    CHECK 51, t0, 2
    // masked by the guest's SIE: the guest runs on
    li t0, MSTATUS_SIE
    csrc vsstatus, t0
    IN_VMODE 1
    li a0, 0x77
    BACK_TO_M
    CHECK 52, a0, 0x77
    // not delegated by hideleg: HS takes it as cause 2, whatever the guest's SIE
    csrw hideleg, zero
    li s4, 0
    la s8, 6f
    IN_VMODE 1
    nop
    j fail
6:  CHECK 53, s9, 9
    CHECK 54, s4, IRQ_BIT | 2
    csrci hvip, MIP_VSSIP
    csrr t0, mip
    andi t0, t0, MIP_VSSIP
    CHECK 55, t0, 0
    RVTEST_PASS
    H_END
RVTEST_END
