// Two-stage translation: the G-stage (hgatp, Sv39x4) alone and under a VS-stage
// (vsatp, Sv39); guest-page faults with their causes, tval, mtval2/htval (the
// guest-physical address >> 2), mtinst/htinst and GVA; the U-bit rule of the G-stage;
// MXR at each stage; A/D updates in G-stage tables; a fault on the VS-stage walk's own
// access; delegation of guest-page faults to HS and of page faults to VS; HLV/HLVX/HSV
// (from M, and from U with hstatus.HU); HFENCE.GVMA; MPRV with MPV; VS-mode's
// sfence.vma of one address (a 4 KiB page, and a megapage fenced through another of
// its pieces than the one read: all of it must go).
#include "popek_test.h"
#include "h_test.h"

#define GPA_A   0x40000000          /* G-stage: page_a, RW U           */
#define GPA_RO  0x40001000          /*          page_a, R U            */
#define GPA_NOU 0x40002000          /*          page_a, RW, no U       */
#define GPA_INV 0x40003000          /*          invalid                */
#define GPA_B   0x40004000          /*          page_b, RW U           */
#define GPA_X   0x40005000          /*          page_x, X U            */
#define GPA_AD  0x40006000          /*          page_a, RW U, A=D=0    */

// table[index] = PTE(guest-physical or physical address, flags)
.macro SETPTE_AT table, index, addr, flags
    li t0, \addr
    MKPTE t1, t0, \flags
    la t0, \table
    sd t1, (8 * \index)(t0)
.endm

// s7 (mstatus at the last M trap) has MPV and GVA as given
.macro CHECK_MPV_GVA num, mpv, gva
    li TESTNUM, \num
    srli t0, s7, 38
    andi t0, t0, 3
    li t6, (\mpv << 1) | \gva
    bne t0, t6, fail
.endm

RVTEST_BEGIN
    H_BEGIN
    // The G-stage: the 16 KiB root maps GPA 0x8000_0000 (this program) to itself, and
    // GPA 0x4000_0000.. through gst_l1 and gst_l0 as listed above.
    SETPTE_AT gst_root, 2, 0x80000000, PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D
    SETPTE gst_root, 1, gst_l1, PTE_V
    SETPTE gst_l1, 0, gst_l0, PTE_V
    SETPTE gst_l0, 0, page_a, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D
    SETPTE gst_l0, 1, page_a, PTE_V | PTE_R | PTE_U | PTE_A
    SETPTE gst_l0, 2, page_a, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
    SETPTE gst_l0, 4, page_b, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D
    SETPTE gst_l0, 5, page_x, PTE_V | PTE_X | PTE_U | PTE_A
    SETPTE gst_l0, 6, page_a, PTE_V | PTE_R | PTE_W | PTE_U
    la t0, page_a
    li t1, 0x600dcafe
    sd t1, 0(t0)
    la t0, page_b
    li t1, 0xb0b
    sd t1, 0(t0)
    la t0, gst_root
    srli t0, t0, 12
    li t1, (8 << 60)
    or t0, t0, t1
    csrw hgatp, t0
    csrr t1, hgatp
    li TESTNUM, 1
    bne t0, t1, fail

    // VS-stage Bare: guest-physical = guest virtual
    IN_VMODE 1
    li s0, GPA_A
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 2, a0, 0x600dcafe
    // a store to a read-only G-stage page: store guest-page fault, tval the address,
    // mtval2 the guest-physical address >> 2, GVA and MPV
    IN_VMODE 1
    li s0, GPA_RO + 8
    EXPECT_TRAP 3, 23, sd a0, 0(s0)
    CHECK 4, s11, GPA_RO + 8
    csrr t0, mtval2
    CHECK 5, t0, (GPA_RO + 8) >> 2
    CHECK_MPV_GVA 6, 1, 1
    csrr t0, mtinst
    CHECK 7, t0, 0
    // a G-stage leaf without U faults, even for VS-mode
    IN_VMODE 1
    li s0, GPA_NOU
    EXPECT_TRAP 8, 21, ld a0, 0(s0)
    // an invalid G-stage entry; an address beyond Sv39x4's 41 bits
    IN_VMODE 1
    li s0, GPA_INV + 12
    EXPECT_TRAP 9, 21, lw a0, 0(s0)
    csrr t0, mtval2
    CHECK 10, t0, (GPA_INV + 12) >> 2
    IN_VMODE 1
    li s0, 0x20000000000
    EXPECT_TRAP 11, 21, ld a0, 0(s0)
    // fetches: a page without X is an instruction guest-page fault; page_x runs
    IN_VMODE 1
    li s0, GPA_A
    EXPECT_TRAP 12, 20, jalr s0
    CHECK 13, s11, GPA_A
    li a0, 0
    IN_VMODE 1
    li s0, GPA_X
    la s8, 1f
    jalr s0                          // page_x: li a0, 0x5a; ecall
    j fail
1:  CHECK 14, s9, 10
    CHECK 15, a0, 0x5a
    // execute-only: a load faults; HS-level MXR makes it readable, vsstatus.MXR does not
    IN_VMODE 1
    li s0, GPA_X
    EXPECT_TRAP 16, 21, lw a0, 0(s0)
#ifndef QEMU_ORACLE
    li t0, MSTATUS_MXR
    csrs vsstatus, t0
    IN_VMODE 1
    li s0, GPA_X
    EXPECT_TRAP 17, 21, lw a0, 0(s0)
    li t0, MSTATUS_MXR
    csrc vsstatus, t0
    csrs mstatus, t0
    IN_VMODE 1
    li s0, GPA_X
    lw a0, 0(s0)
    BACK_TO_M
    li t0, MSTATUS_MXR
    csrc mstatus, t0
    la t0, page_x
    lw t1, 0(t0)
    li TESTNUM, 18
    bne a0, t1, fail
#endif
    // the G-stage sets A, and D on a store, in its own tables
    IN_VMODE 1
    li s0, GPA_AD
    sd a0, 8(s0)
    BACK_TO_M
    li TESTNUM, 19
    la t0, gst_l0
    ld t1, 48(t0)
    andi t1, t1, PTE_A | PTE_D
    li t6, PTE_A | PTE_D
    bne t1, t6, fail
    // delegated to HS (medeleg[21]): htval, hstatus.GVA and SPV, stval
    li t0, (1 << 21)
    csrw medeleg, t0
    li s4, 0
    IN_VMODE 1
    li s0, GPA_INV
    la s8, 2f
    ld a0, 0(s0)
    j fail
2:  CHECK 20, s9, 9
    CHECK 21, s4, 21
    CHECK 22, s6, GPA_INV
    csrr t0, htval
    CHECK 23, t0, GPA_INV >> 2
    li TESTNUM, 24
    csrr t0, hstatus
    andi t1, t0, HSTATUS_GVA
    beqz t1, fail
    andi t1, t0, HSTATUS_SPV
    beqz t1, fail
    csrw medeleg, zero

    // A VS-stage (Sv39) whose tables are in guest-physical memory (the identity gigapage)
    SETPTE_AT vs_root, 2, 0x80000000, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
    SETPTE vs_root, 1, vs_l1, PTE_V
    SETPTE vs_l1, 0, vs_l0, PTE_V
    SETPTE_AT vs_l0, 0, GPA_A, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D   // VA 0x4000_0000
    SETPTE_AT vs_l0, 1, GPA_B, PTE_V | PTE_R | PTE_A                   // VA 0x4000_1000
    SETPTE_AT vs_l0, 2, GPA_INV, PTE_V | PTE_R | PTE_A                 // VA 0x4000_2000
    SETPTE_AT vs_l0, 5, GPA_X, PTE_V | PTE_X | PTE_A                   // VA 0x4000_5000
    SETPTE_AT vs_root, 3, GPA_INV, PTE_V          // VA 0xC000_0000: next table not mapped
    la t0, vs_root
    srli t0, t0, 12
    li t1, (8 << 60)
    or t0, t0, t1
    csrw vsatp, t0
    IN_VMODE 1
    li s0, 0x40001000
    ld a0, 0(s0)
    li s0, 0x40000000
    ld a1, 0(s0)
    BACK_TO_M
    CHECK 25, a0, 0xb0b
    CHECK 26, a1, 0x600dcafe
    // the VS-stage leaf points at an unmapped guest-physical page: a guest-page fault of
    // the final address (mtinst 0)
    IN_VMODE 1
    li s0, 0x40002010
    EXPECT_TRAP 27, 21, ld a0, 0(s0)
    CHECK 28, s11, 0x40002010
    csrr t0, mtval2
    CHECK 29, t0, (GPA_INV + 0x10) >> 2
    csrr t0, mtinst
    CHECK 30, t0, 0
    // a VS-stage fault is a plain page fault, at the guest virtual address
    IN_VMODE 1
    li s0, 0x40003000
    EXPECT_TRAP 31, 13, ld a0, 0(s0)
    CHECK 32, s11, 0x40003000
    CHECK_MPV_GVA 33, 1, 1
    // the walk's own read of a VS-stage entry faults in the G-stage: the original
    // access's cause (here a store), the entry's guest-physical address, and htinst's
    // pseudoinstruction for a 64-bit read
    IN_VMODE 1
    li s0, 0xC0000000
    EXPECT_TRAP 34, WALK_STORE_GPF_CAUSE, sd a0, 0(s0)
    CHECK 35, s11, 0xC0000000
    csrr t0, mtval2
    CHECK 36, t0, GPA_INV >> 2
    csrr t0, mtinst
    CHECK 37, t0, 0x3000
    // page faults delegated on to VS (medeleg[13] and hedeleg[13]): V stays 1
    la t0, s_trap_handler
    csrw vstvec, t0
    li t0, (1 << 13)
    csrw medeleg, t0
    csrw hedeleg, t0
    li s4, 0
    IN_VMODE 1
    li s0, 0x40003008
    la s8, 3f
    ld a0, 0(s0)
    j fail
3:  CHECK 38, s9, 10
    CHECK 39, s4, 13
    CHECK 40, s6, 0x40003008
    csrw medeleg, zero
    csrw hedeleg, zero

    // HLV/HSV from HS-mode: as VS-mode would (SPVP = 1), through both stages
    li t0, HSTATUS_SPVP
    csrs hstatus, t0
    IN_MODE 1
    li s0, 0x40000000
    hlv.d a2, (s0)
    li a1, 0x1234
    hsv.w a1, (s0)
    li s0, 0x40000004
    hlv.hu a3, (s0)
    hlv.b a4, (s0)
    li s0, 0x40000000
    li a1, 0xfe
    hsv.b a1, (s0)
    hlv.w a5, (s0)
    hlv.b a6, (s0)
    hlv.bu a7, (s0)
    BACK_TO_M
    CHECK 41, a2, 0x600dcafe
    la t0, page_a
    lw t1, 0(t0)
    CHECK 42, t1, 0x12fe
    CHECK 43, a3, 0
    CHECK 44, a4, 0
    CHECK 45, a5, 0x12fe
    CHECK 46, a6, 0xfffffffffffffffe
    CHECK 47, a7, 0xfe
    li t0, 0x600dcafe
    la t1, page_a
    sd t0, 0(t1)
    // HLVX needs execute in both stages, not read; HLV of that page faults (a load fault)
#ifndef QEMU_ORACLE
    IN_MODE 1
    li s0, 0x40005000
    hlvx.wu a0, (s0)
    BACK_TO_M
    la t0, page_x
    lwu t1, 0(t0)
    li TESTNUM, 48
    bne a0, t1, fail
#endif
    IN_MODE 1
    li s0, 0x40005000
    EXPECT_TRAP 49, HLV_PAGE_FAULT_CAUSE, hlv.w a0, (s0)
    // ...whose tval is a guest virtual address (GVA) though V was 0 (MPV 0)
    CHECK_MPV_GVA 50, 0, 1
    // as VU-mode (SPVP = 0): the supervisor page faults
    li t0, HSTATUS_SPVP
    csrc hstatus, t0
    IN_MODE 1
    li s0, 0x40000000
    EXPECT_TRAP 51, HLV_PAGE_FAULT_CAUSE, hlv.d a0, (s0)
    // from U-mode: illegal unless hstatus.HU; from VS-mode virtual-instruction
    IN_MODE 0
    li s0, 0x40000000
    EXPECT_TRAP 52, 2, hlv.d a0, (s0)
    li t0, HSTATUS_HU | HSTATUS_SPVP
    csrs hstatus, t0
    IN_MODE 0
    li s0, 0x40000000
    hlv.d a0, (s0)
    BACK_TO_M
    CHECK 53, a0, 0x600dcafe
    IN_VMODE 1
    li s0, 0x40000000
    EXPECT_TRAP 54, 22, hlv.d a0, (s0)

    // HFENCE.GVMA: a changed G-stage mapping is seen after it
    IN_VMODE 1
    li s0, 0x40000000
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 55, a0, 0x600dcafe
    SETPTE gst_l0, 0, page_b, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D
    hfence.gvma zero, zero
    IN_VMODE 1
    li s0, 0x40000000
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 56, a0, 0xb0b
    // MPRV with MPV: M-mode's loads go through both stages as VS-mode's would
    li t0, MSTATUS_MPP
    csrc mstatus, t0
    li t0, (1 << 11) | MSTATUS_MPV | MSTATUS_MPRV
    csrs mstatus, t0
    li s0, 0x40001000
    ld a0, 0(s0)
    li t0, MSTATUS_MPRV | MSTATUS_MPV
    csrc mstatus, t0
    CHECK 57, a0, 0xb0b
    // VS-mode's sfence.vma of one address: a remapped VS-stage megapage (VA 0x4020_0000,
    // in the G-stage's identity gigapage), fenced through another 4 KiB piece than the
    // one read before, and a remapped 4 KiB page, fenced by its address
    li t0, 0x80401000
    li t1, 0xaaaa
    sd t1, 0(t0)
    li t0, 0x80601000
    li t1, 0xbbbb
    sd t1, 0(t0)
    SETPTE_AT vs_l1, 1, 0x80400000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
    hfence.vvma zero, zero
    IN_VMODE 1
    li s0, 0x40201000
    ld a0, 0(s0)
    li s0, 0x40000000
    ld a1, 0(s0)
    BACK_TO_M
    CHECK 58, a0, 0xaaaa
    CHECK 59, a1, 0xb0b
    SETPTE_AT vs_l1, 1, 0x80600000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
    SETPTE_AT vs_l0, 0, GPA_AD, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
    IN_VMODE 1
    li s0, 0x40202000
    sfence.vma s0
    li s0, 0x40201000
    ld a0, 0(s0)
    li s0, 0x40000000
    sfence.vma s0
    ld a1, 0(s0)
    BACK_TO_M
    CHECK 60, a0, 0xbbbb
    CHECK 61, a1, 0x600dcafe
    csrw vsatp, zero
    csrw hgatp, zero
    RVTEST_PASS

    .align 12
page_x:                              // (page-aligned code, mapped X-only at GPA_X)
    li a0, 0x5a
    ecall
4:  j 4b
    H_END
RVTEST_END
    .data
    .align 14
gst_root: .skip 16384
gst_l1:   .skip 4096
gst_l0:   .skip 4096
vs_root:  .skip 4096
vs_l1:    .skip 4096
vs_l0:    .skip 4096
page_a:   .skip 4096
page_b:   .skip 4096
