// Zicsr: the six CSR instructions, read-only and unimplemented CSRs, misa,
// exact instret counting, and counter enables for lower privilege levels.
#include "popek_test.h"
RVTEST_BEGIN
    li TESTNUM, 1
    li a0, 0x1234
    csrw mscratch, a0
    li a1, 0x5678
    csrrw a2, mscratch, a1          // returns the old value
    li t6, 0x1234
    bne a2, t6, fail
    csrr a2, mscratch
    bne a2, a1, fail
    li TESTNUM, 2
    li a1, 0x0f
    csrrs a2, mscratch, a1
    li t6, 0x5678
    bne a2, t6, fail
    csrr a2, mscratch
    li t6, 0x567f
    bne a2, t6, fail
    li TESTNUM, 3
    li a1, 0x70
    csrrc a2, mscratch, a1
    csrr a2, mscratch
    li t6, 0x560f
    bne a2, t6, fail
    li TESTNUM, 4
    csrrwi a2, mscratch, 0x1f
    csrr a2, mscratch
    li t6, 0x1f
    bne a2, t6, fail
    csrrsi a2, mscratch, 0x0
    csrrci a2, mscratch, 0x3
    csrr a2, mscratch
    li t6, 0x1c
    bne a2, t6, fail
    csrrsi a2, mscratch, 0x1
    csrr a2, mscratch
    li t6, 0x1d
    bne a2, t6, fail
    // misa says RV64 with exactly A, C, I, M, S, U, and D and F on RV64GC (the
    // default machine; the test runs on rv64imac too); mhartid is 0
    li TESTNUM, 5
    csrr a0, misa
    li t6, 0x800000000014112D
    beq a0, t6, 1f
    li t6, 0x8000000000141105
    bne a0, t6, fail
1:
    li TESTNUM, 6
    csrr a0, mhartid
    bnez a0, fail
    // reading a read-only CSR is fine; writing it is illegal, even with csrrs rs1 != x0
    li TESTNUM, 7
    csrr a0, mvendorid
    csrrs a0, mvendorid, x0
    EXPECT_TRAP 8, 2, csrw mvendorid, a0
    li a1, 0
    EXPECT_TRAP 9, 2, csrrs a0, mvendorid, a1
    EXPECT_TRAP 10, 2, csrw cycle, a0
    // an unimplemented CSR (stimecmp: no Sstc) is illegal; mtval holds the instruction
    EXPECT_TRAP 11, 2, 1: csrr a0, 0x14d
    li TESTNUM, 12
    la a1, 1b
    lwu a1, 0(a1)
    bne s11, a1, fail
    EXPECT_TRAP 13, 2, csrr a0, 0x7c0
    // instret: two back-to-back reads differ by exactly one instruction
    li TESTNUM, 14
    csrr a0, minstret
    csrr a1, minstret
    sub a1, a1, a0
    li t6, 1
    bne a1, t6, fail
    li TESTNUM, 15
    csrr a0, instret
    nop
    nop
    addi x0, x0, 0
    csrr a1, instret
    sub a1, a1, a0
    li t6, 4
    bne a1, t6, fail
    // writing minstret sets the count
    li TESTNUM, 16
    li a0, 1000
    csrw minstret, a0
    csrr a1, minstret
    li t6, 1001
    bne a1, t6, fail
    // mcycle counts too
    li TESTNUM, 17
    csrr a0, mcycle
    nop
    csrr a1, mcycle
    bleu a1, a0, fail
    // counters from S-mode need mcounteren
    csrw mcounteren, zero
    IN_MODE 1
    EXPECT_TRAP 18, 2, csrr a0, cycle
    li a0, 7
    csrw mcounteren, a0
    IN_MODE 1
    csrr a0, instret
    csrr a0, time
    BACK_TO_M
    CHECK 19, s9, 9
    // ...and from U-mode scounteren as well
    csrw scounteren, zero
    IN_MODE 0
    EXPECT_TRAP 20, 2, csrr a0, time
    li a0, 7
    csrw scounteren, a0
    IN_MODE 0
    csrr a0, time
    BACK_TO_M
    CHECK 21, s9, 8
    // M-mode CSRs are not reachable from S-mode; S CSRs not from U
    IN_MODE 1
    EXPECT_TRAP 22, 2, csrr a0, mstatus
    IN_MODE 0
    EXPECT_TRAP 23, 2, csrr a0, sstatus
    // sstatus is a view of mstatus
    li TESTNUM, 24
    li a0, MSTATUS_SUM
    csrs sstatus, a0
    csrr a1, mstatus
    and a1, a1, a0
    beqz a1, fail
    csrc mstatus, a0
    csrr a1, sstatus
    and a1, a1, a0
    bnez a1, fail
    // mstatus: UXL/SXL read 64-bit; FS is Off at reset, and stays zero without F;
    // with F it takes Dirty, which SD (bit 63) reports
    li TESTNUM, 25
    csrr a0, mstatus
    srli a1, a0, 32
    andi a1, a1, 0xf
    li t6, 0xa
    bne a1, t6, fail
    li a1, 0x6000
    and a2, a0, a1
    bnez a2, fail
    csrs mstatus, a1
    csrr a0, mstatus
    csrr a3, misa
    andi a3, a3, 0x20                  // F
    beqz a3, 2f
    and a2, a0, a1
    bne a2, a1, fail
    bgez a0, fail                      // SD
    csrc mstatus, a1
    csrr a0, mstatus
2:  and a2, a0, a1
    bnez a2, fail
    bltz a0, fail
    // satp ignores an unsupported mode (Sv57)
    li TESTNUM, 26
    csrw satp, zero
    li a0, (10 << 60)
    csrw satp, a0
    csrr a1, satp
    bnez a1, fail
    RVTEST_PASS
RVTEST_END
