// sfence.vma of one address (rs1 != x0) drops what translated that page and only
// needs to: a remapped 4 KiB data page, a remapped page of code that ran hot (its
// blocks are found through the dispatch cache), and a remapped megapage, fenced
// through another of its 4 KiB pieces than the one read before (the hart caches
// superpages 4 KiB at a time, so the whole superpage must go).
#include "popek_test.h"
#define VA_PAGES 0x40000000          // l0: 4 KiB pages
#define VA_MEGA  0x40200000          // l1[1]: a megapage
#define PA_MEGA_A 0x80400000
#define PA_MEGA_B 0x80600000

.macro SETMEGA pa
    li t0, \pa
    MKPTE t1, t0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
    la t0, l1
    sd t1, 8(t0)
.endm

RVTEST_BEGIN
    li t0, 0x80000000                // root[2]: identity gigapage for the program
    MKPTE t1, t0, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
    la t0, root
    sd t1, 16(t0)
    SETPTE root, 1, l1, PTE_V
    SETPTE l1, 0, l0, PTE_V
    SETPTE l0, 0, page_a, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
    SETPTE l0, 1, page_a, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D   // a neighbour, kept
    SETPTE l0, 5, code_1, PTE_V | PTE_R | PTE_X | PTE_A
    SETMEGA PA_MEGA_A
    li t0, 0xaaaa                    // markers
    la t1, page_a
    sd t0, 0(t1)
    li t1, PA_MEGA_A + 0x1000
    sd t0, 0(t1)
    li t0, 0xbbbb
    la t1, page_b
    sd t0, 0(t1)
    li t1, PA_MEGA_B + 0x1000
    sd t0, 0(t1)
    la t0, root
    srli t0, t0, 12
    li t1, (8 << 60)
    or t0, t0, t1
    csrw satp, t0
    sfence.vma

    // 1: a data page, read, remapped, fenced by address: the new page
    IN_MODE 1
    li s0, VA_PAGES
    li s1, VA_PAGES + 0x1000
    ld a0, 0(s0)
    ld a1, 0(s1)
    BACK_TO_M
    CHECK 1, a0, 0xaaaa
    SETPTE l0, 0, page_b, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
    IN_MODE 1
    li s0, VA_PAGES
    li s1, VA_PAGES + 0x1000
    sfence.vma s0
    ld a0, 0(s0)
    ld a1, 0(s1)                     // the neighbour still reads through its mapping
    BACK_TO_M
    CHECK 2, a0, 0xbbbb
    CHECK 3, a1, 0xaaaa

    // 4: code run hot at VA_PAGES + 0x5000, remapped, fenced by address: the new code
    IN_MODE 1
    li s0, VA_PAGES + 0x5000
    li s1, 100
1:  jalr s0
    addi s1, s1, -1
    bnez s1, 1b
    BACK_TO_M
    CHECK 4, a0, 1
    SETPTE l0, 5, code_2, PTE_V | PTE_R | PTE_X | PTE_A
    IN_MODE 1
    li s0, VA_PAGES + 0x5000
    sfence.vma s0
    jalr s0
    BACK_TO_M
    CHECK 5, a0, 2

    // 6: a megapage, read at +0x1000, remapped, fenced at +0x3000: the new megapage
    IN_MODE 1
    li s0, VA_MEGA + 0x1000
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 6, a0, 0xaaaa
    SETMEGA PA_MEGA_B
    IN_MODE 1
    li s0, VA_MEGA + 0x3000
    sfence.vma s0
    li s0, VA_MEGA + 0x1000
    ld a0, 0(s0)
    BACK_TO_M
    CHECK 7, a0, 0xbbbb
    csrw satp, zero
    RVTEST_PASS

    .align 12
code_1:
    li a0, 1
    ret
    .align 12
code_2:
    li a0, 2
    ret
RVTEST_END
    .data
    .align 12
root:   .skip 4096
l1:     .skip 4096
l0:     .skip 4096
page_a: .skip 4096
page_b: .skip 4096
