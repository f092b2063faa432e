# Two vCPUs of one VM take turns on the VMM's one hart.  vCPU 0 reserves a word with
# lr.d and waits; vCPU 1 stores to it (no exit on the way: the page is mapped
# already); vCPU 0's sc.d must then fail, though the hart's reservation was never
# broken by a trap (tests/test_vmm_smp.py).  Shuts down with 0, or 1 if the SC
# succeeded.
    .equ EXT_HSM, 0x48534D
    .equ EXT_SRST, 0x53525354

    .section .text
    .globl _start
_start:
    la a0, shared                   # touch the data page (mapped for both from now)
    sd zero, 0(a0)
    li a7, EXT_HSM                  # start vCPU 1
    li a6, 0
    li a0, 1
    la a1, second
    li a2, 0
    ecall
    la a0, shared
    lr.d t1, (a0)
    la a1, go
    li t2, 1
    sd t2, 0(a1)
    la a1, stored
1:  ld t2, 0(a1)                    # spin (no exit) until vCPU 1 has stored
    beqz t2, 1b
    li t3, 0x5555
    sc.d t4, t3, (a0)
    snez a1, t4                     # reason 0 (shutdown) if the SC failed, else 1
    xori a1, a1, 1
    li a0, 0
    li a7, EXT_SRST
    li a6, 0
    ecall

second:
    la a1, go
2:  ld t2, 0(a1)
    beqz t2, 2b
    la a0, shared
    li t1, 0x1234
    sd t1, 0(a0)
    la a1, stored
    li t2, 1
    sd t2, 0(a1)
3:  j 3b

    .section .data
    .align 3
shared: .dword 0
go:     .dword 0
stored: .dword 0
