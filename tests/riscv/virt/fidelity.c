/* What guests written for QEMU's virt board rely on, checked the same way on QEMU
 * and on popek: tests/test_virt_fidelity.py runs this under both and compares what
 * it prints, line for line.  Bare M-mode, no interrupt taken: the PLIC is watched
 * through its pending, claim and complete registers.  Needs one virtio-blk disk and
 * a virtio-rng-pci (modern: QEMU's disable-legacy=on). */
#include <stdint.h>

#define UART ((volatile uint8_t *)0x10000000UL)
#define VIRTIO(slot) ((volatile uint32_t *)(0x10001000UL + 0x1000UL * (slot)))
#define PLIC_PRIORITY ((volatile uint32_t *)0x0C000000UL)
#define PLIC_PENDING ((volatile uint32_t *)0x0C001000UL)
#define PLIC_ENABLE0 ((volatile uint32_t *)0x0C002000UL)      /* context 0: hart 0, M */
#define PLIC_THRESHOLD0 ((volatile uint32_t *)0x0C200000UL)
#define PLIC_CLAIM0 ((volatile uint32_t *)0x0C200004UL)
#define ECAM(slot, off) (*(volatile uint32_t *)(0x30000000UL + ((slot) << 15) + (off)))
#define UART_IRQ 10
#define STATUS_ACK 1
#define STATUS_DRIVER 2
#define STATUS_FEATURES_OK 8

static void putc_(char c) { while (!(UART[5] & 0x20)) ; UART[0] = c; }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void puthex(uint32_t v) {
    int started = 0;
    for (int i = 28; i >= 0; i -= 4) {
        int d = (v >> i) & 15;
        if (d || started || i == 0) { putc_("0123456789abcdef"[d]); started = 1; }
    }
}

static uint32_t uart_pending(void) { return PLIC_PENDING[0] >> UART_IRQ & 1; }

int main(void) {
    /* virtio-mmio: the identity registers of the disk, wherever it is. */
    volatile uint32_t *blk = 0;
    for (int slot = 0; slot < 8; slot++)
        if (VIRTIO(slot)[2] == 2) blk = VIRTIO(slot);
    if (!blk) { puts_("no virtio-blk disk\n"); return 1; }
    puts_("virtio: magic="); puthex(blk[0]);
    puts_(" version="); puthex(blk[1]);
    puts_(" device="); puthex(blk[2]);
    puts_(" vendor="); puthex(blk[3]); puts_("\n");

    /* A driver on the modern transport that accepts no feature, not even VERSION_1. */
    blk[0x70 / 4] = 0;
    blk[0x70 / 4] = STATUS_ACK | STATUS_DRIVER;
    for (uint32_t sel = 0; sel < 2; sel++) {
        blk[0x24 / 4] = sel;
        blk[0x20 / 4] = 0;
    }
    blk[0x70 / 4] = STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK;
    puts_("virtio: FEATURES_OK without VERSION_1: ");
    puts_(blk[0x70 / 4] & STATUS_FEATURES_OK ? "kept\n" : "refused\n");
    blk[0x70 / 4] = 0;

    /* The PLIC and the 16550: a THR-empty interrupt the kernel never acknowledges. */
    PLIC_PRIORITY[UART_IRQ] = 1;
    PLIC_ENABLE0[0] = 1u << UART_IRQ;
    PLIC_THRESHOLD0[0] = 0;
    UART[1] = 0x03;                                /* IER: rx data, THR empty */
    uint32_t p1 = uart_pending(), c1 = *PLIC_CLAIM0;
    *PLIC_CLAIM0 = c1;                             /* complete, the line still high */
    uint32_t p2 = uart_pending(), c2 = *PLIC_CLAIM0;
    if (c2) *PLIC_CLAIM0 = c2;
    UART[4] = 0x10;                                /* loopback: a byte comes in ... */
    UART[0] = 'x';                                 /* ... while the line is high */
    uint32_t p3 = uart_pending(), c3 = *PLIC_CLAIM0;
    uint32_t got = UART[0];
    *PLIC_CLAIM0 = c3;
    UART[4] = 0;
    UART[1] = 0;
    (void)UART[2];                                 /* IIR: THR empty acknowledged */
    puts_("plic: uart raised: pending="); puthex(p1); puts_(" claim="); puthex(c1);
    puts_("\nplic: completed, line still high: pending="); puthex(p2);
    puts_(" claim="); puthex(c2);
    puts_("\nplic: a byte received while high: pending="); puthex(p3);
    puts_(" claim="); puthex(c3); puts_(" byte="); puthex(got);

    /* PCIe through ECAM: the host bridge, a virtio-rng-pci in the first free slot,
     * nothing after it. */
    for (uint32_t slot = 0; slot < 3; slot++) {
        puts_("\npci: 00:0"); puthex(slot); puts_(".0 id="); puthex(ECAM(slot, 0));
        if (ECAM(slot, 0) == 0xffffffff) continue;
        puts_(" class="); puthex(ECAM(slot, 8)); puts_(" pin="); puthex(ECAM(slot, 0x3c) >> 8 & 0xff);
    }
    puts_("\nfidelity: done\n");
    return 0;
}
