// A block follows direct jumps that stay in its page; following one backwards can
// lead it back to instructions it already holds (`j 1b`, then falling through
// into `2:`).  An instruction is in a block once, so a side exit taken there
// counts instret exactly, in both engines (the routine is called 100 times,
// enough to be translated).
#include "popek_test.h"
RVTEST_BEGIN
    li s0, 0
    li s4, 100                  // calls
    csrr s2, minstret
4:  li s1, 2
    jal ra, shape
    addi s4, s4, -1
    bnez s4, 4b
    csrr s3, minstret
    sub s3, s3, s2
    CHECK 1, s0, 100
    CHECK 2, s3, 1201           // csrr, then 100 x (li, jal, 8 in shape, addi, bnez)
    RVTEST_PASS

    .option push
    .option norvc
shape:
    j 2f
1:  addi s0, s0, 1
2:  addi s1, s1, -1
    beqz s1, 3f                 // taken on the second time round
    j 1b
3:  ret
    .option pop
RVTEST_END
