/* virtio-net over virtio-pci (virtio v1.2, 5.1 the network device; the transport in
 * virtio_pci.c).  Receive queue 0 and transmit queue 1 of QSIZE entries, a 2 KiB
 * buffer each; frames carry the 12-byte virtio_net_hdr, all zero (no offloads).
 * Received frames interrupt (INTx: the ISR status read acknowledges), sends do not.
 * Per frame sent it writes the notify register; received buffers go back to the
 * device in batches of QSIZE / 2 with one notify: the MMIO writes, and so the exits,
 * of a paravirtual NIC. */
#include "net.h"
#include "kalloc.h"
#include "lib.h"
#include "virtio_pci.h"

#define F_MAC (1UL << 5)
#define DESC_WRITE 2
#define AVAIL_NO_INTERRUPT 1
#define QSIZE 32
#define BUFSZ 2048
#define HDR 12

static struct virtio_pci vp;
static struct virtq rxq, txq;
static u8 *rx_pages[QSIZE / 2], *tx_pages[QSIZE / 2];   /* two buffers a page */
static int rx_unposted;

static u8 *buffer(u8 **pages, u32 i) { return pages[i / 2] + (i % 2) * BUFSZ; }

static int send(struct nic *n, const void *frame, u32 len) {
    struct virtq *q = &txq;
    if (len + HDR > BUFSZ) return -1;
    if ((u16)(q->avail->idx - q->used->idx) >= QSIZE) return -1;   /* all still the device's */
    u32 i = q->avail->idx % QSIZE;
    u8 *b = buffer(tx_pages, i);
    memset(b, 0, HDR);
    memcpy(b + HDR, frame, len);
    q->desc[i].len = HDR + len;
    q->avail->ring[i] = i;
    __sync_synchronize();
    q->avail->idx++;
    __sync_synchronize();
    virtio_pci_notify(&vp, q);
    n->sent++;
    return 0;
}

static int pending(struct nic *n) { return rxq.used->idx != rxq.used_seen; }

/* Reading the ISR status acknowledges the interrupt (and lowers INTx). */
static void interrupt(struct nic *n) { (void)*vp.isr; }

static int recv(struct nic *n, void *frame, u32 max) {
    struct virtq *q = &rxq;
    if (q->used->idx == q->used_seen) return 0;
    __sync_synchronize();
    u32 id = q->used->ring[q->used_seen % QSIZE].id % QSIZE;
    u32 got = q->used->ring[q->used_seen % QSIZE].len;
    u32 len = got > HDR ? got - HDR : 0;
    if (len > max) len = max;
    memcpy(frame, buffer(rx_pages, id) + HDR, len);
    q->used_seen++;
    q->avail->ring[q->avail->idx % QSIZE] = id;              /* the buffer back ... */
    __sync_synchronize();
    q->avail->idx++;
    if (++rx_unposted >= QSIZE / 2) {                         /* ... told in batches */
        rx_unposted = 0;
        virtio_pci_notify(&vp, q);
    }
    n->received++;
    return (int)len;
}

int virtio_net_probe(struct nic *n) {
    if (virtio_pci_open(&vp, 1, F_MAC) < 0) return -1;
    virtio_pci_queue(&vp, &rxq, 0, QSIZE);
    virtio_pci_queue(&vp, &txq, 1, QSIZE);
    for (int i = 0; i < QSIZE / 2; i++)
        if (!(rx_pages[i] = kalloc()) || !(tx_pages[i] = kalloc())) panic("virtio-net: out of memory");
    for (u32 i = 0; i < QSIZE; i++) {
        rxq.desc[i] = (struct desc){(u64)buffer(rx_pages, i), BUFSZ, DESC_WRITE, 0};
        txq.desc[i] = (struct desc){(u64)buffer(tx_pages, i), 0, 0, 0};
    }
    for (int i = 0; i < 6; i++) n->mac[i] = vp.device[i];
    virtio_pci_ready(&vp);
    txq.avail->flags = AVAIL_NO_INTERRUPT;                    /* sends need no interrupt */
    for (u32 i = 0; i < QSIZE; i++) rxq.avail->ring[i] = i;   /* every receive buffer posted */
    __sync_synchronize();
    rxq.avail->idx = QSIZE;
    virtio_pci_notify(&vp, &rxq);
    n->name = "virtio-net";
    n->irq = pci_intx_source(vp.dev.slot);
    n->send = send;
    n->recv = recv;
    n->pending = pending;
    n->interrupt = interrupt;
    return 0;
}
