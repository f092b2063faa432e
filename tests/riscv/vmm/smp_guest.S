# A guest kernel with three vCPUs (VmConfig smp=3; tests/test_vmm_smp.py).  vCPU 0
# starts the others through SBI HSM; all three count on one shared word with AMOs
# (interleaved by the VMM's scheduler); vCPU 0 wakes the others with an SBI IPI, they
# take it as a supervisor software interrupt and stop themselves with hart_stop.
# Prints "smp ok" and shuts down with 0; on a failed check prints "FAIL" and the
# check's letter ('a' + number) and shuts down with a failure.
    .equ ROUNDS, 3000
    .equ EXT_IPI, 0x735049
    .equ EXT_RFENCE, 0x52464E43
    .equ EXT_HSM, 0x48534D
    .equ EXT_SRST, 0x53525354
    .equ SSIP, 2

    .macro SBI ext, fid
    li a7, \ext
    li a6, \fid
    ecall
    .endm

    .macro EXPECT num, reg, value
    li s11, \num
    li t6, \value
    bne \reg, t6, fail
    .endm

    .section .text
    .globl _start
_start:
    la t0, trap
    csrw stvec, t0
    li a0, 1                        # 1: a stopped vCPU is STOPPED
    SBI EXT_HSM, 2
    EXPECT 1, a0, 0
    EXPECT 1, a1, 1
    li a0, 1                        # 2: start vCPU 1 and vCPU 2
    la a1, secondary
    li a2, 0x1234
    SBI EXT_HSM, 0
    EXPECT 2, a0, 0
    li a0, 2
    la a1, secondary
    li a2, 0x1234
    SBI EXT_HSM, 0
    EXPECT 2, a0, 0
    li a0, 1                        # 3: a started one cannot start again
    la a1, secondary
    SBI EXT_HSM, 0
    EXPECT 3, a0, -6                # SBI_ERR_ALREADY_AVAILABLE
    li a0, 5                        # 4: no such hart
    la a1, secondary
    SBI EXT_HSM, 0
    EXPECT 4, a0, -3                # SBI_ERR_INVALID_PARAM
    li a0, 1
    SBI EXT_HSM, 2
    EXPECT 4, a1, 0                 # vCPU 1: STARTED

    la a0, counter                  # 5: every increment of all three lands
    li s1, ROUNDS
1:  li t1, 1
    amoadd.d zero, t1, (a0)
    addi s1, s1, -1
    bnez s1, 1b
    la a1, arrived
2:  ld t1, 0(a1)
    li t2, 2
    bne t1, t2, 2b
    ld t1, 0(a0)
    EXPECT 5, t1, 3 * ROUNDS

    li a0, 6                        # 6: an IPI to vCPUs 1 and 2 (mask 0b110, base 0)
    li a1, 0
    SBI EXT_IPI, 0
    EXPECT 6, a0, 0
    la a1, ipis
3:  ld t1, 0(a1)
    li t2, 2
    bne t1, t2, 3b
    li a0, 1 << 7                   # 7: a mask naming a vCPU the VM lacks
    li a1, 0
    SBI EXT_IPI, 0
    EXPECT 7, a0, -3
    li a0, 0                        # 8: remote sfence.vma on all (base -1)
    li a1, -1
    li a2, 0
    li a3, -1
    SBI EXT_RFENCE, 1
    EXPECT 8, a0, 0
    li s2, 1                        # 9: both stopped themselves
4:  mv a0, s2
    SBI EXT_HSM, 2
    EXPECT 9, a0, 0
    beqz a1, 4b                     # (still STARTED: they have not run since)
    EXPECT 9, a1, 1
    addi s2, s2, 1
    li t0, 3
    bne s2, t0, 4b
    la a0, ok
    call puts
    li a0, 0
    li a1, 0
    SBI EXT_SRST, 0

secondary:                          # a0 = hart id, a1 = opaque; MMU off, SIE off
    li s11, 10
    li t0, 1
    bltu a0, t0, fail
    li t0, 3
    bgeu a0, t0, fail
    EXPECT 10, a1, 0x1234
    csrr t0, satp
    EXPECT 10, t0, 0
    la t0, trap
    csrw stvec, t0
    la a0, counter
    li s1, ROUNDS
1:  li t1, 1
    amoadd.d zero, t1, (a0)
    addi s1, s1, -1
    bnez s1, 1b
    la a0, arrived
    li t1, 1
    amoadd.d zero, t1, (a0)
    li t0, SSIP                     # wait for the IPI: a software interrupt
    csrs sie, t0
    csrsi sstatus, 2
2:  wfi
    j 2b

    .align 2
trap:                               # only the IPI is expected here
    csrr t0, scause
    li t1, (1 << 63) | 1
    li s11, 11
    bne t0, t1, fail
    li t0, SSIP
    csrc sip, t0
    la a0, ipis
    li t1, 1
    amoadd.d zero, t1, (a0)
    SBI EXT_HSM, 1                  # hart_stop: does not return
    li s11, 12
    j fail

fail:
    la a0, failed
    call puts
    addi a0, s11, 'a'
    li a7, 1
    ecall
    li a0, 0
    li a1, 1
    SBI EXT_SRST, 0
5:  j 5b

puts:                               # legacy putchar, a byte at a time
    mv t0, a0
1:  lbu a0, 0(t0)
    beqz a0, 2f
    li a7, 1
    ecall
    addi t0, t0, 1
    j 1b
2:  ret

    .section .data
ok:      .asciz "smp ok\n"
failed:  .asciz "FAIL "
    .align 3
counter: .dword 0
arrived: .dword 0
ipis:    .dword 0
