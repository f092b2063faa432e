/* PCI on the virt board's ECAM host: find a function on bus 0, place its memory BARs
 * in the host's 32-bit window (no firmware does it on this board), enable it. */
#pragma once
#include "types.h"
#include "vm.h"

#define PCI_BAR_VA 0x20000000UL      /* where the kernel sees the BAR window (below 1 GiB) */
#define PCI_BAR_SPAN 0x100000UL      /* 1 MiB of BARs, mapped at boot */

struct pci_dev {
    int slot;
    u16 vendor, device;
    volatile u8 *bar[6];             /* memory BARs, as the kernel maps them (0: none) */
    u32 bar_size[6];
};

void pci_map(pte_t *pt);                             /* vm_init: ECAM and the BAR window */
int pci_find(u16 vendor, u16 device, struct pci_dev *out);   /* 0 found, -1 not */
u32 pci_cfg_read(int slot, int off, int size);
void pci_cfg_write(int slot, int off, int size, u32 value);
