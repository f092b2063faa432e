# A hostile guest kernel: stores to pseudo-random addresses (its RAM, device
# holes, far outside its RAM), garbage written to satp, illegal and privileged
# instructions it may not execute.  Its own trap handler skips every faulting
# instruction.  After ROUNDS rounds it shuts down through SBI, successfully.
# The VMM must survive all of it and keep every other VM intact.
    .equ ROUNDS, 3000
    .section .text
    .globl _start
_start:
    la t0, handler
    csrw stvec, t0
    li s0, 0x2545F4914F6CDD1D   # LCG state
    li s1, ROUNDS
    li s2, 0                    # traps taken
loop:
    # next pseudo-random number
    li t0, 6364136223846793005
    mul s0, s0, t0
    li t0, 1442695040888963407
    add s0, s0, t0
    srli t1, s0, 33
    andi t2, t1, 7
    # kind of mischief, by t2
    li t3, 0
    beq t2, t3, wild_store_ram
    li t3, 1
    beq t2, t3, wild_store_anywhere
    li t3, 2
    beq t2, t3, bad_satp
    li t3, 3
    beq t2, t3, illegal
    li t3, 4
    beq t2, t3, mret_try
    li t3, 5
    beq t2, t3, wild_load_anywhere
    j wild_store_anywhere
wild_store_ram:                 # anywhere in its own 16 MiB (not over its own code)
    li t3, 0x00ffffff
    and t4, s0, t3
    li t3, 0x80400000
    add t4, t4, t3
    li t3, 0x80ffff00
    bgeu t4, t3, next
    sd s0, 0(t4)
    j next
wild_store_anywhere:            # a random 64-bit address
    sd s0, 0(s0)
    j next
wild_load_anywhere:
    ld t5, 0(t1)
    j next
bad_satp:                       # an unsupported mode (WARL: ignored), random root
    li t3, 0x0fffffffffffffff
    and t3, s0, t3
    li t4, 0x5000000000000000
    or t3, t3, t4
    csrw satp, t3
    j next
illegal:
    .word 0xffffffff
    j next
mret_try:
    mret
    j next
next:
    addi s1, s1, -1
    bnez s1, loop
    # Report (SBI legacy putchar) and, if asked (a magic word in its RAM), wedge itself
    # for good with a valid mode and a root outside its RAM; else shut down.
    li a7, 1
    li a0, 'W'
    ecall
    la t0, wedge
    ld t0, 0(t0)
    beqz t0, 3f
    li t0, (8 << 60) | 0x123456
    csrw satp, t0
3:  li a7, 0x53525354           # SRST shutdown, success
    li a6, 0
    li a0, 0
    li a1, 0
    ecall
1:  j 1b

    .data
    .align 3
    .globl wedge
wedge: .dword 1
    .text
    .align 2
handler:                        # skip the faulting instruction (all are 4 bytes here)
    addi s2, s2, 1
    csrr t6, sepc
    addi t6, t6, 4
    csrw sepc, t6
    sret
