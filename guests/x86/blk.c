/* A tiny x86-64 guest with a minimal polling virtio-blk driver, over both of
 * popek's transports: virtio-mmio (the first device, at 0xd0000000) and
 * virtio-pci (found by scanning bus 0 through ports 0xcf8/0xcfc).  On each disk
 * it reads sector 0 and prints its first line, writes a line to sector 1, and
 * flushes; then, given N at 0x8000 (a benchmark's), N timed reads over virtio-pci,
 * each waited for by polling the used ring or (0x8008 = 1) in hlt for the interrupt;
 * and given W at 0x8010, W sectors written and verified.
 * It prints over the UART at 0x3f8 and ends through the debug-exit port 0x501 with 0
 * on success.  Built freestanding with the host gcc. */
#include <stdint.h>

#define UART 0x3f8
#define VIRTIO_MMIO 0xd0000000UL
#define QSIZE 8

static inline void outb(uint16_t p, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(p)); }
static inline void outl(uint16_t p, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(p)); }
static inline uint32_t inl(uint16_t p) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }
#define R32(a) (*(volatile uint32_t *)(uintptr_t)(a))
#define R16(a) (*(volatile uint16_t *)(uintptr_t)(a))
#define R8(a) (*(volatile uint8_t *)(uintptr_t)(a))

static void puts(const char *s) { while (*s) outb(UART, *s++); }
static void puthex(uint64_t v) {
    char b[17]; for (int i = 15; i >= 0; i--, v >>= 4) b[i] = "0123456789abcdef"[v & 15];
    b[16] = 0; puts(b);
}

/* The split virtqueue (virtio 1.2, 2.7). */
struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct avail { uint16_t flags, idx, ring[QSIZE], used_event; };
struct used { uint16_t flags, idx; struct { uint32_t id, len; } ring[QSIZE]; uint16_t avail_event; };
struct req { uint32_t type, reserved; uint64_t sector; };
struct queue {
    struct desc d[QSIZE] __attribute__((aligned(16)));
    struct avail a __attribute__((aligned(2)));
    struct used u __attribute__((aligned(4)));
    struct req hdr; uint8_t data[512]; uint8_t status;
};

/* What the driver needs from a transport. */
struct transport {
    const char *name;
    uint64_t base, notify;                   /* register block; notify address (pci) */
    void (*status)(struct transport *, uint8_t);
    uint8_t (*get_status)(struct transport *);
    uint32_t (*features)(struct transport *, int word);
    void (*accept)(struct transport *, int word, uint32_t v);
    int (*queue)(struct transport *, struct queue *);
    void (*kick)(struct transport *);
};

/* -- virtio-mmio ---------------------------------------------------------- */
static void m_status(struct transport *t, uint8_t s) { R32(t->base + 0x70) = s; }
static uint8_t m_get_status(struct transport *t) { return R32(t->base + 0x70); }
static uint32_t m_features(struct transport *t, int w) { R32(t->base + 0x14) = w; return R32(t->base + 0x10); }
static void m_accept(struct transport *t, int w, uint32_t v) { R32(t->base + 0x24) = w; R32(t->base + 0x20) = v; }
static int m_queue(struct transport *t, struct queue *q) {
    R32(t->base + 0x30) = 0;
    if (R32(t->base + 0x34) < QSIZE) return -1;
    R32(t->base + 0x38) = QSIZE;
    R32(t->base + 0x80) = (uintptr_t)q->d; R32(t->base + 0x84) = 0;
    R32(t->base + 0x90) = (uintptr_t)&q->a; R32(t->base + 0x94) = 0;
    R32(t->base + 0xa0) = (uintptr_t)&q->u; R32(t->base + 0xa4) = 0;
    R32(t->base + 0x44) = 1;
    return 0;
}
static void m_kick(struct transport *t) { R32(t->base + 0x50) = 0; }

/* -- virtio-pci (modern) ---------------------------------------------------- */
static uint32_t pci_read(int slot, int reg) {
    outl(0xcf8, 0x80000000u | (slot << 11) | (reg & 0xfc));
    return inl(0xcfc);
}
static void pci_write(int slot, int reg, uint32_t v) {
    outl(0xcf8, 0x80000000u | (slot << 11) | (reg & 0xfc));
    outl(0xcfc, v);
}
/* Common configuration offsets (4.1.4.3). */
#define C_DFSEL 0x00
#define C_DF 0x04
#define C_GFSEL 0x08
#define C_GF 0x0c
#define C_STATUS 0x14
#define C_QSEL 0x16
#define C_QSIZE 0x18
#define C_QENABLE 0x1c
#define C_QNOFF 0x1e
#define C_QDESC 0x20
#define C_QDRIVER 0x28
#define C_QDEVICE 0x30
static uint64_t notify_base, isr_addr; static uint32_t notify_mult; static int irq_line;
static void p_status(struct transport *t, uint8_t s) { R8(t->base + C_STATUS) = s; }
static uint8_t p_get_status(struct transport *t) { return R8(t->base + C_STATUS); }
static uint32_t p_features(struct transport *t, int w) { R32(t->base + C_DFSEL) = w; return R32(t->base + C_DF); }
static void p_accept(struct transport *t, int w, uint32_t v) { R32(t->base + C_GFSEL) = w; R32(t->base + C_GF) = v; }
static int p_queue(struct transport *t, struct queue *q) {
    R16(t->base + C_QSEL) = 0;
    if (R16(t->base + C_QSIZE) < QSIZE) return -1;
    R16(t->base + C_QSIZE) = QSIZE;
    R32(t->base + C_QDESC) = (uintptr_t)q->d; R32(t->base + C_QDESC + 4) = 0;
    R32(t->base + C_QDRIVER) = (uintptr_t)&q->a; R32(t->base + C_QDRIVER + 4) = 0;
    R32(t->base + C_QDEVICE) = (uintptr_t)&q->u; R32(t->base + C_QDEVICE + 4) = 0;
    t->notify = notify_base + R16(t->base + C_QNOFF) * notify_mult;
    R16(t->base + C_QENABLE) = 1;
    return 0;
}
static void p_kick(struct transport *t) { R16(t->notify) = 0; }

static int pci_find_blk(struct transport *t) {
    for (int slot = 0; slot < 32; slot++) {
        if (pci_read(slot, 0) != (0x1042u << 16 | 0x1af4)) continue;
        uint64_t bar = pci_read(slot, 0x10) & ~0xfu;
        pci_write(slot, 0x04, 0x6);                    /* memory space, bus master */
        for (int cap = pci_read(slot, 0x34) & 0xff; cap; cap = (pci_read(slot, cap) >> 8) & 0xff) {
            uint32_t head = pci_read(slot, cap);
            if ((head & 0xff) != 0x09) continue;       /* vendor-specific: a virtio structure */
            int type = (head >> 24) & 0xff;
            uint32_t off = pci_read(slot, cap + 8);
            if (type == 1) t->base = bar + off;
            if (type == 2) { notify_base = bar + off; notify_mult = pci_read(slot, cap + 16); }
            if (type == 3) isr_addr = bar + off;
        }
        irq_line = pci_read(slot, 0x3c) & 0xff;
        return t->base ? 0 : -1;
    }
    return -1;
}

/* -- interrupts (the benchmark's second mode): the IOAPIC routes the function's
 * INTx line, level-triggered, to vector 0x30 of this CPU's local APIC ------------- */
#define VECTOR 0x30
#define LAPIC 0xfee00000UL
#define IOAPIC 0xfec00000UL
struct idt_gate { uint16_t lo, sel; uint8_t ist, attr; uint16_t mid; uint32_t hi, zero; };
static struct idt_gate idt[256] __attribute__((aligned(16)));
static volatile uint64_t interrupts;
struct interrupt_frame;

__attribute__((interrupt)) static void on_interrupt(struct interrupt_frame *frame) {
    (void)frame;
    (void)R8(isr_addr);                                /* reading the ISR lowers INTx */
    interrupts++;
    R32(LAPIC + 0xb0) = 0;                             /* EOI (to the IOAPIC too: level) */
}

static void ioapic_write(uint32_t reg, uint32_t v) { R32(IOAPIC) = reg; R32(IOAPIC + 0x10) = v; }

__attribute__((interrupt)) static void on_other(struct interrupt_frame *frame) {
    (void)frame;                                       /* (nothing else is unmasked) */
}

static void gate(int v, void (*fn)(struct interrupt_frame *)) {
    uint64_t a = (uint64_t)fn;
    idt[v] = (struct idt_gate){(uint16_t)a, 0x10, 0, 0x8E, (uint16_t)(a >> 16),
                               (uint32_t)(a >> 32), 0};
}

static void use_interrupts(void) {
    outb(0x21, 0xff); outb(0xa1, 0xff);                /* the 8259s: all masked */
    for (int v = 32; v < 256; v++) gate(v, on_other);
    gate(VECTOR, on_interrupt);
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) d = {sizeof idt - 1, (uint64_t)idt};
    __asm__ volatile("lidt %0" :: "m"(d));
    R32(LAPIC + 0xf0) = 0x1ff;                         /* enabled, spurious vector 0xff */
    ioapic_write(0x11 + 2 * irq_line, 0);              /* to APIC 0 */
    ioapic_write(0x10 + 2 * irq_line, VECTOR | 1u << 15);   /* level, active high, unmasked */
}

/* -- the driver --------------------------------------------------------------- */
static struct queue queues[2] __attribute__((aligned(4096)));
static int wait_for_interrupt;                         /* else: poll the used ring */

static int request(struct transport *t, struct queue *q, uint32_t type, uint64_t sector) {
    q->hdr.type = type; q->hdr.reserved = 0; q->hdr.sector = sector; q->status = 0xff;
    q->d[0] = (struct desc){(uintptr_t)&q->hdr, sizeof q->hdr, 1, 1};
    int n = 1;
    if (type != 4) {                                   /* flush carries no data */
        q->d[1] = (struct desc){(uintptr_t)q->data, 512, 1 | (type == 0 ? 2 : 0), 2};
        n = 2;
    }
    q->d[n] = (struct desc){(uintptr_t)&q->status, 1, 2, 0};
    q->d[n - 1].next = n;
    uint16_t seen = q->u.idx;
    q->a.ring[q->a.idx % QSIZE] = 0;
    __asm__ volatile("" ::: "memory");
    q->a.idx++;
    if (wait_for_interrupt) {
        /* Sleep until this request's interrupt, always (a completion that beat us here
         * has its interrupt pending: sti lets it in, and hlt returns at once). */
        __asm__ volatile("cli");
        t->kick(t);
        do __asm__ volatile("sti; hlt; cli"); while (*(volatile uint16_t *)&q->u.idx == seen);
    } else {
        t->kick(t);
    }
    while (*(volatile uint16_t *)&q->u.idx == seen) ;
    return q->status;
}

static int drive(struct transport *t, struct queue *q, const char *line) {
    t->status(t, 0);
    t->status(t, 1); t->status(t, 1 | 2);
    if (!(t->features(t, 1) & 1)) { puts("  no VIRTIO_F_VERSION_1\n"); return -1; }
    t->accept(t, 0, 0); t->accept(t, 1, 1);            /* VERSION_1 only */
    t->status(t, 1 | 2 | 8);
    if (!(t->get_status(t) & 8)) { puts("  features refused\n"); return -1; }
    if (t->queue(t, q)) { puts("  queue too small\n"); return -1; }
    t->status(t, 1 | 2 | 8 | 4);
    if (request(t, q, 0, 0)) { puts("  read failed\n"); return -1; }
    puts("  sector 0 says: ");
    for (int i = 0; i < 80 && q->data[i] && q->data[i] != '\n'; i++) outb(UART, q->data[i]);
    puts("\n");
    int i = 0;
    for (; line[i]; i++) q->data[i] = line[i];
    for (; i < 512; i++) q->data[i] = 0;
    if (request(t, q, 1, 1)) { puts("  write failed\n"); return -1; }
    if (request(t, q, 4, 0)) { puts("  flush failed\n"); return -1; }
    puts("  wrote and flushed sector 1\n");
    /* A benchmark's N (popek writes it at 0x8000 before the run; 0 for the tests):
     * N more reads of sector 0, timed with the TSC, for bench/bench_kvm_io.py. */
    uint64_t n = *(volatile uint64_t *)0x8000;
    if (n && t->notify) {
        if (*(volatile uint64_t *)0x8008) {            /* mode 1: wait with hlt for INTx */
            use_interrupts();
            wait_for_interrupt = 1;
        }
        uint32_t lo, hi;
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        uint64_t start = (uint64_t)hi << 32 | lo;
        for (uint64_t k = 0; k < n; k++)
            if (request(t, q, 0, 0)) { puts("  read failed\n"); return -1; }
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        wait_for_interrupt = 0;
        puts("  reads "); puthex(n); puts(" tsc "); puthex(((uint64_t)hi << 32 | lo) - start);
        puts(" interrupts "); puthex(interrupts); puts("\n");
    }
    /* Given W at 0x8010: W sectors written from sector 2, each with its own bytes, a
     * flush, and each read back and compared (a transfer to survive a crash of the
     * disk's driver in the middle of it: tests/test_kvm_vhost.py). */
    uint64_t w = *(volatile uint64_t *)0x8010;
    if (w && t->notify) {
        for (uint64_t k = 0; k < w; k++) {
            for (int j = 0; j < 512; j++) q->data[j] = (uint8_t)(k * 7 + j);
            if (request(t, q, 1, 2 + k)) { puts("  write failed\n"); return -1; }
        }
        if (request(t, q, 4, 0)) { puts("  flush failed\n"); return -1; }
        for (uint64_t k = 0; k < w; k++) {
            if (request(t, q, 0, 2 + k)) { puts("  read failed\n"); return -1; }
            for (int j = 0; j < 512; j++)
                if (q->data[j] != (uint8_t)(k * 7 + j)) { puts("  verify failed\n"); return -1; }
        }
        puts("  wrote and verified "); puthex(w); puts(" sectors\n");
    }
    return 0;
}

int main(void) {
    struct transport mmio = {"virtio-mmio", VIRTIO_MMIO, 0, m_status, m_get_status, m_features,
                             m_accept, m_queue, m_kick};
    struct transport pci = {"virtio-pci", 0, 0, p_status, p_get_status, p_features,
                            p_accept, p_queue, p_kick};
    int failed = 0, found = 0;
    if (R32(VIRTIO_MMIO) == 0x74726976 && R32(VIRTIO_MMIO + 8) == 2) {
        puts("virtio-mmio blk at "); puthex(VIRTIO_MMIO); puts("\n");
        failed |= drive(&mmio, &queues[0], "written by the x86 guest over virtio-mmio\n");
        found++;
    }
    if (pci_find_blk(&pci) == 0) {
        puts("virtio-pci blk, common config at "); puthex(pci.base); puts("\n");
        failed |= drive(&pci, &queues[1], "written by the x86 guest over virtio-pci\n");
        found++;
    }
    if (!found) puts("no virtio-blk device\n");
    puts(failed || !found ? "blk: FAILED\n" : "blk: ok\n");
    return failed || !found;
}

__asm__(".globl _start\n_start:\n call main\n mov %eax, %ebx\n mov $0x501, %dx\n"
        " mov %bl, %al\n outb %al, %dx\n1: hlt\n jmp 1b\n");
