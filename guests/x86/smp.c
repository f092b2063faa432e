/* A tiny SMP guest: every vCPU enters here (rdi = its index, its own stack).
 * Each finds the number of CPUs in the MP table popek wrote, reads its APIC ID
 * from CPUID, says so over the UART (under a spinlock, so lines do not mix), and
 * counts itself in; CPU 0 waits for all of them and ends the run through the
 * debug-exit port, the others halt. */
#include <stdint.h>

static inline void outb(uint16_t p, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(p)); }
static void puts(const char *s) { while (*s) outb(0x3f8, *s++); }
static void putdec(unsigned v) {
    char b[12]; int i = 11; b[i] = 0;
    do { b[--i] = '0' + v % 10; v /= 10; } while (v);
    puts(b + i);
}

static volatile int lock, arrived;

static int mp_cpus(void) {
    const uint8_t *fp = (const uint8_t *)0x9fc00;
    if (fp[0] != '_' || fp[1] != 'M' || fp[2] != 'P' || fp[3] != '_') return -1;
    const uint8_t *cfg = (const uint8_t *)(uintptr_t)*(const uint32_t *)(fp + 4);
    int entries = *(const uint16_t *)(cfg + 34), cpus = 0;
    const uint8_t *e = cfg + 44;
    for (int i = 0; i < entries; i++) {
        if (e[0] == 0) { cpus += e[3] & 1; e += 20; } else e += 8;
    }
    return cpus;
}

int cpu_main(int index) {
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    int n = mp_cpus();
    while (__atomic_exchange_n(&lock, 1, __ATOMIC_ACQUIRE)) ;
    puts("smp: cpu "); putdec(index); puts(" of "); putdec(n);
    puts(" up, APIC ID "); putdec(b >> 24); puts("\n");
    __atomic_store_n(&lock, 0, __ATOMIC_RELEASE);
    __atomic_add_fetch(&arrived, 1, __ATOMIC_SEQ_CST);
    if (index != 0)
        for (;;) __asm__ volatile("cli; hlt");
    while (arrived < n) ;
    puts("smp: all "); putdec(n); puts(" cpus up\n");
    return 0;
}

__asm__(".globl _start\n_start:\n call cpu_main\n mov $0x501, %dx\n outb %al, %dx\n"
        "1: cli\n hlt\n jmp 1b\n");
