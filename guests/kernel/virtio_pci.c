/* virtio-pci, modern (virtio v1.2, 4.1.4: the vendor capabilities name the BAR and
 * offset of the common configuration, notifications, ISR status and device
 * configuration; 4.1.5.1: initialisation). */
#include "virtio_pci.h"
#include "kalloc.h"
#include "lib.h"

#define CAP_VENDOR 0x09
#define CFG_COMMON 1
#define CFG_NOTIFY 2
#define CFG_ISR 3
#define CFG_DEVICE 4
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

static void w8(struct virtio_pci *v, u32 off, u8 x) { *(v->common + off) = x; }
static void w16(struct virtio_pci *v, u32 off, u16 x) { *(volatile u16 *)(v->common + off) = x; }
static void w32(struct virtio_pci *v, u32 off, u32 x) { *(volatile u32 *)(v->common + off) = x; }
static void w64(struct virtio_pci *v, u32 off, u64 x) { w32(v, off, (u32)x); w32(v, off + 4, (u32)(x >> 32)); }

int virtio_pci_open(struct virtio_pci *v, int id, u64 features) {
    struct pci_dev *dev = &v->dev;
    if (pci_find(0x1af4, 0x1040 + id, dev) < 0) return -1;
    for (u32 cap = pci_cfg_read(dev->slot, 0x34, 1); cap; cap = pci_cfg_read(dev->slot, cap + 1, 1)) {
        if (pci_cfg_read(dev->slot, cap, 1) != CAP_VENDOR) continue;
        u32 type = pci_cfg_read(dev->slot, cap + 3, 1), bar = pci_cfg_read(dev->slot, cap + 4, 1);
        u32 off = pci_cfg_read(dev->slot, cap + 8, 4);
        if (bar > 5 || !dev->bar[bar]) continue;
        volatile u8 *at = dev->bar[bar] + off;
        if (type == CFG_COMMON) v->common = at;
        else if (type == CFG_NOTIFY) { v->notify = at; v->notify_mult = pci_cfg_read(dev->slot, cap + 16, 4); }
        else if (type == CFG_ISR) v->isr = at;
        else if (type == CFG_DEVICE) v->device = at;
    }
    if (!v->common || !v->notify || !v->isr || !v->device) {
        kprintf("virtio-pci %d: capabilities missing\n", dev->slot);
        return -1;
    }
    w8(v, STATUS, 0);
    w8(v, STATUS, S_ACK | S_DRIVER);
    w32(v, DFSELECT, 1);
    if (!(*(volatile u32 *)(v->common + DF) & 1)) { kprintf("virtio-pci: not modern\n"); return -1; }
    w32(v, GFSELECT, 0);
    w32(v, GF, (u32)features);
    w32(v, GFSELECT, 1);
    w32(v, GF, 1 | (u32)(features >> 32));                /* VIRTIO_F_VERSION_1 */
    w8(v, STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(*(v->common + STATUS) & S_FEATURES_OK)) { kprintf("virtio-pci: features refused\n"); return -1; }
    return 0;
}

void virtio_pci_queue(struct virtio_pci *v, struct virtq *q, int index, int size) {
    q->index = index;
    q->size = size;
    w16(v, Q_SELECT, index);
    w16(v, Q_SIZE, size);
    q->desc = kalloc();
    q->avail = kalloc();
    q->used = kalloc();
    if (!q->desc || !q->avail || !q->used) panic("virtio-pci: out of memory");
    q->notify_off = *(volatile u16 *)(v->common + Q_NOFF);
    w64(v, Q_DESC, (u64)q->desc);
    w64(v, Q_AVAIL, (u64)q->avail);
    w64(v, Q_USED, (u64)q->used);
    w16(v, Q_ENABLE, 1);
}

void virtio_pci_ready(struct virtio_pci *v) {
    w8(v, STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

void virtio_pci_notify(struct virtio_pci *v, struct virtq *q) {
    *(volatile u16 *)(v->notify + q->notify_off * v->notify_mult) = q->index;
    v->notifies++;
}
