# Start-up for the C programs here: a stack, main(), then an SBI shutdown (SRST).
    .section .text.start
    .globl _start
_start:
    la sp, stack_top
    call main
    li a7, 0x53525354           # SRST: shutdown, no reason
    li a6, 0
    li a0, 0
    li a1, 0
    ecall
1:  j 1b
    .bss
    .align 12
    .space 16384
stack_top:
