/* The FP registers and fcsr to and from a process's struct fpstate (proc.h): the
 * only FP instructions the kernel has (it is built without F and D; these need
 * sstatus.FS on, which proc.c arranges). */
    .option arch, +d
    .section .text
    .globl fp_save
fp_save:                                /* a0 = struct fpstate * */
    .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fsd f\r, 8*\r(a0)
    .endr
    frcsr t0
    sd t0, 256(a0)
    ret

    .globl fp_restore
fp_restore:
    .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fld f\r, 8*\r(a0)
    .endr
    ld t0, 256(a0)
    fscsr t0
    ret
