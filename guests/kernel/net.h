/* Network interfaces: each NIC driver (e1000.c, virtio_net.c) fills a struct nic;
 * system calls send and receive whole Ethernet frames through it.  Receiving
 * interrupts: a process with nothing to read sleeps in net_wait() until one wakes
 * it (the kernel itself runs with interrupts off; they come in user mode or in the
 * scheduler's wfi). */
#pragma once
#include "types.h"

#define MAX_NICS 2
#define FRAME_MAX 1514

struct nic {
    const char *name;
    u8 mac[6];
    int irq;                                                  /* its PLIC source */
    int (*send)(struct nic *, const void *frame, u32 len);    /* 0 sent, -1 ring full */
    int (*recv)(struct nic *, void *frame, u32 max);          /* bytes, 0: nothing yet */
    int (*pending)(struct nic *);                             /* a frame is waiting */
    void (*interrupt)(struct nic *);                          /* acknowledge the device */
    u64 sent, received, interrupts;
};

extern struct nic nics[MAX_NICS];
extern int nnics;

void net_init(void);                       /* every NIC found on PCI */
void net_interrupt(void);                  /* an external interrupt: whose, and wake waiters */
int net_wait(void);                        /* sleep until a NIC has a frame (0), or -1 */
int pci_intx_source(int slot);             /* the PLIC source of a slot's INTA# */
int e1000_probe(struct nic *);             /* 0: found and up */
int virtio_net_probe(struct nic *);
