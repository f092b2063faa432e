/* The H extension's programs (tests/riscv/h): names, and entering a virtual mode.
 * popek_test.h's M-mode handler catches every trap not delegated; its S-mode handler
 * (s_trap_handler) serves HS-mode through stvec and, set as vstvec, VS-mode too: it
 * records scause/sepc/stval in s4/s5/s6 and ecalls to M, so mcause (s9) says which
 * level handled the trap (9: HS, 10: VS). */
#define MSTATUS_MPV   (1 << 39)
#define MSTATUS_GVA   (1 << 38)
#define HSTATUS_GVA   (1 << 6)
#define HSTATUS_SPV   (1 << 7)
#define HSTATUS_SPVP  (1 << 8)
#define HSTATUS_HU    (1 << 9)
#define HSTATUS_VTVM  (1 << 20)
#define HSTATUS_VTW   (1 << 21)
#define HSTATUS_VTSR  (1 << 22)
#define MIP_VSSIP     (1 << 2)
#define MIP_VSTIP     (1 << 6)
#define MIP_VSEIP     (1 << 10)

/* Continue with the following code in virtual mode `mode` (0 = VU, 1 = VS). */
.macro IN_VMODE mode
    li t5, MSTATUS_MPP
    csrc mstatus, t5
    li t5, (\mode << 11)
    csrs mstatus, t5
    li t5, MSTATUS_MPV
    csrs mstatus, t5
    la t5, .Lv\@
    csrw mepc, t5
    mret
.Lv\@:
.endm

/* Compare a register with a label's address. */
.macro CHECK_ADDR num, reg, label
    li TESTNUM, \num
    la t6, \label
    bne \reg, t6, fail
.endm

/* The start of every H program.  One PMP entry granting everything: QEMU refuses an
 * mret to S or U while no PMP rule exists (popek keeps PMP registers without enforcing
 * them).  And M-mode traps go through h_trap_handler (H_END), which keeps mstatus as the
 * trap left it in s7 and clears MPV before popek_test.h's handler returns to M-mode:
 * QEMU 7.2's mret enters V=1 whenever MPV is set, even with MPP = M (a bug). */
.macro H_BEGIN
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f                      /* NAPOT, R W X */
    csrw pmpcfg0, t0
    la t0, h_trap_handler
    csrw mtvec, t0
.endm

.macro H_END
    .align 2
h_trap_handler:
    csrr s7, mstatus
    li t5, MSTATUS_MPV
    csrc mstatus, t5
    j trap_handler
.endm

/* Where QEMU 7.2 (Debian 12's, the oracle of tests/test_hext.py, which builds these
 * programs again with -DQEMU_ORACLE) departs from the specification, the check expects
 * QEMU's answer in that build: each is a QEMU bug, fixed in later QEMUs.
 *  - VU-mode touching an S-level CSR, or running sret: virtual-instruction (22); QEMU 7.2
 *    says illegal.
 *  - mret with MPP = M and MPV set stays in M-mode with V=0; QEMU 7.2 sets V (skipped).
 *  - hstatus.VTVM traps VS-mode's satp accesses too; QEMU 7.2 only its sfence.vma (skipped).
 *  - HS-mode's mstatus.MXR applies to both stages, vsstatus.MXR to the VS-stage only; QEMU
 *    7.2 uses the guest's at the G-stage (skipped).
 *  - an exception 2, 6 or 10 delegated to VS-mode keeps its cause; QEMU 7.2 takes one off
 *    as it does for the VS interrupts (an illegal instruction arrives as 1).
 *  - a G-stage fault on the VS-stage walk's own access is reported for the original
 *    access (a store: 23); QEMU 7.2 always reports a load's (21; fixed in QEMU 8.1).
 *  - a VS-stage page fault of HLV is a load page fault (13); QEMU 7.2 raises a load access
 *    fault (5); and HLVX of an execute-only page reads it, where QEMU faults (skipped).
 * (And QEMU's spike board has no time source, so htimedelta is illegal there: skipped.) */
#ifdef QEMU_ORACLE
#define VU_S_CAUSE 2
#define VS_ILLEGAL_CAUSE 1
#define WALK_STORE_GPF_CAUSE 21
#define HLV_PAGE_FAULT_CAUSE 5
#else
#define VU_S_CAUSE 22
#define VS_ILLEGAL_CAUSE 2
#define WALK_STORE_GPF_CAUSE 23
#define HLV_PAGE_FAULT_CAUSE 13
#endif
