/* init: the guest's self-tests and benchmarks.
 *
 * The kernel command line picks what runs: "selftest", "bench", "all" (the
 * default), or "bench=name,name" for some benchmarks; "netecho" and "netbench" are
 * the network responder and benchmark of user/net.c (two VMs on one switch).  Every benchmark prints
 *     BENCH <name> iters=<n> cycles=<c> time_ns=<t>
 * (cycles from rdcycle, time from rdtime); every self-test "TEST <name> ok" or
 * "TEST <name> FAIL: why".  The exit code is the number of failed self-tests,
 * which the kernel turns into a successful or failed SBI shutdown. */
#include "ulib.h"

#define PAGE 4096UL
#define MMAP_BASE 0x60000000UL
#define INTEGRITY_SECTOR 2048   /* the data-integrity pattern lives here (see docs/guest.md) */
#define INTEGRITY_SECTORS 16

static u64 timebase;

static int strncmp_(const char *a, const char *b, u64 n) {
    for (; n; n--, a++, b++)
        if (*a != *b) return 1;
    return 0;
}
static int failures, tests;
static volatile int cow_global = 1;

static u64 ns(u64 ticks) { return ticks * 1000000000UL / timebase; }

static void report(const char *name, int ok, const char *why) {
    tests++;
    if (ok) {
        printf("TEST %s ok\n", name);
    } else {
        failures++;
        printf("TEST %s FAIL: %s\n", name, why);
    }
}

static u8 integrity_byte(u64 sector, u64 i) { return (u8)(sector * 31 + i * 7 + 0x5a); }

/* ---------------------------------------------------------------- tests */
static void test_fork_wait(void) {
    long pid = sys_fork();
    if (pid == 0) sys_exit(42);
    int status = 0;
    long got = sys_wait(&status);
    report("fork_wait", pid > 0 && got == pid && status == 42, "wrong pid or status");
}

static void test_demand_paging(void) {
    long old = sys_sbrk(16 * PAGE);
    int ok = old > 0;
    for (int i = 0; ok && i < 16; i++) {
        volatile u64 *p = (volatile u64 *)(old + i * PAGE);
        ok = *p == 0;                              /* demand-zero */
        *p = 0x1000 + i;
    }
    for (int i = 0; ok && i < 16; i++) ok = *(volatile u64 *)(old + i * PAGE) == 0x1000UL + i;
    u64 area = MMAP_BASE;
    ok = ok && sys_mmap(area, 8 * PAGE) == (long)area;
    for (int i = 0; ok && i < 8; i++) {
        volatile u64 *p = (volatile u64 *)(area + i * PAGE);
        ok = *p == 0;
        *p = 77;
    }
    ok = ok && sys_munmap(area, 8 * PAGE) == 0 && *(volatile u64 *)area == 0;  /* a fresh page */
    sys_munmap(area, PAGE);
    report("demand_paging", ok, "heap or mmap pages wrong");
}

static void test_cow(void) {
    long before = sys_stats(1);
    cow_global = 1;
    long pid = sys_fork();
    if (pid == 0) {
        cow_global = 2;
        sys_exit(cow_global == 2 ? 0 : 1);
    }
    int status = -1;
    sys_wait(&status);
    int ok = pid > 0 && status == 0 && cow_global == 1 && sys_stats(1) > before;
    report("copy_on_write", ok, "child's write leaked, or no page was copied");
}

static void test_bad_access_kills(void) {
    long pid = sys_fork();
    if (pid == 0) {
        *(volatile int *)0x1000 = 1;               /* not user memory */
        sys_exit(0);
    }
    int status = 0;
    sys_wait(&status);
    report("bad_access_kills", status == -11, "child survived a wild store");
}

static void test_preemption(void) {
    long pid = sys_fork();
    if (pid == 0)
        for (;;) ;                                  /* never yields */
    sys_yield();                                    /* back here only if the timer preempts it */
    sys_kill(pid);
    int status = 0;
    long got = sys_wait(&status);
    report("preemption", got == pid && status == -9, "spinning child was not preempted/killed");
}

static void test_many_processes(void) {
    int n = 8, sum = 0;
    for (int i = 1; i <= n; i++) {
        long pid = sys_fork();
        if (pid == 0) {
            volatile u64 x = 0;
            for (int k = 0; k < 1000 * i; k++) x += k;
            sys_exit(i);
        }
    }
    for (int i = 0; i < n; i++) {
        int status = 0;
        if (sys_wait(&status) > 0) sum += status;
    }
    report("many_processes", sum == n * (n + 1) / 2 && sys_wait(0) == -1, "lost a child");
}

static u8 iobuf[16 * 512], iobuf2[16 * 512];

static void test_block_io(void) {
    long size = sys_blk_size();
    if (size < INTEGRITY_SECTOR + INTEGRITY_SECTORS) {
        report("block_io", 0, "no disk (or smaller than 1 MiB + 8 KiB)");
        return;
    }
    for (u64 s = 0; s < INTEGRITY_SECTORS; s++)
        for (u64 i = 0; i < 512; i++) iobuf[s * 512 + i] = integrity_byte(INTEGRITY_SECTOR + s, i);
    int ok = sys_blk_write(INTEGRITY_SECTOR, iobuf, INTEGRITY_SECTORS) == INTEGRITY_SECTORS;
    ok = ok && sys_blk_flush() == 0;
    memset(iobuf2, 0, sizeof iobuf2);
    ok = ok && sys_blk_read(INTEGRITY_SECTOR, iobuf2, INTEGRITY_SECTORS) == INTEGRITY_SECTORS;
    for (u64 i = 0; ok && i < sizeof iobuf; i++) ok = iobuf[i] == iobuf2[i];
    ok = ok && sys_blk_read(size, iobuf2, 1) < 0;    /* past the end: refused */
    report("block_io", ok, "read back differs, or a bad request was accepted");
}

u64 fp_fill(u64 seed), fp_check(u64 seed), fp_sum(u64 n);          /* fp.S */

/* Two processes with different values in all 32 FP registers and fcsr, switched
 * many times: each finds its own again.  The kernel switches FP state lazily
 * (proc.c): a first FP instruction traps once per process, a process's registers
 * are loaded when it runs after the other, and saved only when they changed. */
static void test_fp_context(void) {
    if (!sys_stats(7)) {
        printf("TEST fp_context skipped: the CPU has no F and D\n");
        return;
    }
    long saves = sys_stats(4), restores = sys_stats(5), firsts = sys_stats(6);
    long pid = sys_fork();
    u64 seed = pid == 0 ? 0x1234567 : 0x7654321, bad = 0;
    fp_fill(seed);
    for (int i = 0; i < 20; i++) {
        sys_yield();
        bad |= fp_check(seed);
    }
    /* arithmetic between switches: 0.5 + 1 + ... + 100 = 2525 (0x40A3BA0000000000) */
    for (int i = 0; i < 5; i++) {
        sys_yield();
        bad |= fp_sum(100) ^ 0x40A3BA0000000000UL;
    }
    if (pid == 0) sys_exit(bad != 0);
    int status = -1;
    sys_wait(&status);
    saves = sys_stats(4) - saves;
    restores = sys_stats(5) - restores;
    firsts = sys_stats(6) - firsts;
    int ok = pid > 0 && !bad && status == 0 && firsts == 2 && restores >= 20 && saves >= 2 &&
             saves < restores;
    report("fp_context", ok, bad ? "FP registers or fcsr lost" : status ? "child's FP state lost"
           : "FP state not switched lazily");
    printf("  fp_context: %d first uses, %d restores, %d saves\n", (int)firsts, (int)restores,
           (int)saves);
}

static void test_time(void) {
    u64 t0 = sys_time();
    volatile u64 x = 0;
    for (int i = 0; i < 20000; i++) x += i;
    u64 t1 = sys_time();
    report("time", t1 > t0 && rdtime() >= t1, "time did not advance");
}

/* ----------------------------------------------------------- benchmarks */
static void bench_line(const char *name, u64 iters, u64 c0, u64 t0) {
    u64 c1 = rdcycle(), t1 = rdtime();
    printf("BENCH %s iters=%lu cycles=%lu time_ns=%lu\n", name, iters, c1 - c0, ns(t1 - t0));
}

static void bench_null_syscall(void) {
    u64 n = 2000, c0 = rdcycle(), t0 = rdtime();
    for (u64 i = 0; i < n; i++) sys_getpid();
    bench_line("null_syscall", n, c0, t0);
}

static void bench_page_fault(void) {
    u64 n = 256, area = MMAP_BASE;
    sys_mmap(area, n * PAGE);
    u64 c0 = rdcycle(), t0 = rdtime();
    for (u64 i = 0; i < n; i++) *(volatile u64 *)(area + i * PAGE) = i;
    bench_line("page_fault", n, c0, t0);
    sys_munmap(area, n * PAGE);
}

static void bench_map_unmap(void) {
    u64 n = 200, area = MMAP_BASE;
    u64 c0 = rdcycle(), t0 = rdtime();
    for (u64 i = 0; i < n; i++) {
        sys_mmap(area, PAGE);
        *(volatile u64 *)area = i;                  /* map (fault in) ... */
        sys_munmap(area, PAGE);                     /* ... unmap: PTE store + remote fence */
    }
    bench_line("map_unmap", n, c0, t0);
}

static void bench_context_switch(void) {
    u64 n = 500;
    long pid = sys_fork();
    if (pid == 0) {
        for (u64 i = 0; i < n; i++) sys_yield();
        sys_exit(0);
    }
    u64 c0 = rdcycle(), t0 = rdtime();
    for (u64 i = 0; i < n; i++) sys_yield();
    bench_line("context_switch", 2 * n, c0, t0);
    sys_wait(0);
}

static void bench_rdtime(void) {
    u64 n = 20000, c0 = rdcycle(), t0 = rdtime(), sink = 0;
    for (u64 i = 0; i < n; i++) sink += rdtime();
    bench_line("rdtime_loop", n, c0, t0);
    if (sink == 1) printf("?");
}

static void bench_compute(void) {
    u64 n = 200000, c0 = rdcycle(), t0 = rdtime();
    u64 a = 1, b = 2;
    for (u64 i = 0; i < n; i++) {
        a = a * 6364136223846793005UL + 1442695040888963407UL;
        b ^= a >> 17;
    }
    bench_line("compute_loop", n, c0, t0);
    if (b == 42) printf("?");
}

static void bench_memory_touch(void) {
    u64 pages = 512, rounds = 8, area = MMAP_BASE;
    sys_mmap(area, pages * PAGE);
    for (u64 p = 0; p < pages; p++) *(volatile u8 *)(area + p * PAGE) = 1;    /* fault in */
    u64 c0 = rdcycle(), t0 = rdtime(), sum = 0;
    for (u64 r = 0; r < rounds; r++)
        for (u64 p = 0; p < pages; p++) sum += *(volatile u8 *)(area + p * PAGE + (r * 64));
    bench_line("memory_touch", pages * rounds, c0, t0);
    sys_munmap(area, pages * PAGE);
    if (sum == 1) printf("?");
}

static u8 blkbuf[64 * 1024];

static void bench_blk(int write) {
    const char *name = write ? "blk_seq_write" : "blk_seq_read";
    long size = sys_blk_size();
    u64 chunk = sizeof blkbuf / 512, total = 1024;   /* 512 KiB in 64 KiB requests */
    if (size < (long)(total + 4096)) {
        printf("BENCH %s skipped: no disk of 2.5 MiB or more\n", name);
        return;
    }
    u64 first = 4096;                               /* away from the integrity sectors */
    for (u64 i = 0; i < sizeof blkbuf; i++) blkbuf[i] = (u8)i;
    u64 c0 = rdcycle(), t0 = rdtime();
    for (u64 s = 0; s < total; s += chunk) {
        long r = write ? sys_blk_write(first + s, blkbuf, chunk) : sys_blk_read(first + s, blkbuf, chunk);
        if (r != (long)chunk) { printf("BENCH %s failed\n", name); return; }
    }
    if (write) sys_blk_flush();
    bench_line(name, total * 512, c0, t0);
}

/* Small requests, where the cost of each request's path shows rather than the copy:
 * 256 reads of 4 KiB, each its own request (the timing is per request). */
static void bench_blk_4k(void) {
    u64 n = 256, span = 1024;                       /* over the first 512 KiB of the area */
    if (sys_blk_size() < (long)(4096 + span)) {
        printf("BENCH blk_4k_read skipped: no disk of 2.5 MiB or more\n");
        return;
    }
    u64 c0 = rdcycle(), t0 = rdtime();
    for (u64 i = 0; i < n; i++) {
        u64 sector = 4096 + (i * 8 * 37) % span;    /* scattered 4 KiB blocks */
        if (sys_blk_read(sector, blkbuf, 8) != 8) { printf("BENCH blk_4k_read failed\n"); return; }
    }
    bench_line("blk_4k_read", n, c0, t0);
}

static void bench_console(void) {
    u64 n = 8;
    const char line[] = "console bench: the quick brown fox jumps over the lazy dog\n";
    u64 c0 = rdcycle(), t0 = rdtime();
    for (u64 i = 0; i < n; i++) sys_write(1, line, sizeof line - 1);
    bench_line("console_write", n * (sizeof line - 1), c0, t0);
}

/* The same lines through the 16550 (register by register) and the virtio console
 * (one buffer a line): what the emulated-vs-paravirtual console comparison measures. */
static void bench_console_device(int which, const char *name) {
    u64 n = 8;
    const char line[] = "console bench: the quick brown fox jumps over the lazy dog\n";
    if (sys_cons_write(which, "", 0) < 0) {
        printf("BENCH %s skipped: no such device\n", name);
        return;
    }
    u64 c0 = rdcycle(), t0 = rdtime();
    for (u64 i = 0; i < n; i++) sys_cons_write(which, line, sizeof line - 1);
    bench_line(name, n * (sizeof line - 1), c0, t0);
}

static void bench_console_uart(void) { bench_console_device(1, "console_uart"); }
static void bench_console_virtio(void) { bench_console_device(2, "console_virtio"); }

struct bench { const char *name; void (*fn)(void); };
static const struct bench benches[] = {
    {"null_syscall", bench_null_syscall},
    {"page_fault", bench_page_fault},
    {"map_unmap", bench_map_unmap},
    {"context_switch", bench_context_switch},
    {"rdtime_loop", bench_rdtime},
    {"compute_loop", bench_compute},
    {"memory_touch", bench_memory_touch},
    {"blk_seq_read", 0},
    {"blk_seq_write", 0},
    {"blk_4k_read", bench_blk_4k},
    {"console_write", bench_console},
    {"console_uart", bench_console_uart},
    {"console_virtio", bench_console_virtio},
};

/* Does the space-separated command line have `word` (or `word=...`) as a token? */
static const char *token(const char *args, const char *word) {
    u64 n = strlen(word);
    for (const char *p = args; *p;) {
        while (*p == ' ') p++;
        const char *start = p;
        while (*p && *p != ' ') p++;
        if ((u64)(p - start) >= n && !strncmp_(start, word, n) &&
            (start[n] == 0 || start[n] == ' ' || start[n] == '='))
            return start;
    }
    return 0;
}

/* Is benchmark `name` selected?  All are, unless the line says bench=a,b,c. */
static int wanted(const char *args, const char *name) {
    const char *t = token(args, "bench");
    if (!t || t[5] != '=') return 1;
    u64 n = strlen(name);
    for (const char *p = t + 6; *p && *p != ' ';) {
        const char *start = p;
        while (*p && *p != ',' && *p != ' ') p++;
        if ((u64)(p - start) == n && !strncmp_(start, name, n)) return 1;
        if (*p == ',') p++;
    }
    return 0;
}

int main(const char *args) {
    timebase = sys_timebase();
    int all = token(args, "all") != 0 || !*args;
    printf("init: pid %d, args '%s'\n", (int)sys_getpid(), args);
    if (token(args, "netecho")) {                    /* a network responder (user/net.c) */
        net_echo();
        return 0;
    }
    if (token(args, "netbench")) {                   /* its client: BENCH net_* lines */
        net_bench(timebase, 200, 512);
        return 0;
    }
    if (all || token(args, "selftest")) {
        test_fork_wait();
        test_demand_paging();
        test_cow();
        test_bad_access_kills();
        test_preemption();
        test_many_processes();
        test_block_io();
        test_time();
        test_fp_context();
        printf("SELFTEST %s %d/%d\n", failures ? "FAIL" : "PASS", tests - failures, tests);
    }
    if (all || token(args, "bench")) {
        for (unsigned i = 0; i < sizeof benches / sizeof benches[0]; i++) {
            if (!wanted(args, benches[i].name)) continue;
            if (benches[i].fn) benches[i].fn();
            else bench_blk(benches[i].name[8] == 'w');
        }
        printf("BENCH DONE\n");
    }
    return failures;
}
