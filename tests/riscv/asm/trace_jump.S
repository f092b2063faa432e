// --trace must print exactly the instructions that ran: a block follows the jump
// over two `li`s, which never run (and must not be in the trace), then an ecall
// traps (the trap line follows the ecall's line).
#include "popek_test.h"
RVTEST_BEGIN
    li a1, 0
    li a0, 1
    j 1f
    li a1, 2                        // skipped
    li a2, 3                        // skipped
1:  li a3, 4
    CHECK 1, a1, 0
    CHECK 2, a3, 4
    EXPECT_TRAP 3, 11, ecall        // environment call from M-mode
    RVTEST_PASS
RVTEST_END
