# A byte-wise memset over 64 MiB: the loop that dominates many kernels' early
# boot.  Three instructions per byte (sb, addi, bne), 201 M in all.
    .section .text.init, "ax"
    .globl _start
_start:
    li a0, 0x80100000
    li a1, 0x80100000 + (64 << 20)
    li t0, 0x5a
1:  sb t0, 0(a0)
    addi a0, a0, 1
    bne a0, a1, 1b
    # check a few bytes, print "memset ok" or "memset BAD", power off
    li a0, 0x80100000
    lbu t1, 0(a0)
    li a1, 0x80100000 + (64 << 20) - 1
    lbu t2, 0(a1)
    la a2, ok
    bne t1, t0, 3f
    beq t2, t0, 2f
3:  la a2, bad
2:  li t3, 0x10000000
4:  lbu t4, 0(a2)
    beqz t4, 5f
    sb t4, 0(t3)
    addi a2, a2, 1
    j 4b
5:  li t0, 0x100000
    li t1, 0x5555
    sw t1, 0(t0)
6:  j 6b
ok:  .asciz "memset ok\n"
bad: .asciz "memset BAD\n"
