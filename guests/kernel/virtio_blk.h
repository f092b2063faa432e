/* A polled virtio-blk driver for the virtio-mmio transport, version 2. */
#pragma once
#include "types.h"

int virtio_blk_init(void);          /* 0 if a block device was found and set up */
int virtio_blk_present(void);
u64 virtio_blk_capacity(void);      /* in 512-byte sectors */
int virtio_blk_rw(int write, u64 sector, void *buf, u64 count);
int virtio_blk_flush(void);
extern u64 virtio_blk_requests;
