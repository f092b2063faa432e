/* The kernel's one disk: the first driver whose device is there. */
#include "blk.h"
#include "lib.h"
#include "nvme.h"
#include "virtio_blk.h"

static struct blk_driver *disk;

int blk_init(void) {
    struct blk_driver *(*probes[])(void) = {virtio_blk_probe, nvme_probe};
    for (unsigned i = 0; i < sizeof probes / sizeof probes[0] && !disk; i++)
        disk = probes[i]();
    if (!disk) return -1;
    kprintf("disk: %s, %d sectors\n", disk->name, (int)disk->capacity);
    return 0;
}

int blk_present(void) { return disk != NULL; }
u64 blk_capacity(void) { return disk ? disk->capacity : 0; }

int blk_rw(int write, u64 sector, void *buf, u64 count) {
    if (!disk || sector + count > disk->capacity || sector + count < sector) return -1;
    return disk->rw(write, sector, buf, count);
}

int blk_flush(void) { return disk ? disk->flush() : -1; }
