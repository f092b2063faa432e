# A guest that waits for an interrupt nothing can raise: no interrupt enabled, no
# timer set.  Under the VMM (S-mode) or bare (--bios none, M-mode), the run must
# end, not wait for ever (tests/test_hostile_guests.py).
    .section .text
    .globl _start
_start:
    csrw sie, zero
1:  wfi
    j 1b
