# The FP registers for the fp_context self-test (main.c): fill all 32 and fcsr with
# values made from a seed, or check they still hold them.  Assembly, so that no
# compiled code stands between (the program is otherwise built without F and D).
    .option arch, +d
    .section .text

# fp_fill(seed): f[i] = seed * 0x9E3779B97F4A7C15 + i * 0x0101010101010101;
# fcsr = seed >> 7, frm kept valid (0 or 4), any flags.
    .globl fp_fill
fp_fill:
    addi sp, sp, -256
    li t0, 0x9E3779B97F4A7C15
    mul t0, a0, t0
    li t1, 0x0101010101010101
    mv t2, sp
    li t3, 32
1:  sd t0, 0(t2)
    add t0, t0, t1
    addi t2, t2, 8
    addi t3, t3, -1
    bnez t3, 1b
    .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fld f\r, 8*\r(sp)
    .endr
    srli t0, a0, 7
    andi t0, t0, 0x9F
    fscsr t0
    addi sp, sp, 256
    ret

# fp_check(seed): 0 when every register and fcsr hold what fp_fill(seed) put there.
    .globl fp_check
fp_check:
    addi sp, sp, -256
    .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fsd f\r, 8*\r(sp)
    .endr
    li t0, 0x9E3779B97F4A7C15
    mul t0, a0, t0
    li t1, 0x0101010101010101
    mv t2, sp
    li t3, 32
    li t4, 0
2:  ld t5, 0(t2)
    xor t5, t5, t0
    or t4, t4, t5
    add t0, t0, t1
    addi t2, t2, 8
    addi t3, t3, -1
    bnez t3, 2b
    frcsr t5
    srli t0, a0, 7
    andi t0, t0, 0x9F
    xor t5, t5, t0
    or t4, t4, t5
    mv a0, t4
    addi sp, sp, 256
    ret

# fp_sum(n): the sum 0.5 + 1.0 + ... + n/2 in double precision (fcvt and fmadd), as
# bits: exact for the n used, so any lost or corrupted state shows.
    .globl fp_sum
fp_sum:
    fmv.d.x f0, zero                   # the sum
    li t0, 0x3FE0000000000000          # 0.5
    fmv.d.x f1, t0
    li t1, 1
3:  bgt t1, a0, 4f
    fcvt.d.l f2, t1
    fmadd.d f0, f2, f1, f0
    addi t1, t1, 1
    j 3b
4:  fmv.x.d a0, f0
    ret
