# Boot entry, trap entry/return, and the context switch.
#include "asm.h"
#include "memlayout.h"
#include "popek_hypercall.h"

    .section .text.entry, "ax"
    .globl _start
_start:
    # OpenSBI enters in S-mode with a0 = hart id, a1 = device tree.
    la sp, boot_stack_top
    la t0, __bss_start
    la t1, __bss_end
1:  bgeu t0, t1, 2f
    sd zero, 0(t0)
    addi t0, t0, 8
    j 1b
2:  call kmain
3:  wfi
    j 3b

# ---------------------------------------------------------------------------
# Traps.  sscratch holds the current process's trapframe while it runs in
# U-mode, and 0 while the kernel runs.  The paravirtual kernel under a VMM that
# shares the vCPU page (pv.c) keeps sscratch there: its entry and return are the
# same code with the page's field for the CSR (TRAPS pv=1).

# sp <-> sscratch
.macro SWAP_SP_SCRATCH pv
.if \pv
    sd t0, PV_FIELD(PV_SPARE)(zero)
    ld t0, PV_FIELD(PV_SSCRATCH)(zero)
    sd sp, PV_FIELD(PV_SSCRATCH)(zero)
    mv sp, t0
    ld t0, PV_FIELD(PV_SPARE)(zero)
.else
    csrrw sp, sscratch, sp
.endif
.endm

.macro READ_SCRATCH reg, pv
.if \pv
    ld \reg, PV_FIELD(PV_SSCRATCH)(zero)
.else
    csrr \reg, sscratch
.endif
.endm

.macro WRITE_SCRATCH reg, pv
.if \pv
    sd \reg, PV_FIELD(PV_SSCRATCH)(zero)
.else
    csrw sscratch, \reg
.endif
.endm

.macro TRAPS entry, ret, pv
    .section .text
    .align 4
    .globl \entry
\entry:
    SWAP_SP_SCRATCH \pv
    bnez sp, \entry\()_from_user
    # From the kernel: sp was 0 after the swap; take the kernel sp back.
    SWAP_SP_SCRATCH \pv
    addi sp, sp, -TF_SIZE
    SAVE_REGS sp
    addi t0, sp, TF_SIZE
    sd t0, TF_SP(sp)
    mv a0, sp
    call kernel_trap
    RESTORE_REGS_EXCEPT_SP sp
    addi sp, sp, TF_SIZE
    sret

\entry\()_from_user:
    # sp = trapframe; sscratch = user sp.
    SAVE_REGS sp
    READ_SCRATCH t0, \pv
    sd t0, TF_SP(sp)
    WRITE_SCRATCH zero, \pv
    mv a0, sp
    ld sp, TF_KSTACK(sp)
    call user_trap
    # user_trap does not return: it ends in user_return.

# void user_return(struct trapframe *tf): to U-mode with tf's registers.
    .globl \ret
\ret:
    WRITE_SCRATCH a0, \pv
    mv sp, a0
    RESTORE_REGS_EXCEPT_SP sp
    ld sp, TF_SP(sp)
    sret
.endm

    TRAPS trap_entry, user_return, 0
#ifdef PV
    TRAPS trap_entry_pv, user_return_pv, 1
#endif

# void swtch(struct context *old, struct context *new)
    .globl swtch
swtch:
    sd ra, 0(a0)
    sd sp, 8(a0)
    sd s0, 16(a0)
    sd s1, 24(a0)
    sd s2, 32(a0)
    sd s3, 40(a0)
    sd s4, 48(a0)
    sd s5, 56(a0)
    sd s6, 64(a0)
    sd s7, 72(a0)
    sd s8, 80(a0)
    sd s9, 88(a0)
    sd s10, 96(a0)
    sd s11, 104(a0)
    ld ra, 0(a1)
    ld sp, 8(a1)
    ld s0, 16(a1)
    ld s1, 24(a1)
    ld s2, 32(a1)
    ld s3, 40(a1)
    ld s4, 48(a1)
    ld s5, 56(a1)
    ld s6, 64(a1)
    ld s7, 72(a1)
    ld s8, 80(a1)
    ld s9, 88(a1)
    ld s10, 96(a1)
    ld s11, 104(a1)
    ret

    .section .bss
    .align 12
boot_stack:
    .skip 16384
boot_stack_top:
