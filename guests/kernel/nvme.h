/* A polled NVMe driver: one I/O queue pair, interrupts masked. */
#pragma once
#include "blk.h"

struct blk_driver *nvme_probe(void);         /* the disk, if an NVMe controller is there */
extern u64 nvme_requests;
