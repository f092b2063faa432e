/* A polled virtio-blk driver for the virtio-mmio transport, version 2. */
#pragma once
#include "blk.h"

struct blk_driver *virtio_blk_probe(void);   /* the disk, if a virtio-blk device is there */
extern u64 virtio_blk_requests;
