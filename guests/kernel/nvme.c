/* NVMe over PCIe (NVM Express Base 1.4: 3.1 the registers, 7.6.1 controller
 * initialisation, 4.2-4.6 queues, commands and PRPs; NVM Command Set: Read, Write,
 * Flush).  Requests are synchronous, as virtio_blk.c's: one I/O queue pair, the kernel
 * submits a command, rings the tail doorbell and polls the completion queue's phase
 * tag.  The controller's interrupt stays masked (INTMS) and INTx disabled, so a
 * passed-through controller costs its VM no routed interrupts. */
#include "nvme.h"
#include "kalloc.h"
#include "lib.h"
#include "pci.h"

#define QEMU_VENDOR 0x1b36
#define QEMU_NVME 0x0010
#define CMD_MEMORY 2
#define CMD_MASTER 4
#define CMD_INTX_DISABLE (1 << 10)

#define REG_CAP 0x00
#define REG_INTMS 0x0c
#define REG_CC 0x14
#define REG_CSTS 0x1c
#define REG_AQA 0x24
#define REG_ASQ 0x28
#define REG_ACQ 0x30
#define CC_EN 1
#define CC_IOSQES (6 << 16)                 /* 64-byte submission entries */
#define CC_IOCQES (4 << 20)                 /* 16-byte completion entries */
#define CC_SHN_NORMAL (1 << 14)
#define CSTS_RDY 1
#define CSTS_CFS 2

#define ADMIN_CREATE_SQ 0x01
#define ADMIN_CREATE_CQ 0x05
#define ADMIN_IDENTIFY 0x06
#define IO_FLUSH 0x00
#define IO_WRITE 0x01
#define IO_READ 0x02

#define QSIZE 16                            /* entries per queue (pages hold 64 and 256) */
#define MAX_PAGES 16                        /* 64 KiB: the largest request blk.c makes */

struct sqe {
    u8 opcode, flags;
    u16 cid;
    u32 nsid;
    u64 reserved, mptr, prp1, prp2;
    u32 cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};
struct cqe { u32 result, reserved; u16 sq_head, sq_id, cid, status; };

struct queue {
    volatile struct sqe *sq;
    volatile struct cqe *cq;
    u16 tail, head, phase, id;
};

static volatile u8 *regs;
static int slot = -1;                       /* its PCI slot, once found */
static u32 dstrd;                           /* doorbell stride, in bytes */
static struct queue admin, io;
static u64 *prp_list;                       /* the PRP list of the request in flight */
static u8 *identify;
static struct blk_driver driver;
static int dead;                            /* the controller stopped answering */
u64 nvme_requests;

#define R32(off) (*(volatile u32 *)(regs + (off)))

static void w64(u32 off, u64 v) { R32(off) = (u32)v; R32(off + 4) = (u32)(v >> 32); }

static volatile u32 *doorbell(u16 qid, int head) {
    return (volatile u32 *)(regs + 0x1000 + (2 * qid + head) * dstrd);
}

static int wait_ready(int want) {
    for (long spins = 0; spins < 10000000; spins++) {
        u32 csts = R32(REG_CSTS);
        if (csts & CSTS_CFS) return -1;
        if ((csts & CSTS_RDY) == (u32)want) return 0;
    }
    return -1;
}

/* Submit one command on q and poll for its completion: 0, or -1 on an error status. */
static int submit(struct queue *q, struct sqe *cmd) {
    if (dead) return -1;
    cmd->cid = q->tail;
    q->sq[q->tail] = *cmd;
    q->tail = (q->tail + 1) % QSIZE;
    __sync_synchronize();
    *doorbell(q->id, 0) = q->tail;
    volatile struct cqe *c = &q->cq[q->head];
    for (long spins = 0; (c->status & 1) != q->phase; spins++) {   /* poll the phase tag */
        u32 csts = R32(REG_CSTS);
        if (spins > 100000000 || (csts & CSTS_CFS) || csts == 0xffffffff) {
            kprintf("nvme: no completion (CSTS %p): the disk is gone\n", (u64)csts);
            dead = 1;                                     /* (the queues are out of step) */
            return -1;
        }
    }
    __sync_synchronize();
    u16 status = c->status >> 1;
    q->head = (q->head + 1) % QSIZE;
    if (q->head == 0) q->phase ^= 1;
    *doorbell(q->id, 1) = q->head;
    if (status) kprintf("nvme: command %d on queue %d failed, status %p\n",
                        (int)cmd->opcode, (int)q->id, (u64)status);
    return status ? -1 : 0;
}

static int make_queue(struct queue *q, u16 id) {
    q->sq = kalloc();
    q->cq = kalloc();
    if (!q->sq || !q->cq) return -1;
    q->tail = q->head = 0;
    q->phase = 1;
    q->id = id;
    return 0;
}

static int init(void) {
    struct pci_dev dev;
    if (pci_find(QEMU_VENDOR, QEMU_NVME, &dev) < 0 || !dev.bar[0]) return -1;
    slot = dev.slot;
    pci_cfg_write(dev.slot, 4, 2, CMD_MEMORY | CMD_MASTER | CMD_INTX_DISABLE);
    regs = dev.bar[0];
    u64 cap = (u64)R32(REG_CAP) | (u64)R32(REG_CAP + 4) << 32;
    dstrd = 4U << ((cap >> 32) & 0xf);
    if ((cap & 0xffff) + 1 < QSIZE || ((cap >> 48) & 0xf) != 0       /* MQES, MPSMIN 4 KiB */
            || !((cap >> 37) & 1)) {                                 /* CSS: NVM */
        kprintf("nvme: the controller cannot take %d-entry NVM queues of 4 KiB pages\n", QSIZE);
        return -1;
    }
    if (0x1000 + 4 * dstrd > dev.bar_size[0]) {            /* queue 1's doorbells in BAR 0 */
        kprintf("nvme: doorbells beyond the registers (stride %d)\n", (int)dstrd);
        return -1;
    }
    R32(REG_CC) = 0;                                      /* reset */
    if (wait_ready(0) < 0) { kprintf("nvme: the controller did not reset\n"); return -1; }
    if (make_queue(&admin, 0) < 0 || make_queue(&io, 1) < 0 || !(prp_list = kalloc())
            || !(identify = kalloc()))
        panic("nvme: out of memory");
    R32(REG_AQA) = (QSIZE - 1) << 16 | (QSIZE - 1);
    w64(REG_ASQ, (u64)admin.sq);
    w64(REG_ACQ, (u64)admin.cq);
    R32(REG_INTMS) = 1;                                   /* polled: no interrupt */
    R32(REG_CC) = CC_EN | CC_IOSQES | CC_IOCQES;          /* NVM command set, 4 KiB pages */
    if (wait_ready(1) < 0) { kprintf("nvme: the controller did not start\n"); return -1; }

    struct sqe cmd = {.opcode = ADMIN_IDENTIFY, .nsid = 1, .prp1 = (u64)identify, .cdw10 = 0};
    if (submit(&admin, &cmd) < 0) return -1;              /* namespace 1 */
    u64 nsze = *(u64 *)identify;
    u8 flbas = identify[26] & 0xf;
    u32 lbaf = *(u32 *)(identify + 128 + 4 * flbas);
    if (((lbaf >> 16) & 0xff) != 9 || (lbaf & 0xffff) != 0) {
        kprintf("nvme: namespace 1 does not have 512-byte blocks without metadata\n");
        return -1;
    }
    /* The I/O completion queue (physically contiguous, no interrupts), then its SQ. */
    cmd = (struct sqe){.opcode = ADMIN_CREATE_CQ, .prp1 = (u64)io.cq,
                       .cdw10 = (QSIZE - 1) << 16 | 1, .cdw11 = 1};
    if (submit(&admin, &cmd) < 0) return -1;
    cmd = (struct sqe){.opcode = ADMIN_CREATE_SQ, .prp1 = (u64)io.sq,
                       .cdw10 = (QSIZE - 1) << 16 | 1, .cdw11 = 1 << 16 | 1};
    if (submit(&admin, &cmd) < 0) return -1;
    driver.capacity = nsze;
    return 0;
}

/* PRP1 is the first byte; a second page goes in PRP2, more in a PRP list (4.3). */
static int rw(int write, u64 sector, void *buf, u64 count) {
    u64 addr = (u64)buf, bytes = count * 512;
    u64 first = PGSIZE - (addr & (PGSIZE - 1));
    struct sqe cmd = {.opcode = write ? IO_WRITE : IO_READ, .nsid = 1, .prp1 = addr,
                      .cdw10 = (u32)sector, .cdw11 = (u32)(sector >> 32),
                      .cdw12 = (u32)(count - 1)};
    if (!count || count > 0x10000) return -1;
    if (bytes > first) {
        u64 rest = PGROUNDUP(bytes - first) / PGSIZE;
        if (rest > MAX_PAGES) return -1;
        u64 next = PGROUNDDOWN(addr) + PGSIZE;
        if (rest == 1) {
            cmd.prp2 = next;
        } else {
            for (u64 i = 0; i < rest; i++) prp_list[i] = next + i * PGSIZE;
            cmd.prp2 = (u64)prp_list;
        }
    }
    nvme_requests++;
    return submit(&io, &cmd);
}

static int flush(void) {
    struct sqe cmd = {.opcode = IO_FLUSH, .nsid = 1};
    nvme_requests++;
    return submit(&io, &cmd);
}

struct blk_driver *nvme_probe(void) {
    if (init() < 0) {
        if (regs) R32(REG_CC) = 0;                        /* leave it off, and its DMA */
        if (slot >= 0) pci_cfg_write(slot, 4, 2, CMD_MEMORY);
        regs = 0;
        return NULL;
    }
    driver.name = "nvme";
    driver.rw = rw;
    driver.flush = flush;
    return &driver;
}
