/* Reads what a boot loader handed a Linux kernel through the 64-bit boot
 * protocol (struct boot_params, "the zero page") and prints it over the UART,
 * so a test can check popek's bzImage loader the way Linux would see it. */
#include <stdint.h>

static inline void outb(uint16_t p, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(p)); }
static void puts(const char *s) { while (*s) outb(0x3f8, *s++); }
static void puthex(uint64_t v) {
    char b[19] = "0x"; for (int i = 17; i >= 2; i--, v >>= 4) b[i] = "0123456789abcdef"[v & 15];
    b[18] = 0; puts(b);
}
#define U8(p, o) (*(volatile uint8_t *)((p) + (o)))
#define U32(p, o) (*(volatile uint32_t *)((p) + (o)))
#define U64(p, o) (*(volatile uint64_t *)((p) + (o)))

int bzmain(uint8_t *bp) {
    puts("bzprobe: boot_params at "); puthex((uintptr_t)bp); puts("\n");
    puts("bzprobe: loader type "); puthex(U8(bp, 0x210)); puts("\n");
    const char *cmdline = (const char *)(uintptr_t)U32(bp, 0x228);
    puts("bzprobe: cmdline '"); puts(cmdline); puts("'\n");
    int n = U8(bp, 0x1e8);
    uint64_t ram = 0;
    for (int i = 0; i < n; i++) {
        uint8_t *e = bp + 0x2d0 + 20 * i;
        if (U32(e, 16) == 1) ram += U64(e, 8);
    }
    puts("bzprobe: e820 entries "); puthex(n); puts(", usable RAM "); puthex(ram); puts("\n");
    uint32_t rd = U32(bp, 0x218), rd_size = U32(bp, 0x21c);
    puts("bzprobe: initrd at "); puthex(rd); puts(" size "); puthex(rd_size); puts(": '");
    for (uint32_t i = 0; i < rd_size && i < 64; i++) {
        char c = *(volatile char *)(uintptr_t)(rd + i);
        if (c == '\n') break;
        outb(0x3f8, c);
    }
    puts("'\n");
    return 0;
}
