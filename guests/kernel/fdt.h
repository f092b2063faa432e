/* What the kernel takes from the device tree, read once at boot. */
#pragma once
#include "types.h"

#define MAX_VIRTIO 8

struct boot_info {
    u64 ram_base, ram_size;
    u64 timebase;                    /* mtime ticks per second */
    u64 virtio[MAX_VIRTIO];          /* virtio-mmio register windows */
    int nvirtio;
    u64 pcie_ecam;                   /* the PCIe host's ECAM (0: none) */
    u64 pcie_mem, pcie_mem_size;     /* its 32-bit memory window, where BARs go */
    char bootargs[256];
    int has_fp;                      /* riscv,isa has F and D: user code may use FP */
};

extern struct boot_info boot_info;
void fdt_parse(const void *dtb);
