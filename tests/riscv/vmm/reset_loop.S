# A guest that resets its machine (syscon 0x7777) as soon as it starts, for ever:
# each reset builds a new hart, and the budget must still count what came before
# (tests/test_hostile_guests.py; run bare with --bios none, in M-mode).
    .section .text
    .globl _start
_start:
    li t0, 0x100000
    li t1, 0x7777
    sw t1, 0(t0)
1:  j 1b
