// Sv39 and Sv48 translation: leaf permissions (R/W/X/U), SUM and MXR, page
// faults with their tval, hardware A/D updates, superpages and misaligned
// superpages, non-canonical addresses, sfence.vma, and MPRV.
#include "popek_test.h"
#define VA_BASE 0x40000000


RVTEST_BEGIN
    // Sv39 root: [2] identity gigapage for 0x8000_0000 (S only); [1] → l1 for VA 0x4000_0000
    li t0, 0x80000000
    MKPTE t1, t0, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
    la t0, root39
    sd t1, 16(t0)
    SETPTE root39, 1, l1, PTE_V
    SETPTE l1, 0, l0, PTE_V
    SETPTE l0, 0, page_a, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D   // 0x4000_0000 user RW
    SETPTE l0, 1, page_a, PTE_V | PTE_R | PTE_A                          // 0x4000_1000 S read-only
    SETPTE l0, 2, page_a, PTE_V | PTE_X | PTE_A                          // 0x4000_2000 S execute-only
    SETPTE l0, 3, page_a, PTE_V | PTE_R | PTE_W                          // 0x4000_3000 S RW, A=D=0
    SETPTE l0, 5, user_code, PTE_V | PTE_R | PTE_X | PTE_U | PTE_A       // 0x4000_5000 user code
    SETPTE l0, 6, page_a, PTE_V | PTE_W | PTE_A | PTE_D                  // 0x4000_6000 W without R: reserved
    // l1[1]: a megapage whose PPN is not 2 MiB aligned → misaligned superpage
    la t0, page_a
    MKPTE t1, t0, PTE_V | PTE_R | PTE_A
    la t0, l1
    sd t1, 8(t0)
    // page_a holds a marker
    la t0, page_a
    li t1, 0x600dcafe
    sd t1, 0(t0)

    la t0, root39
    srli t0, t0, 12
    li t1, (8 << 60)
    or t0, t0, t1
    csrw satp, t0
    sfence.vma

    // S-mode runs from the identity gigapage; reads through the RO page work
    IN_MODE 1
    li s0, VA_BASE + 0x1000
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 1, a0, 0x600dcafe
    // store to the read-only page: store page fault with tval = the address
    IN_MODE 1
    li s0, VA_BASE + 0x1008
    EXPECT_TRAP 2, 15, sd a0, 0(s0)
    CHECK 3, s11, VA_BASE + 0x1008
    // load from an unmapped page (l0[4] is invalid)
    IN_MODE 1
    li s0, VA_BASE + 0x4010
    EXPECT_TRAP 4, 13, ld a0, 0(s0)
    CHECK 5, s11, VA_BASE + 0x4010
    // fetch from a non-executable page
    IN_MODE 1
    li s0, VA_BASE + 0x1000
    EXPECT_TRAP 6, 12, jalr s0
    CHECK 7, s11, VA_BASE + 0x1000
    // execute-only page: load faults, unless MXR
    IN_MODE 1
    li s0, VA_BASE + 0x2000
    EXPECT_TRAP 8, 13, ld a0, 0(s0)
    li a0, MSTATUS_MXR
    csrs mstatus, a0
    IN_MODE 1
    li s0, VA_BASE + 0x2000
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 9, a0, 0x600dcafe
    li a0, MSTATUS_MXR
    csrc mstatus, a0
    // S touching a user page faults unless SUM
    IN_MODE 1
    li s0, VA_BASE
    EXPECT_TRAP 10, 13, ld a0, 0(s0)
    li a0, MSTATUS_SUM
    csrs mstatus, a0
    IN_MODE 1
    li s0, VA_BASE
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 11, a0, 0x600dcafe
    // ...but S may never execute user code, SUM or not
    IN_MODE 1
    li s0, VA_BASE + 0x5000
    EXPECT_TRAP 12, 12, jalr s0
    li a0, MSTATUS_SUM
    csrc mstatus, a0
    // U-mode: runs user code at 0x4000_5000, which loads from 0x4000_0000
    li s0, VA_BASE
    li a0, 0
    li t0, MSTATUS_MPP
    csrc mstatus, t0                // MPP = U
    li t0, VA_BASE + 0x5000
    csrw mepc, t0
    la s8, 1f
    mret
1:  CHECK 13, s9, 8                 // user_code ends with ecall
    CHECK 14, a0, 0x600dcafe
    // U touching a supervisor page faults
    li s0, VA_BASE + 0x1000
    li t0, MSTATUS_MPP
    csrc mstatus, t0
    li t0, VA_BASE + 0x5000
    csrw mepc, t0
    la s8, 2f
    mret
2:  CHECK 15, s9, 13
    // U cannot run supervisor pages either (the identity gigapage has no U)
    li TESTNUM, 16
    la s8, 4f                       // the very first fetch in U-mode faults
    IN_MODE 0
    j fail
4:  CHECK 16, s9, 12
    // A/D: the walk sets A on a load and D on a store
    IN_MODE 1
    li s0, VA_BASE + 0x3000
    ld a0, 0(s0)
    BACK_TO_M
    li TESTNUM, 17
    la t0, l0
    ld t1, 24(t0)
    andi t2, t1, PTE_A
    beqz t2, fail
    andi t2, t1, PTE_D
    bnez t2, fail
    IN_MODE 1
    li s0, VA_BASE + 0x3000
    sd a0, 8(s0)
    BACK_TO_M
    li TESTNUM, 18
    la t0, l0
    ld t1, 24(t0)
    andi t2, t1, PTE_D
    beqz t2, fail
    // reserved W-without-R and the misaligned megapage both fault
    IN_MODE 1
    li s0, VA_BASE + 0x6000
    EXPECT_TRAP 19, 13, ld a0, 0(s0)
    IN_MODE 1
    li s0, VA_BASE + 0x200000
    EXPECT_TRAP 20, 13, ld a0, 0(s0)
    // a non-canonical address (bit 39 set, bits 63:40 clear) faults
    IN_MODE 1
    li s0, 0x8000000000
    EXPECT_TRAP 21, 13, ld a0, 0(s0)
    // changing a PTE takes effect after sfence.vma: remap 0x4000_1000 to page_b
    SETPTE l0, 1, page_b, PTE_V | PTE_R | PTE_A
    la t0, page_b
    li t1, 0xbbbb
    sd t1, 0(t0)
    IN_MODE 1
    sfence.vma
    li s0, VA_BASE + 0x1000
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 22, a0, 0xbbbb
    // MPRV: M-mode loads translated as MPP (= S) would be
    li TESTNUM, 23
    li t0, MSTATUS_MPP
    csrc mstatus, t0
    li t0, (1 << 11)
    csrs mstatus, t0
    li t0, MSTATUS_MPRV
    csrs mstatus, t0
    li s0, VA_BASE + 0x1000
    ld a0, 0(s0)
    li t0, MSTATUS_MPRV
    csrc mstatus, t0
    li t6, 0xbbbb
    bne a0, t6, fail

    // Sv48: root48[0] → l2_48, whose [2] is the identity gigapage and [1] → l1 (shared)
    li t0, 0x80000000
    MKPTE t1, t0, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
    la t0, l2_48
    sd t1, 16(t0)
    SETPTE l2_48, 1, l1, PTE_V
    SETPTE root48, 0, l2_48, PTE_V
    la t0, root48
    srli t0, t0, 12
    li t1, (9 << 60)
    or t0, t0, t1
    csrw satp, t0
    li TESTNUM, 24
    csrr t1, satp
    bne t1, t0, fail
    IN_MODE 1
    sfence.vma
    li s0, VA_BASE + 0x1000
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 25, a0, 0xbbbb
    // bit 47 set with 63:48 clear is non-canonical in Sv48; bit 39 is fine (unmapped)
    IN_MODE 1
    li s0, 0x800000000000
    EXPECT_TRAP 26, 13, ld a0, 0(s0)
    csrw satp, zero
    RVTEST_PASS

    .align 12
user_code:
    ld a0, 0(s0)
    ecall
3:  j 3b
RVTEST_END
    .data
    .align 12
root39: .skip 4096
l1:     .skip 4096
l0:     .skip 4096
root48: .skip 4096
l2_48:  .skip 4096
page_a: .skip 4096
page_b: .skip 4096
