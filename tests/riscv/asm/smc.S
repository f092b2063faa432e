// Self-modifying code: a routine whose `addi a0, a0, K` is rewritten with a new
// K before every call (with fence.i), 100 times, so its block is translated,
// then invalidated and re-decoded; the sum shows every new K took effect.
// Also: code written by stores to a fresh page, then run.
#include "popek_test.h"
RVTEST_BEGIN
    li s0, 0                        // sum of results
    li s1, 1                        // K = 1..100
    la s2, patch_me
    li s3, 101
1:  lwu t0, 0(s2)                   // the addi instruction
    li t1, 0x000fffff
    and t0, t0, t1                  // keep rd/rs1/opcode, drop the immediate
    slli t1, s1, 20
    or t0, t0, t1
    sw t0, 0(s2)
    fence.i
    li a0, 0
    call routine
    add s0, s0, a0
    addi s1, s1, 1
    bne s1, s3, 1b
    CHECK 1, s0, 5050               // 1 + 2 + ... + 100
    // build a two-instruction routine in a data page and run it
    la s2, fresh
    li t0, 0x02a00513               // addi a0, zero, 42
    sw t0, 0(s2)
    li t0, 0x00008067               // ret
    sw t0, 4(s2)
    fence.i
    jalr s2
    CHECK 2, a0, 42
    li t0, 0x06300513               // addi a0, zero, 99: the same page, rewritten
    sw t0, 0(s2)
    fence.i
    jalr s2
    CHECK 3, a0, 99
    RVTEST_PASS

    .align 2
routine:
    .option push
    .option norvc
patch_me:
    addi a0, a0, 0
    .option pop
    ret
RVTEST_END
    .data
    .align 12
fresh: .skip 4096
