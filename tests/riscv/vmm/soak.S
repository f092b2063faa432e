# A guest that tries to make the VMM's memory grow without end (the memory soak,
# tests/test_soak.py and bench/bench_soak.py).  Round after round, for ever:
#   * an SBI call with an extension number never used before (ledger details);
#   * self-modifying code: a 64-instruction routine whose first two immediates are
#     rewritten each round, then called 40 times, so every round builds, heats and
#     translates a block no earlier round had (block, op and code caches, the
#     compile backlog, invalidated blocks as garbage);
#   * a satp write with a new ASID over the same tables (shadow contexts).
# Every 256 rounds it prints '.', so a watcher can see it is alive.
    .section .text
    .globl _start
_start:
    la t0, handler
    csrw stvec, t0
    # Sv39: one gigapage, VA 0x80000000 -> PA 0x80000000, R W X A D (kernel only)
    la t0, root
    li t1, ((0x80000000 >> 12) << 10) | 0xCF
    sd t1, 16(t0)
    srli s3, t0, 12             # root PPN
    li s0, 0x01000000           # SBI extension numbers from here on: none exists
    li s1, 0                    # round
loop:
    # -- a new SBI extension number (SBI_ERR_NOT_SUPPORTED comes back) --
    add a7, s0, s1
    li a6, 0
    ecall
    # -- rewrite the routine's first two instructions with the round number --
    # addi a0, zero, (round & 0x7ff); addi a1, zero, ((round >> 11) & 0x7ff)
    la t0, routine
    andi t1, s1, 0x7ff
    slli t1, t1, 20
    li t2, 0x00000513           # addi a0, zero, 0
    or t1, t1, t2
    sw t1, 0(t0)
    srli t1, s1, 11
    andi t1, t1, 0x7ff
    slli t1, t1, 20
    li t2, 0x00000593           # addi a1, zero, 0
    or t1, t1, t2
    sw t1, 4(t0)
    fence.i
    li s2, 40
1:  jalr ra, 0(t0)
    addi s2, s2, -1
    bnez s2, 1b
    # -- satp: the same tables, a new ASID each round --
    li t1, 8
    slli t1, t1, 60
    andi t2, s1, 0x3ff
    slli t2, t2, 44
    or t1, t1, t2
    or t1, t1, s3
    csrw satp, t1
    sfence.vma
    # -- a sign of life every 256 rounds --
    andi t1, s1, 0xff
    bnez t1, 2f
    li a7, 1
    li a0, '.'
    ecall
2:  addi s1, s1, 1
    j loop

    .align 2
handler:                        # nothing should trap to the guest; if it does, skip it
    csrr t6, sepc
    addi t6, t6, 4
    csrw sepc, t6
    sret

    .section .data
    .align 12
root:
    .zero 4096
    .align 2
routine:
    addi a0, zero, 0            # rewritten every round
    addi a1, zero, 0            # (and this one every 2048 rounds)
    .rept 61
    addi a0, a0, 1
    .endr
    ret
