/* virtio-net over virtio-pci, modern interface (virtio v1.2: 4.1.4 the capabilities,
 * 4.1.5.1 initialisation, 2.7 split virtqueues, 5.1 the network device).  Receive
 * queue 0 and transmit queue 1 of QSIZE entries, a 2 KiB buffer each; frames carry the
 * 12-byte virtio_net_hdr, all zero (no offloads).  Received frames interrupt (INTx:
 * the ISR status read acknowledges), sends do not.  Per frame sent it writes
 * the notify register; received buffers go back to the device in batches of
 * QSIZE / 2 with one notify: the MMIO writes, and so the exits, of a paravirtual NIC. */
#include "net.h"
#include "kalloc.h"
#include "lib.h"
#include "pci.h"

#define CAP_VENDOR 0x09
#define CFG_COMMON 1
#define CFG_NOTIFY 2
#define CFG_ISR 3
#define CFG_DEVICE 4
/* common configuration (4.1.4.3) */
#define DFSELECT 0x00
#define DF 0x04
#define GFSELECT 0x08
#define GF 0x0c
#define STATUS 0x14
#define Q_SELECT 0x16
#define Q_SIZE 0x18
#define Q_ENABLE 0x1c
#define Q_NOFF 0x1e
#define Q_DESC 0x20
#define Q_AVAIL 0x28
#define Q_USED 0x30
#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define F_MAC 5
#define F_VERSION_1 32
#define DESC_WRITE 2
#define QSIZE 32
#define BUFSZ 2048
#define HDR 12

struct desc { u64 addr; u32 len; u16 flags, next; };
struct avail { u16 flags; volatile u16 idx; u16 ring[QSIZE], used_event; };
struct used_elem { u32 id, len; };
struct used { u16 flags; volatile u16 idx; struct used_elem ring[QSIZE]; u16 avail_event; };

struct queue {
    struct desc *desc;
    struct avail *avail;
    volatile struct used *used;
    u8 *pages[QSIZE / 2];
    u16 used_seen, notify_off;
};

static volatile u8 *common, *notify, *isr, *devcfg;
static u32 notify_mult;
static struct queue rxq, txq;
static int rx_unposted;
u64 virtio_net_notifies;

static u8 *buffer(struct queue *q, u32 i) { return q->pages[i / 2] + (i % 2) * BUFSZ; }
static void w8(u32 off, u8 v) { *(common + off) = v; }
static void w16(u32 off, u16 v) { *(volatile u16 *)(common + off) = v; }
static void w32(u32 off, u32 v) { *(volatile u32 *)(common + off) = v; }
static void w64(u32 off, u64 v) { w32(off, (u32)v); w32(off + 4, (u32)(v >> 32)); }

static void kick(struct queue *q, int index) {
    *(volatile u16 *)(notify + q->notify_off * notify_mult) = index;
    virtio_net_notifies++;
}

static void setup(struct queue *q, int index) {
    w16(Q_SELECT, index);
    w16(Q_SIZE, QSIZE);
    q->desc = kalloc();
    q->avail = kalloc();
    q->used = kalloc();
    if (!q->desc || !q->avail || !q->used) panic("virtio-net: out of memory");
    for (int i = 0; i < QSIZE / 2; i++)
        if (!(q->pages[i] = kalloc())) panic("virtio-net: out of memory");
    for (u32 i = 0; i < QSIZE; i++)
        q->desc[i] = (struct desc){(u64)buffer(q, i), BUFSZ, index == 0 ? DESC_WRITE : 0, 0};
    q->notify_off = *(volatile u16 *)(common + Q_NOFF);
    w64(Q_DESC, (u64)q->desc);
    w64(Q_AVAIL, (u64)q->avail);
    w64(Q_USED, (u64)q->used);
    w16(Q_ENABLE, 1);
}

static int send(struct nic *n, const void *frame, u32 len) {
    struct queue *q = &txq;
    if (len + HDR > BUFSZ) return -1;
    if ((u16)(q->avail->idx - q->used->idx) >= QSIZE) return -1;   /* all still the device's */
    u32 i = q->avail->idx % QSIZE;
    u8 *b = buffer(q, i);
    memset(b, 0, HDR);
    memcpy(b + HDR, frame, len);
    q->desc[i].len = HDR + len;
    q->avail->ring[i] = i;
    __sync_synchronize();
    q->avail->idx++;
    __sync_synchronize();
    kick(q, 1);
    n->sent++;
    return 0;
}

static int pending(struct nic *n) { return rxq.used->idx != rxq.used_seen; }

/* Reading the ISR status acknowledges the interrupt (and lowers INTx). */
static void interrupt(struct nic *n) { (void)*isr; }

static int recv(struct nic *n, void *frame, u32 max) {
    struct queue *q = &rxq;
    if (q->used->idx == q->used_seen) return 0;
    __sync_synchronize();
    volatile struct used_elem *e = &q->used->ring[q->used_seen % QSIZE];
    u32 id = e->id % QSIZE, len = e->len > HDR ? e->len - HDR : 0;
    if (len > max) len = max;
    memcpy(frame, buffer(q, id) + HDR, len);
    q->used_seen++;
    q->avail->ring[q->avail->idx % QSIZE] = id;              /* the buffer back ... */
    __sync_synchronize();
    q->avail->idx++;
    if (++rx_unposted >= QSIZE / 2) {                         /* ... told in batches */
        rx_unposted = 0;
        kick(q, 0);
    }
    n->received++;
    return len ? (int)len : 0;
}

int virtio_net_probe(struct nic *n) {
    struct pci_dev dev;
    if (pci_find(0x1af4, 0x1041, &dev) < 0) return -1;
    for (u32 cap = pci_cfg_read(dev.slot, 0x34, 1); cap; cap = pci_cfg_read(dev.slot, cap + 1, 1)) {
        if (pci_cfg_read(dev.slot, cap, 1) != CAP_VENDOR) continue;
        u32 type = pci_cfg_read(dev.slot, cap + 3, 1), bar = pci_cfg_read(dev.slot, cap + 4, 1);
        u32 off = pci_cfg_read(dev.slot, cap + 8, 4);
        if (bar > 5 || !dev.bar[bar]) continue;
        volatile u8 *at = dev.bar[bar] + off;
        if (type == CFG_COMMON) common = at;
        else if (type == CFG_NOTIFY) { notify = at; notify_mult = pci_cfg_read(dev.slot, cap + 16, 4); }
        else if (type == CFG_DEVICE) devcfg = at;
        else if (type == CFG_ISR) isr = at;
    }
    if (!common || !notify || !devcfg || !isr) { kprintf("virtio-net: capabilities missing\n"); return -1; }
    w8(STATUS, 0);
    w8(STATUS, S_ACK | S_DRIVER);
    w32(DFSELECT, 1);
    if (!(*(volatile u32 *)(common + DF) & 1)) { kprintf("virtio-net: not modern\n"); return -1; }
    w32(GFSELECT, 0);
    w32(GF, 1u << F_MAC);
    w32(GFSELECT, 1);
    w32(GF, 1u << (F_VERSION_1 - 32));
    w8(STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(*(common + STATUS) & S_FEATURES_OK)) { kprintf("virtio-net: features refused\n"); return -1; }
    setup(&rxq, 0);
    setup(&txq, 1);
    for (int i = 0; i < 6; i++) n->mac[i] = devcfg[i];
    w8(STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    txq.avail->flags = 1;                      /* VIRTQ_AVAIL_F_NO_INTERRUPT: sends need none */
    for (u32 i = 0; i < QSIZE; i++) rxq.avail->ring[i] = i;  /* every receive buffer posted */
    __sync_synchronize();
    rxq.avail->idx = QSIZE;
    kick(&rxq, 0);
    n->name = "virtio-net";
    n->irq = pci_intx_source(dev.slot);
    n->send = send;
    n->recv = recv;
    n->pending = pending;
    n->interrupt = interrupt;
    return 0;
}
