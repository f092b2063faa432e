/* PCI through ECAM (PCIe 4.0, 7.2.2): function 0 of each slot on bus 0 at
 * ecam + (slot << 15).  BARs are sized by writing all ones and reading back, placed
 * one after another (each aligned to its size) in the host's memory window, and the
 * function gets memory decoding and bus mastering.  I/O BARs are left off; a 64-bit
 * BAR (QEMU's virtio-pci puts its registers in one) is placed below 4 GiB. */
#include "pci.h"
#include "fdt.h"
#include "lib.h"
#include "memlayout.h"
#include "vm.h"

#define CMD_MEMORY 2
#define CMD_MASTER 4

static u64 next_bar;                 /* the next free byte of the window, as an offset */

static volatile u8 *cfg(int slot, int off) {
    return (volatile u8 *)(boot_info.pcie_ecam + ((u64)slot << 15) + off);
}

u32 pci_cfg_read(int slot, int off, int size) {
    if (size == 1) return *cfg(slot, off);
    if (size == 2) return *(volatile u16 *)cfg(slot, off);
    return *(volatile u32 *)cfg(slot, off);
}

void pci_cfg_write(int slot, int off, int size, u32 value) {
    if (size == 1) *cfg(slot, off) = value;
    else if (size == 2) *(volatile u16 *)cfg(slot, off) = value;
    else *(volatile u32 *)cfg(slot, off) = value;
}

void pci_map(pte_t *pt) {
    if (!boot_info.pcie_ecam) return;
    for (u64 a = 0; a < (1UL << 20); a += PGSIZE)           /* bus 0's configuration space */
        if (vm_map(pt, boot_info.pcie_ecam + a, boot_info.pcie_ecam + a, PTE_R | PTE_W) < 0)
            panic("cannot map the PCIe ECAM");
    for (u64 a = 0; a < PCI_BAR_SPAN; a += PGSIZE)
        if (vm_map(pt, PCI_BAR_VA + a, boot_info.pcie_mem + a, PTE_R | PTE_W) < 0)
            panic("cannot map the PCI window");
}

int pci_find(u16 vendor, u16 device, struct pci_dev *out) {
    if (!boot_info.pcie_ecam) return -1;
    for (int slot = 0; slot < 32; slot++) {
        u32 id = pci_cfg_read(slot, 0, 4);
        if ((id & 0xffff) != vendor || id >> 16 != device) continue;
        out->slot = slot;
        out->vendor = vendor;
        out->device = device;
        pci_cfg_write(slot, 4, 2, 0);                       /* decoding off while placing */
        for (int i = 0; i < 6; i++) {
            int reg = 0x10 + 4 * i;
            out->bar[i] = 0;
            out->bar_size[i] = 0;
            u32 old = pci_cfg_read(slot, reg, 4);
            pci_cfg_write(slot, reg, 4, 0xffffffff);
            u32 mask = pci_cfg_read(slot, reg, 4);
            if (!mask || (old & 1)) {                       /* absent, or I/O: left off */
                pci_cfg_write(slot, reg, 4, old);
                continue;
            }
            u32 size = ~(mask & ~0xfU) + 1;
            int wide = (mask & 6) == 4;                     /* a 64-bit BAR: two registers */
            next_bar = (next_bar + size - 1) & ~(u64)(size - 1);
            if (next_bar + size > PCI_BAR_SPAN || next_bar + size > boot_info.pcie_mem_size)
                panic("PCI %d: BAR %d (%d bytes) does not fit the window", slot, i, (int)size);
            pci_cfg_write(slot, reg, 4, (u32)(boot_info.pcie_mem + next_bar));
            if (wide) pci_cfg_write(slot, reg + 4, 4, (u32)((boot_info.pcie_mem + next_bar) >> 32));
            out->bar[i] = (volatile u8 *)(PCI_BAR_VA + next_bar);
            out->bar_size[i] = size;
            next_bar += size;
            if (wide) i++;                                  /* (its upper half) */
        }
        pci_cfg_write(slot, 4, 2, CMD_MEMORY | CMD_MASTER);
        return 0;
    }
    return -1;
}
