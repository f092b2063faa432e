/* virtio-blk over virtio-mmio (virtio v1.2: 4.2.2 registers, 4.2.3.1 device
 * initialisation, 2.7 split virtqueues, 5.2 the block device).  One queue of
 * QSIZE descriptors; requests are synchronous (the kernel polls the used ring:
 * it runs with interrupts off). */
#include "virtio_blk.h"
#include "fdt.h"
#include "kalloc.h"
#include "lib.h"

#define R(off) (*(volatile u32 *)(base + (off)))
#define MMIO_MAGIC 0x000
#define MMIO_VERSION 0x004
#define MMIO_DEVICE_ID 0x008
#define MMIO_DEVICE_FEATURES 0x010
#define MMIO_DEVICE_FEATURES_SEL 0x014
#define MMIO_DRIVER_FEATURES 0x020
#define MMIO_DRIVER_FEATURES_SEL 0x024
#define MMIO_QUEUE_SEL 0x030
#define MMIO_QUEUE_NUM_MAX 0x034
#define MMIO_QUEUE_NUM 0x038
#define MMIO_QUEUE_READY 0x044
#define MMIO_QUEUE_NOTIFY 0x050
#define MMIO_INTERRUPT_STATUS 0x060
#define MMIO_INTERRUPT_ACK 0x064
#define MMIO_STATUS 0x070
#define MMIO_QUEUE_DESC 0x080
#define MMIO_QUEUE_DRIVER 0x090
#define MMIO_QUEUE_DEVICE 0x0a0
#define MMIO_CONFIG 0x100

#define STATUS_ACK 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define F_FLUSH (1UL << 9)
#define F_VERSION_1 (1UL << 32)
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define DESC_NEXT 1
#define DESC_WRITE 2
#define QSIZE 32
#define MAX_SEGS (QSIZE - 2)

struct desc { u64 addr; u32 len; u16 flags, next; };
struct avail { u16 flags, idx, ring[QSIZE], used_event; };
struct used_elem { u32 id, len; };
struct used { u16 flags, idx; struct used_elem ring[QSIZE]; u16 avail_event; };
struct req { u32 type, reserved; u64 sector; };

static volatile u8 *base;
static struct desc *desc;
static struct avail *avail;
static volatile struct used *used;
static struct req *hdr;
static volatile u8 *status;
static u16 used_seen;
static u64 capacity;
static int has_flush;
u64 virtio_blk_requests;

static void set_addr(u32 reg, void *p) {
    R(reg) = (u32)(u64)p;
    R(reg + 4) = (u32)((u64)p >> 32);
}

static struct blk_driver driver;

static int init(void) {
    for (int i = 0; i < boot_info.nvirtio; i++) {
        base = (volatile u8 *)boot_info.virtio[i];
        if (R(MMIO_MAGIC) == 0x74726976 && R(MMIO_VERSION) == 2 && R(MMIO_DEVICE_ID) == 2) break;
        base = NULL;
    }
    if (!base) return -1;
    R(MMIO_STATUS) = 0;                                    /* reset */
    R(MMIO_STATUS) = STATUS_ACK;
    R(MMIO_STATUS) = STATUS_ACK | STATUS_DRIVER;
    R(MMIO_DEVICE_FEATURES_SEL) = 0;
    u64 features = R(MMIO_DEVICE_FEATURES);
    R(MMIO_DEVICE_FEATURES_SEL) = 1;
    features |= (u64)R(MMIO_DEVICE_FEATURES) << 32;
    if (!(features & F_VERSION_1)) { kprintf("virtio-blk: not a modern device\n"); return -1; }
    u64 want = F_VERSION_1 | (features & F_FLUSH);
    has_flush = !!(want & F_FLUSH);
    R(MMIO_DRIVER_FEATURES_SEL) = 0;
    R(MMIO_DRIVER_FEATURES) = (u32)want;
    R(MMIO_DRIVER_FEATURES_SEL) = 1;
    R(MMIO_DRIVER_FEATURES) = (u32)(want >> 32);
    R(MMIO_STATUS) = STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK;
    if (!(R(MMIO_STATUS) & STATUS_FEATURES_OK)) { kprintf("virtio-blk: features refused\n"); return -1; }
    R(MMIO_QUEUE_SEL) = 0;
    if (R(MMIO_QUEUE_NUM_MAX) < QSIZE) { kprintf("virtio-blk: queue too small\n"); return -1; }
    R(MMIO_QUEUE_NUM) = QSIZE;
    desc = kalloc();
    avail = kalloc();
    used = kalloc();
    hdr = kalloc();
    status = (volatile u8 *)hdr + 512;
    if (!desc || !avail || !used || !hdr) panic("virtio-blk: out of memory");
    set_addr(MMIO_QUEUE_DESC, desc);
    set_addr(MMIO_QUEUE_DRIVER, avail);
    set_addr(MMIO_QUEUE_DEVICE, (void *)used);
    R(MMIO_QUEUE_READY) = 1;
    R(MMIO_STATUS) = STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
    capacity = *(volatile u64 *)(base + MMIO_CONFIG);
    return 0;
}


/* One request: header, then `count` 512-byte sectors at buf (page by page), then status. */
static int request(u32 type, u64 sector, u8 *buf, u64 count) {
    hdr->type = type;
    hdr->reserved = 0;
    hdr->sector = sector;
    *status = 0xff;
    int n = 0;
    desc[n] = (struct desc){(u64)hdr, sizeof *hdr, DESC_NEXT, 1};
    n++;
    u64 bytes = count * 512;
    for (u64 off = 0; off < bytes;) {
        u64 len = PGSIZE - (((u64)buf + off) & (PGSIZE - 1));
        if (len > bytes - off) len = bytes - off;
        if (n > MAX_SEGS) return -1;
        desc[n] = (struct desc){(u64)buf + off, (u32)len,
                                (u16)(DESC_NEXT | (type == T_IN ? DESC_WRITE : 0)), (u16)(n + 1)};
        n++;
        off += len;
    }
    desc[n] = (struct desc){(u64)status, 1, DESC_WRITE, 0};
    avail->ring[avail->idx % QSIZE] = 0;
    __sync_synchronize();
    avail->idx++;
    __sync_synchronize();
    R(MMIO_QUEUE_NOTIFY) = 0;
    while (used->idx == used_seen) ;                     /* poll for completion */
    used_seen = used->idx;
    R(MMIO_INTERRUPT_ACK) = R(MMIO_INTERRUPT_STATUS);
    virtio_blk_requests++;
    return *status == 0 ? 0 : -1;
}

static int rw(int write, u64 sector, void *buf, u64 count) {
    return request(write ? T_OUT : T_IN, sector, buf, count);
}

static int flush(void) { return has_flush ? request(T_FLUSH, 0, NULL, 0) : 0; }

struct blk_driver *virtio_blk_probe(void) {
    if (init() < 0) return NULL;
    driver = (struct blk_driver){"virtio-blk", capacity, rw, flush};
    return &driver;
}
