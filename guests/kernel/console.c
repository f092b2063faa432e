/* The two console devices of the console benchmark.
 *
 * 16550 (QEMU virt's, at 0x1000_0000): for each byte, wait for THR empty (LSR bit 5)
 * and write THR: two register accesses a byte, each an exit when emulated.
 * virtio console (virtio v1.2, 5.3; on virtio-pci): the bytes in one buffer on
 * transmitq0 and one notify, then wait for the device to use it. */
#include "console.h"
#include "kalloc.h"
#include "lib.h"
#include "virtio_pci.h"

#define UART ((volatile u8 *)0x10000000UL)
#define LSR_THRE 0x20
#define QSIZE 8

static struct virtio_pci vp;
static struct virtq rxq, txq;
static u8 *tx_page;
static int have_virtio;

void console_init(void) {
    if (virtio_pci_open(&vp, 3, 0) < 0) return;
    virtio_pci_queue(&vp, &rxq, 0, QSIZE);
    virtio_pci_queue(&vp, &txq, 1, QSIZE);
    if (!(tx_page = kalloc())) panic("virtio-console: out of memory");
    virtio_pci_ready(&vp);
    txq.avail->flags = 1;                               /* polled: no interrupts */
    rxq.avail->flags = 1;
    have_virtio = 1;
    kprintf("virtio-console: on PCI slot %d\n", vp.dev.slot);
}

static long uart_write(const u8 *p, u64 n) {
    for (u64 i = 0; i < n; i++) {
        while (!(UART[5] & LSR_THRE)) ;
        UART[0] = p[i];
    }
    return n;
}

static long virtio_write(const u8 *p, u64 n) {
    if (n > PGSIZE) n = PGSIZE;
    memcpy(tx_page, p, n);
    u16 i = txq.avail->idx % QSIZE;
    txq.desc[i] = (struct desc){(u64)tx_page, (u32)n, 0, 0};
    txq.avail->ring[i] = i;
    __sync_synchronize();
    txq.avail->idx++;
    __sync_synchronize();
    virtio_pci_notify(&vp, &txq);
    while (txq.used->idx != txq.avail->idx) ;          /* the device has taken it */
    txq.used_seen = txq.used->idx;
    return n;
}

long console_write(int which, const void *buf, u64 n) {
    if (which == CONSOLE_UART) return uart_write(buf, n);
    if (which == CONSOLE_VIRTIO && have_virtio) return virtio_write(buf, n);
    return -1;
}
