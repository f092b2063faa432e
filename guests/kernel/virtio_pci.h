/* The virtio-pci modern transport, for the drivers on it (virtio_net.c, console.c):
 * find the device, its capabilities, negotiate, set up split virtqueues. */
#pragma once
#include "pci.h"

struct desc { u64 addr; u32 len; u16 flags, next; };

struct virtq {
    int index, size;
    struct desc *desc;
    struct { u16 flags; volatile u16 idx; u16 ring[]; } *avail;
    volatile struct { u16 flags; volatile u16 idx; struct { u32 id, len; } ring[]; } *used;
    u16 used_seen, notify_off;
};

struct virtio_pci {
    struct pci_dev dev;
    volatile u8 *common, *notify, *isr, *device;
    u32 notify_mult;
    u64 notifies;                    /* queue notifications written: exits when emulated */
};

/* Find device `id` (1af4:1040+id), reset it, accept VERSION_1 and `features`: 0, or -1. */
int virtio_pci_open(struct virtio_pci *v, int id, u64 features);
void virtio_pci_queue(struct virtio_pci *v, struct virtq *q, int index, int size);
void virtio_pci_ready(struct virtio_pci *v);          /* DRIVER_OK */
void virtio_pci_notify(struct virtio_pci *v, struct virtq *q);
