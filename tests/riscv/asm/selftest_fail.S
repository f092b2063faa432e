// Not a conformance test: proves the framework reports a failing check.
// It passes checks 1 and 2 and fails check 5, so popek must exit with 5.
#include "popek_test.h"
RVTEST_BEGIN
    li a0, 1
    CHECK 1, a0, 1
    CHECK 2, a0, 1
    CHECK 5, a0, 2
    RVTEST_PASS
RVTEST_END
