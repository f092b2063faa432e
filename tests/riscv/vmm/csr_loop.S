# Exactly N (= 1000) reads of sstatus, then SBI shutdown: the VMM's ledger must
# count exactly N CSR exits for sstatus, and one SBI call.
    .section .text
    .globl _start
_start:
    li t0, 1000
1:  csrr a0, sstatus
    addi t0, t0, -1
    bnez t0, 1b
    li a7, 0x53525354          # SRST
    li a6, 0
    li a0, 0                   # shutdown
    li a1, 0                   # no reason: success
    ecall
2:  j 2b
