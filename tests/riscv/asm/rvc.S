// C extension: every RV64C instruction, written with explicit c. mnemonics so
// the assembler cannot pick the 32-bit form.
#include "popek_test.h"
RVTEST_BEGIN
    .option push
    .option rvc
    li TESTNUM, 1
    li a0, 0
    c.li a0, -5
    li t6, -5
    bne a0, t6, fail
    li TESTNUM, 2
    c.addi a0, 7
    li t6, 2
    bne a0, t6, fail
    li TESTNUM, 3
    li a0, 0x7fffffff
    c.addiw a0, 1
    li t6, 0xffffffff80000000
    bne a0, t6, fail
    li TESTNUM, 4
    c.lui a0, 0xfffe1                // nzimm[17:12] = 0x21 sign-extended
    li t6, 0xfffffffffffe1000
    bne a0, t6, fail
    li TESTNUM, 5
    mv s1, sp
    c.addi16sp sp, -64
    addi a1, s1, -64
    bne sp, a1, fail
    c.addi16sp sp, 64
    bne sp, s1, fail
    li TESTNUM, 6
    c.addi4spn a0, sp, 16
    addi a1, sp, 16
    bne a0, a1, fail
    li TESTNUM, 7
    li a0, 1
    c.slli a0, 40
    li t6, 0x10000000000
    bne a0, t6, fail
    li TESTNUM, 8
    li a0, -16
    c.srli a0, 60
    li t6, 0xf
    bne a0, t6, fail
    li TESTNUM, 9
    li a0, -16
    c.srai a0, 2
    li t6, -4
    bne a0, t6, fail
    li TESTNUM, 10
    li a0, 0xff
    c.andi a0, -16
    li t6, 0xf0
    bne a0, t6, fail
    li TESTNUM, 11
    li a0, 10
    li a1, 3
    c.sub a0, a1
    li t6, 7
    bne a0, t6, fail
    c.xor a0, a1
    li t6, 4
    bne a0, t6, fail
    c.or a0, a1
    li t6, 7
    bne a0, t6, fail
    c.and a0, a1
    li t6, 3
    bne a0, t6, fail
    li TESTNUM, 12
    li a0, 0x7fffffff
    li a1, 1
    c.addw a0, a1
    li t6, 0xffffffff80000000
    bne a0, t6, fail
    li a0, 0
    c.subw a0, a1
    li t6, -1
    bne a0, t6, fail
    li TESTNUM, 13
    li a1, 1234
    c.mv a2, a1
    bne a2, a1, fail
    c.add a2, a1
    li t6, 2468
    bne a2, t6, fail
    // loads and stores, register-based and sp-based
    li TESTNUM, 14
    la a0, buf
    li a1, 0x1122334455667788
    c.sd a1, 8(a0)
    c.ld a2, 8(a0)
    bne a2, a1, fail
    c.sw a1, 4(a0)
    c.lw a3, 4(a0)
    li t6, 0x55667788
    bne a3, t6, fail
    li TESTNUM, 15
    li a1, 0x80000000
    c.sw a1, 0(a0)
    c.lw a3, 0(a0)                 // c.lw sign-extends
    li t6, 0xffffffff80000000
    bne a3, t6, fail
    li TESTNUM, 16
    mv s1, sp
    la sp, buf
    li a1, 0x0123456789abcdef
    c.sdsp a1, 16(sp)
    c.ldsp a2, 16(sp)
    bne a2, a1, fail
    c.swsp a1, 24(sp)
    c.lwsp a3, 24(sp)
    li t6, 0xffffffff89abcdef
    bne a3, t6, fail
    mv sp, s1
    // control transfer
    li TESTNUM, 17
    c.j 1f
    j fail
1:  li TESTNUM, 18
    la a0, 2f
    c.jr a0
    j fail
2:  li TESTNUM, 19
    la a0, 3f
    c.jalr a0
4:  j fail
3:  la a1, 4b
    bne ra, a1, fail               // c.jalr links pc+2
    li TESTNUM, 20
    li a0, 0
    c.beqz a0, 5f
    j fail
5:  c.bnez a0, fail
    li a0, 1
    c.bnez a0, 6f
    j fail
6:  c.beqz a0, fail
    EXPECT_TRAP 21, 3, c.ebreak
    li TESTNUM, 22
    lhu a1, 0(s10)                 // mepc points at the 16-bit c.ebreak itself
    li t6, 0x9002
    bne a1, t6, fail
    // an all-zero halfword is an illegal instruction
    EXPECT_TRAP 23, 2, .2byte 0
    .option pop
    RVTEST_PASS
RVTEST_END
    .data
    .align 4
buf: .skip 64
