# Self-modifying code and binary translation: a function that reads one CSR runs
# (under --vmm bt its csrr is a callout), then the kernel rewrites that instruction to
# read another CSR, fences, and runs it again.  The second call must read the new CSR:
# the translated block (and its callout) must go when its code is written.  Exit code
# 0 when both reads are right, else 1 or 2 (SBI SRST with a failure reason).
    .section .text
    .globl _start
_start:
    li t0, 0x1111
    csrw sscratch, t0
    li t0, 0x2222
    csrw sepc, t0
    li s0, 3                    # run it a few times, so its block is hot
1:  call reads_a_csr
    li t1, 0x1111
    bne a0, t1, fail1
    addi s0, s0, -1
    bnez s0, 1b
    la t0, reads_a_csr          # csrr a0, sscratch  →  csrr a0, sepc
    la t1, new_insn
    lw t1, 0(t1)
    sw t1, 0(t0)
    fence.i
    call reads_a_csr
    li t1, 0x2222
    bne a0, t1, fail2
    li a1, 0                    # no reason: success
    j 3f
fail1:
    li a1, 1
    j 3f
fail2:
    li a1, 2
3:  li a7, 0x53525354           # SRST shutdown
    li a6, 0
    li a0, 0
    ecall
4:  j 4b

    .align 2
reads_a_csr:
    csrr a0, sscratch
    ret
new_insn:
    csrr a0, sepc
