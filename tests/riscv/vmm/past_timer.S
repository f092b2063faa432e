# A guest kernel that sets its SBI timer in the past, masks every interrupt and
# waits: the deadline is gone and nothing can wake it.  The VMM spun on it for ever,
# past every budget (tests/test_hostile_guests.py).
    .section .text
    .globl _start
_start:
    li a7, 0x54494D45           # SBI TIME: set_timer(1)
    li a6, 0
    li a0, 1
    ecall
    csrw sie, zero
1:  wfi
    j 1b
