/* The kernel as a driver domain (booted with `blkback`): it serves popek's block
 * ring (blkif.h) with the disk it was given by passthrough (blk.c: our NVMe
 * driver), instead of starting its user program.
 *
 * Its loop: take the requests the VMM put in the ring; for each, map the grants of
 * its pieces into consecutive slots of the grant window (one GRANT_MAP hypercall),
 * so that pieces contiguous in the guest's sense are contiguous in the window and go
 * to the disk as one command (a run); post the response; tell the VMM
 * (DOMAIN_NOTIFY) once per batch.  The domain's CPU never touches the data: the
 * window is mapped only for its device's DMA, by the IOMMU.  Between batches it waits
 * in wfi for its event (a software interrupt the VMM raises; taken as a wake-up
 * only, with sstatus.SIE off).
 *
 * `crash=N` (the VMM's --inject-fault) makes it crash in the middle of request N+1,
 * after part of its data went to the disk: a store through a wild pointer, which
 * the kernel's trap handler turns into a panic, and the VMM into a restart.
 * `hang=N` makes it hang there instead, alive: an endless loop with interrupts off,
 * which only the VMM's watchdog ends (with `asleep`: in wfi, deaf to its event).
 *
 * `evil` makes it a malicious domain (tests/test_driver_domains.py): before serving
 * its first write it tries to reach guest memory it was not granted (evil_first),
 * and after it, to map that request's revoked grants again; then it serves as usual. */
#include "blk.h"
#include "blkif.h"
#include "lib.h"
#include "popek_hypercall.h"
#include "sbi.h"

#define SIE_SSIE (1UL << 1)
#define SIP_SSIP (1UL << 1)
#define RUN_MAX (64 * 1024)                 /* blk.c's largest request */

static struct blkif_ring ring __attribute__((aligned(4096)));
static struct blkif_map ops[BLKIF_PIECES];
static u64 window;
static long served, crash_after = -1, hang_after = -1;
static int hang_asleep;

static void fail(void) {
    if (served == hang_after) {
        kprintf("blkback: hanging in request %d (an injected fault)\n", (int)served + 1);
        if (hang_asleep) {                  /* deaf to its event, asleep for ever */
            csr_clear(sie, SIE_SSIE);
            for (;;) asm volatile("wfi");
        }
        for (;;) asm volatile("");          /* (sstatus.SIE is off: nothing breaks in) */
    }
    kprintf("blkback: crashing in request %d (an injected fault)\n", (int)served + 1);
    volatile u64 *volatile wild = (volatile u64 *)0x10;
    *wild = 0xdead;                         /* no mapping there: a kernel page fault */
}

/* The number after `key` in the boot arguments, or -1. */
static long arg_number(const char *args, const char *key) {
    const char *c = strstr(args, key);
    if (!c) return -1;
    long n = 0;
    for (c += strlen(key); *c >= '0' && *c <= '9'; c++) n = n * 10 + (*c - '0');
    return n;
}

/* One request: 0 done, -1 failed. */
static int serve(volatile struct blkif_request *rq) {
    u32 n = rq->npieces;
    if (rq->op == BLKIF_OP_FLUSH) {
        if (served == crash_after || served == hang_after) fail();
        return blk_flush();
    }
    if (n == 0 || n > BLKIF_PIECES || rq->op > BLKIF_OP_WRITE) return -1;
    u32 base = (u32)((rq - ring.req) * BLKIF_PIECES);      /* this slot's window slots */
    for (u32 i = 0; i < n; i++) ops[i] = (struct blkif_map){rq->piece[i].ref, base + i};
    struct sbiret r = sbi_call(POPEK_EID, POPEK_FID_GRANT_MAP, (u64)ops, n, 0, 0);
    if (r.error || r.value != n) return -1;
    u64 sector = rq->sector, run = 0, run_len = 0;
    for (u32 i = 0; i < n; i++) {
        u64 at = window + (u64)(base + i) * 4096 + rq->piece[i].offset;
        u32 len = rq->piece[i].len;
        if (run_len && (run + run_len != at || run_len + len > RUN_MAX)) {
            if (blk_rw(rq->op == BLKIF_OP_WRITE, sector, (void *)run, run_len / 512) < 0)
                return -1;
            sector += run_len / 512;
            run_len = 0;
            if (served == crash_after || served == hang_after) fail();
        }
        if (!run_len) run = at;
        run_len += len;
    }
    if (served == crash_after || served == hang_after) fail();
    return blk_rw(rq->op == BLKIF_OP_WRITE, sector, (void *)run, run_len / 512);
}

/* The attacks, each printed with what came of it. */
static int evil, evil_done;
static u32 evil_ref;

static void evil_first(volatile struct blkif_request *rq) {
    u32 base = (u32)((rq - ring.req) * BLKIF_PIECES);
    /* A reference the VMM never gave: another generation of the first piece's entry. */
    ops[0] = (struct blkif_map){rq->piece[0].ref ^ (1U << 12), base};
    struct sbiret r = sbi_call(POPEK_EID, POPEK_FID_GRANT_MAP, (u64)ops, 1, 0, 0);
    kprintf("evil: forged grant %s\n", r.error ? "refused" : "MAPPED");
    /* The real grant (a write's pages: read only), then the device told to write it. */
    ops[0] = (struct blkif_map){rq->piece[0].ref, base};
    r = sbi_call(POPEK_EID, POPEK_FID_GRANT_MAP, (u64)ops, 1, 0, 0);
    kprintf("evil: the real grant %s\n", r.error ? "REFUSED" : "mapped");
    u64 page = window + (u64)base * 4096;
    int read_in = blk_rw(0, 0, (void *)page, 1);
    kprintf("evil: a disk read into a read-only grant %s\n", read_in < 0 ? "failed" : "LANDED");
    /* A window slot nothing was mapped at, and an address beyond the window. */
    int stray = blk_rw(0, 0, (void *)(window + (u64)(BLKIF_WINDOW_SLOTS - 1) * 4096), 1);
    int beyond = blk_rw(1, 0, (void *)(window + (u64)BLKIF_WINDOW_SLOTS * 4096), 1);
    kprintf("evil: DMA to an unmapped slot %s, beyond the window %s\n",
            stray < 0 ? "failed" : "LANDED", beyond < 0 ? "failed" : "LANDED");
    evil_ref = rq->piece[0].ref;
}

static void evil_after(void) {
    ops[0] = (struct blkif_map){evil_ref, 0};
    struct sbiret r = sbi_call(POPEK_EID, POPEK_FID_GRANT_MAP, (u64)ops, 1, 0, 0);
    kprintf("evil: a revoked grant %s\n", r.error ? "refused" : "MAPPED");
}

void blkback_run(const char *args) {
    evil = strstr(args, "evil") != 0;
    crash_after = arg_number(args, "crash=");
    hang_after = arg_number(args, "hang=");
    hang_asleep = strstr(args, "asleep") != 0;
    if (!blk_present()) panic("blkback: no disk to serve");
    struct sbiret r = sbi_call(POPEK_EID, POPEK_FID_DOMAIN_ATTACH, (u64)&ring, 0, 0, 0);
    if (r.error) panic("blkback: the VMM refused the ring (%d)", (int)r.error);
    window = r.value;
    kprintf("blkback: serving %d sectors, grant window at %p\n", (int)blk_capacity(), window);
    sbi_set_timer(~0UL);                    /* no tick: nothing but the event wakes it */
    csr_clear(sie, SIE_STIE | SIE_SEIE);
    csr_set(sie, SIE_SSIE);                 /* the event wakes wfi (SIE stays off) */
    for (;;) {
        csr_clear(sip, SIP_SSIP);
        __sync_synchronize();
        u32 done = 0;
        while (ring.req_cons != ring.req_prod) {
            volatile struct blkif_request *rq = &ring.req[ring.req_cons % BLKIF_SLOTS];
            if (evil && !evil_done && rq->op == BLKIF_OP_WRITE && rq->npieces) {
                evil_first(rq);
                evil_done = 1;
            }
            int status = serve(rq) < 0 ? BLKIF_ERROR : BLKIF_OK;
            volatile struct blkif_response *rs = &ring.rsp[ring.rsp_prod % BLKIF_SLOTS];
            rs->id = rq->id;
            rs->status = status;
            __sync_synchronize();
            ring.rsp_prod++;
            ring.req_cons++;
            served++;
            done++;
        }
        if (done) sbi_call(POPEK_EID, POPEK_FID_DOMAIN_NOTIFY, 0, 0, 0, 0);
        else asm volatile("wfi");
        if (evil_done == 1 && done) {
            evil_after();
            evil_done = 2;
        }
    }
}
