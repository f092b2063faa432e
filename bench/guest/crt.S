# Bare M-mode start for benchmark programs: stack, call main, power off through
# the virt board's test device (works the same on popek and QEMU).  Built with F
# or D (-march=...f..., which defines __riscv_flen), it first turns the FP unit on
# (mstatus.FS = Initial): with FS Off every FP instruction is illegal.
    .section .text.init, "ax"
    .globl _start
_start:
    la sp, stack_top
#ifdef __riscv_flen
    li t0, 0x2000
    csrs mstatus, t0
#endif
    call main
    li t0, 0x100000
    li t1, 0x5555
    beqz a0, 1f
    slli a0, a0, 16
    li t1, 0x3333
    or t1, t1, a0
1:  sw t1, 0(t0)
2:  j 2b
    .section .bss
    .align 4
    .skip 16384
stack_top:
