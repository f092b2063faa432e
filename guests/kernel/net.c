/* The NICs this kernel drives, in the order found: e1000s, then virtio-nets. */
#include "net.h"
#include "lib.h"
#include "plic.h"
#include "proc.h"

struct nic nics[MAX_NICS];
int nnics;

void net_init(void) {
    int (*probes[])(struct nic *) = {e1000_probe, virtio_net_probe};
    for (int i = 0; i < 2 && nnics < MAX_NICS; i++)
        if (probes[i](&nics[nnics]) == 0) {
            struct nic *n = &nics[nnics++];
            plic_enable(n->irq);
            csr_set(sie, SIE_SEIE);
            kprintf("net%d: %s %2x:%2x:%2x:%2x:%2x:%2x, PLIC source %d\n", nnics - 1, n->name,
                    n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5], n->irq);
        }
}

/* QEMU virt's INTx swizzle (its device tree's interrupt-map): INTA# of slot s is PLIC
 * source 32 + s % 4. */
int pci_intx_source(int slot) { return 32 + slot % 4; }

void net_interrupt(void) {
    int source;
    while ((source = plic_claim()) != 0) {
        for (int i = 0; i < nnics; i++)
            if (nics[i].irq == source) {
                nics[i].interrupt(&nics[i]);
                nics[i].interrupts++;
            }
        plic_complete(source);
    }
    wakeup_net();
}

int net_wait(void) {
    if (!nnics) return -1;
    for (;;) {
        for (int i = 0; i < nnics; i++)
            if (nics[i].pending(&nics[i])) return 0;
        if (current->killed) return -1;
        sleep_net();               /* (interrupts are off until the scheduler's wfi) */
    }
}
