/* A hostile virtio-mmio driver on the KVM backend (the x86 sibling of
 * tests/riscv/vmm/virtio_hostile.S): it lays queue 0 of the disk at 0xd0000000
 * out in forbidden ways, notifies, and prints what the device did: "X:R" when it
 * refused (DEVICE_NEEDS_RESET), "X:K" when the case ended as it must.
 *   A  used ring over the avail ring (each completion a new request: endless;
 *      this froze popek, --timeout included)
 *   B  a descriptor chain that loops      E  a buffer outside guest RAM
 *   I  the avail index 1000 ahead         L  a good read of sector 0 after all that
 * It ends through the debug-exit port 0x501 with 0.  Built like blk.c. */
#include <stdint.h>

#define UART 0x3f8
#define VIRTIO 0xd0000000UL
#define QSIZE 8

static inline void outb(uint16_t p, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(p)); }
#define R32(a) (*(volatile uint32_t *)(uintptr_t)(a))

static void putc_(char c) { outb(UART, c); }

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct ring { uint16_t flags, idx, ring[QSIZE], event; };
static struct {
    struct desc d[QSIZE] __attribute__((aligned(4096)));
    struct ring avail __attribute__((aligned(4096)));
    uint8_t used[4096] __attribute__((aligned(4096)));
    struct { uint32_t type, reserved; uint64_t sector; } hdr;
    uint8_t data[513];
} q;

static void setup(uint64_t avail, uint64_t used) {
    R32(VIRTIO + 0x70) = 0;
    R32(VIRTIO + 0x70) = 1; R32(VIRTIO + 0x70) = 3;
    R32(VIRTIO + 0x24) = 1; R32(VIRTIO + 0x20) = 1;      /* VIRTIO_F_VERSION_1 */
    R32(VIRTIO + 0x24) = 0; R32(VIRTIO + 0x20) = 0;
    R32(VIRTIO + 0x70) = 11;
    R32(VIRTIO + 0x30) = 0; R32(VIRTIO + 0x38) = QSIZE;
    R32(VIRTIO + 0x80) = (uintptr_t)q.d; R32(VIRTIO + 0x84) = 0;
    R32(VIRTIO + 0x90) = avail; R32(VIRTIO + 0x94) = 0;
    R32(VIRTIO + 0xa0) = used; R32(VIRTIO + 0xa4) = 0;
    q.avail.idx = 0; q.avail.flags = 0; *(volatile uint16_t *)(q.used + 2) = 0;
    R32(VIRTIO + 0x44) = 1;
    R32(VIRTIO + 0x70) = 15;
}

static void good_read(void) {                  /* header, 512 data bytes + the status byte */
    q.hdr.type = 0; q.hdr.reserved = 0; q.hdr.sector = 0;
    q.d[0] = (struct desc){(uintptr_t)&q.hdr, 16, 1, 1};
    q.d[1] = (struct desc){(uintptr_t)q.data, 513, 2, 0};
}

static void submit(uint16_t idx) {
    q.avail.ring[0] = 0;
    __asm__ volatile("" ::: "memory");
    q.avail.idx = idx;
    __asm__ volatile("" ::: "memory");
    R32(VIRTIO + 0x50) = 0;
}

static void report(char c) {
    putc_(c); putc_(':'); putc_(R32(VIRTIO + 0x70) & 0x40 ? 'R' : 'K'); putc_(' ');
}

int main(void) {
    uint64_t avail = (uintptr_t)&q.avail, used = (uintptr_t)q.used;
    setup(avail, avail);                        /* A */
    good_read(); submit(1); report('A');
    setup(avail, used);                         /* B */
    q.d[0] = (struct desc){(uintptr_t)&q.hdr, 16, 1, 0}; submit(1); report('B');
    setup(avail, used);                         /* E */
    q.d[0] = (struct desc){0x400000000000ull, 16, 0, 0}; submit(1); report('E');
    setup(avail, used);                         /* I */
    good_read(); submit(1000); report('I');
    setup(avail, used);                         /* L */
    good_read(); q.data[0] = 0; submit(1);
    while (*(volatile uint16_t *)(q.used + 2) == 0) ;
    putc_('L'); putc_(':');
    putc_(!(R32(VIRTIO + 0x70) & 0x40) && q.data[512] == 0 && q.data[0] == 'P' ? 'K' : 'X');
    putc_('\n');
    return 0;
}

__asm__(".globl _start\n_start:\n call main\n mov %eax, %ebx\n mov $0x501, %dx\n"
        " mov %bl, %al\n outb %al, %dx\n1: hlt\n jmp 1b\n");
