/* Conformance-test framework: bare M-mode programs that report over HTIF.
 *
 * gp holds the number of the check in progress; a failing check writes
 * (gp << 1) | 1 to tohost, so popek exits with that check's number.
 *
 * Traps: the M-mode handler records mcause/mepc/mtval in s9/s10/s11 and
 * resumes at the address in s8, in M-mode with interrupts off (MPIE cleared).
 * s8 is one-shot (cleared by the handler); a trap with s8 == 0 is a failure.
 * An S-mode handler (used once medeleg/mideleg delegate) records scause/sepc/
 * stval in s4/s5/s6 and goes back to M with ecall.
 */
#define TESTNUM gp

#define MSTATUS_MPP   0x1800
#define MSTATUS_MPIE  0x80
#define MSTATUS_MIE   0x8
#define MSTATUS_SIE   0x2
#define MSTATUS_SPIE  0x20
#define MSTATUS_SPP   0x100
#define MSTATUS_MPRV  0x20000
#define MSTATUS_SUM   0x40000
#define MSTATUS_MXR   0x80000
#define IRQ_BIT       0x8000000000000000
#define CLINT_MSIP    0x2000000
#define CLINT_MTIMECMP 0x2004000
#define CLINT_MTIME   0x200bff8

/* Page tables (Sv39/Sv48 tests). */
#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_U 0x10
#define PTE_A 0x40
#define PTE_D 0x80

.macro RVTEST_BEGIN
    .section .text.init, "ax"
    .globl _start
_start:
    la t0, trap_handler
    csrw mtvec, t0
    la t0, s_trap_handler
    csrw stvec, t0
    li TESTNUM, 0
    li s8, 0
    la sp, stack_top
    j tests_begin
    .align 2
trap_handler:
    csrr s9, mcause
    csrr s10, mepc
    csrr s11, mtval
    beqz s8, fail
    li t5, MSTATUS_MPP
    csrs mstatus, t5
    li t5, MSTATUS_MPIE
    csrc mstatus, t5
    csrw mepc, s8
    li s8, 0
    mret
    .align 2
s_trap_handler:
    csrr s4, scause
    csrr s5, sepc
    csrr s6, stval
    ecall
1:  j 1b
tests_begin:
.endm

.macro RVTEST_PASS
    fence
    li t0, 1
    la t1, tohost
    sd t0, 0(t1)
1:  j 1b
.endm

.macro RVTEST_END
fail:
    fence
    slli TESTNUM, TESTNUM, 1
    ori TESTNUM, TESTNUM, 1
    la t1, tohost
    sd TESTNUM, 0(t1)
1:  j 1b
    .section .tohost, "aw", @progbits
    .align 6
    .globl tohost
tohost: .dword 0
    .size tohost, 8                 /* (QEMU's HTIF wants the sizes: -M spike runs these too) */
    .align 6
    .globl fromhost
fromhost: .dword 0
    .size fromhost, 8
    .section .bss
    .align 4
stack_bottom: .skip 4096
stack_top:
.endm

/* Compare a register with a constant. */
.macro CHECK num, reg, expect
    li TESTNUM, \num
    li t6, \expect
    bne \reg, t6, fail
.endm

/* rd = op(a, b) for register-register instructions. */
.macro TEST_RR num, op, expect, a, b
    li TESTNUM, \num
    li a1, \a
    li a2, \b
    \op a3, a1, a2
    li t6, \expect
    bne a3, t6, fail
.endm

/* rd = op(a, imm) for register-immediate instructions. */
.macro TEST_RI num, op, expect, a, imm
    li TESTNUM, \num
    li a1, \a
    \op a3, a1, \imm
    li t6, \expect
    bne a3, t6, fail
.endm

/* The instructions given must trap with `cause`; execution resumes after in M-mode. */
.macro EXPECT_TRAP num, cause, insns:vararg
    li TESTNUM, \num
    la s8, .Lrecover\@
    \insns
    j fail
.Lrecover\@:
    li t6, \cause
    bne s9, t6, fail
.endm

/* Continue with the following code in privilege `mode` (0 = U, 1 = S). */
.macro IN_MODE mode
    li t5, MSTATUS_MPP
    csrc mstatus, t5
    li t5, (\mode << 11)
    csrs mstatus, t5
    la t5, .Lin\@
    csrw mepc, t5
    mret
.Lin\@:
.endm

/* From S or U: back to M-mode through ecall, continuing after this macro. */
.macro BACK_TO_M
    la s8, .Lback\@
    ecall
.Lback\@:
.endm

/* Page-table entries, for the paging tests. */
// \dst = PTE pointing at the address in \src with flags
.macro MKPTE dst, src, flags
    srli \dst, \src, 12
    slli \dst, \dst, 10
    ori \dst, \dst, \flags
.endm
// table[index] = PTE(target, flags)
.macro SETPTE table, index, target, flags
    la t0, \target
    MKPTE t1, t0, \flags
    la t0, \table
    sd t1, (8 * \index)(t0)
.endm

/* fflags == expect, then cleared (the F and D programs, tests/riscv/fp). */
.macro FLAGS num, expect
    li TESTNUM, \num
    csrrw t5, fflags, zero
    li t6, \expect
    bne t5, t6, fail
.endm
