/* The disk, whichever driver found it: a virtio-blk on virtio-mmio or an NVMe
 * controller on PCIe (emulated by the VMM, or a physical one passed through). */
#pragma once
#include "types.h"

struct blk_driver {
    const char *name;
    u64 capacity;                                   /* in 512-byte sectors */
    int (*rw)(int write, u64 sector, void *buf, u64 count);   /* buf: physical, <= 64 KiB */
    int (*flush)(void);
};

int blk_init(void);                 /* 0 if a disk was found and set up */
int blk_present(void);
u64 blk_capacity(void);
int blk_rw(int write, u64 sector, void *buf, u64 count);
int blk_flush(void);
