# F and D for a guest kernel of the VMM (tests/test_vmm_fp.py): its sstatus.FS
# (Off at entry, Dirty after FP work, as the guest writes it otherwise), FP
# instructions and the FP CSRs trapping into the guest while its FS is Off, FP loads
# and stores through its (shadowed) memory, the dynamic rounding mode, and its 32
# FP registers and fcsr kept while other VMs run (a1, the device tree's address,
# differs between VMs of different sizes and seeds the values).
# Prints "FP OK" and shuts down with success, or "FP FAIL <check>" and fails.
    .option arch, +d
    .option norvc                      # every instruction 4 bytes: the handler skips 4
#define FS_MASK 0x6000
#define FS_INITIAL 0x2000
#define FS_CLEAN 0x4000
    .section .text
    .globl _start
_start:
    mv s7, a1                          # the seed
    la t0, trap
    csrw stvec, t0
    li s10, 0                          # traps taken

    li s11, 1                          # FS is Off at entry
    csrr a0, sstatus
    li t1, FS_MASK
    and a0, a0, t1
    bnez a0, fail

    li s11, 2                          # an FP instruction with FS Off: illegal, stval = it
1:  fadd.d f1, f2, f3
    li t1, 1
    bne s10, t1, fail
    li t1, 2
    bne s9, t1, fail
    la t1, 1b
    lwu t1, 0(t1)
    bne s8, t1, fail

    li s11, 3                          # and so is an FP CSR
    csrr a0, fcsr
    li t1, 2
    bne s10, t1, fail
    bne s9, t1, fail

    li s11, 4                          # FS := Initial
    li t1, FS_INITIAL
    csrs sstatus, t1
    csrr a0, sstatus
    li t1, FS_MASK
    and a0, a0, t1
    li t1, FS_INITIAL
    bne a0, t1, fail

    li s11, 5                          # 1.0 / 3.0 (RNE) and its flags
    csrwi fflags, 0
    li a0, 0x3FF0000000000000
    fmv.d.x f1, a0
    li a0, 0x4008000000000000
    fmv.d.x f2, a0
    fdiv.d f3, f1, f2, rne
    fmv.x.d a1, f3
    li t1, 0x3FD5555555555555
    bne a1, t1, fail
    csrr a0, fflags
    li t1, 1                           # NX
    bne a0, t1, fail

    li s11, 6                          # FS is Dirty, and SD says so
    csrr a0, sstatus
    bgez a0, fail
    li t1, FS_MASK
    and a0, a0, t1
    bne a0, t1, fail

    li s11, 7                          # the guest makes it Clean; SD clears
    li t1, FS_MASK
    csrc sstatus, t1
    li t1, FS_CLEAN
    csrs sstatus, t1
    csrr a0, sstatus
    bltz a0, fail
    li t1, FS_MASK
    and a0, a0, t1
    li t1, FS_CLEAN
    bne a0, t1, fail

    li s11, 8                          # fsd/fld through guest memory; the load dirties FS
    la a2, scratch
    fsd f3, 0(a2)
    fld f4, 0(a2)
    fmv.x.d a1, f4
    li t1, 0x3FD5555555555555
    bne a1, t1, fail
    ld a1, 0(a2)
    bne a1, t1, fail
    csrr a0, sstatus
    bgez a0, fail

    li s11, 9                          # single precision, rounding from frm (RDN)
    csrwi frm, 2
    li a0, 0x3F800000
    fmv.w.x f5, a0
    li a0, 0x40400000
    fmv.w.x f6, a0
    fdiv.s f7, f5, f6
    fmv.x.w a1, f7
    li t1, 0x3EAAAAAA
    bne a1, t1, fail

    li s11, 10                         # the FP state survives other VMs' slices
    call fill_fp
    li t0, 400000                      # ~1.2 M instructions: many of the VMM's slices
2:  addi t0, t0, -1
    bnez t0, 2b
    call check_fp
    bnez a0, fail

    li s11, 12                         # an FP load from a device: the empty virtio
    li a2, 0x10008000                  # slot's magic value, NaN-boxed
    flw f8, 0(a2)
    fmv.x.d a1, f8
    li t1, 0xFFFFFFFF74726976
    bne a1, t1, fail

    li s11, 11                         # FS := Off: FP traps again
    li t1, FS_MASK
    csrc sstatus, t1
    mv t2, s10
    fmv.x.d a0, f1
    addi t2, t2, 1
    bne s10, t2, fail

    la a0, ok_msg
    call puts
    li a1, 0                           # success
    j shutdown

fail:
    la a0, fail_msg
    call puts
    addi a0, s11, '0'
    li t1, 10
    blt s11, t1, 3f
    li a0, '1'                         # checks 10 to 12
    call putc
    addi a0, s11, '0' - 10
3:  call putc
    li a0, '\n'
    call putc
    li a1, 1                           # system failure
shutdown:
    li a7, 0x53525354                  # SRST
    li a6, 0
    li a0, 0
    ecall
4:  j 4b

# f[i] = seed * 0x9E3779B97F4A7C15 + i * 0x0101010101010101, fcsr = seed's low bits.
fill_fp:
    li t3, 0x9E3779B97F4A7C15
    mul t3, s7, t3
    li t4, 0x0101010101010101
    la t5, values
    li t6, 32
5:  sd t3, 0(t5)
    add t3, t3, t4
    addi t5, t5, 8
    addi t6, t6, -1
    bnez t6, 5b
    la t5, values
    .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fld f\r, 8*\r(t5)
    .endr
    srli t3, s7, 21
    andi t3, t3, 0x9F                  # frm 0..4 (bits 7:5 ≤ 4), any flags
    csrw fcsr, t3
    ret

# a0 = 0 when every register and fcsr hold what fill_fp put there.
check_fp:
    la t5, seen
    .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fsd f\r, 8*\r(t5)
    .endr
    la t4, values
    li t6, 32
    li a0, 0
6:  ld t1, 0(t4)
    ld t2, 0(t5)
    xor t1, t1, t2
    or a0, a0, t1
    addi t4, t4, 8
    addi t5, t5, 8
    addi t6, t6, -1
    bnez t6, 6b
    csrr t1, fcsr
    srli t3, s7, 21
    andi t3, t3, 0x9F
    xor t1, t1, t3
    or a0, a0, t1
    ret

# The guest's trap handler: count, keep scause and stval, skip the instruction.
    .balign 4
trap:
    addi s10, s10, 1
    csrr s9, scause
    csrr s8, stval
    csrr t6, sepc
    addi t6, t6, 4
    csrw sepc, t6
    sret

puts:
    mv t5, a0
    mv t4, ra
7:  lbu a0, 0(t5)
    beqz a0, 8f
    call putc
    addi t5, t5, 1
    j 7b
8:  mv ra, t4
    ret

putc:                                  # SBI DBCN write_byte
    li a7, 0x4442434E
    li a6, 2
    ecall
    ret

    .section .data
ok_msg: .asciz "FP OK\n"
fail_msg: .asciz "FP FAIL "
    .balign 8
scratch: .dword 0
values: .zero 256
seen: .zero 256
