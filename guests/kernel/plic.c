/* The PLIC (RISC-V PLIC spec 1.0.0) at QEMU virt's 0x0c00_0000: source priorities at
 * +4*source, context c's enable bits at +0x2000 + 0x80*c, its threshold and
 * claim/complete at +0x200000 + 0x1000*c.  Context 1 is hart 0's S-mode (the kernel
 * runs on hart 0). */
#include "plic.h"
#include "lib.h"

#define PLIC 0x0c000000UL
#define S_CONTEXT 1
#define ENABLE (PLIC + 0x2000 + 0x80 * S_CONTEXT)
#define CONTEXT (PLIC + 0x200000 + 0x1000 * S_CONTEXT)

void plic_map(pagetable_t pt) {
    u64 pages[] = {PLIC, ENABLE & ~(PGSIZE - 1), CONTEXT};
    for (int i = 0; i < 3; i++)
        if (vm_map(pt, pages[i], pages[i], PTE_R | PTE_W) < 0) panic("cannot map the PLIC");
}

void plic_enable(int source) {
    ((volatile u32 *)PLIC)[source] = 1;
    ((volatile u32 *)ENABLE)[source / 32] |= 1u << (source % 32);
    ((volatile u32 *)CONTEXT)[0] = 0;                       /* threshold: take them all */
}

int plic_claim(void) { return ((volatile u32 *)CONTEXT)[1]; }
void plic_complete(int source) { ((volatile u32 *)CONTEXT)[1] = source; }
