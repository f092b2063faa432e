/* Freestanding helpers: memory, strings, a small printf over the SBI console. */
#include <stdarg.h>
#include "lib.h"
#include "sbi.h"

void *memset(void *d, int c, size_t n) {
    u8 *p = d;
    if (!(((u64)p | n) & 7)) {                  /* aligned: a word at a time */
        u64 w = (u8)c * 0x0101010101010101UL, *q = (u64 *)p;
        for (n /= 8; n--;) *q++ = w;
        return d;
    }
    while (n--) *p++ = (u8)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n) {
    u8 *dp = d;
    const u8 *sp = s;
    if (!(((u64)dp | (u64)sp | n) & 7)) {        /* aligned: a word at a time */
        u64 *dw = (u64 *)dp;
        const u64 *sw = (const u64 *)sp;
        for (n /= 8; n--;) *dw++ = *sw++;
        return d;
    }
    while (n--) *dp++ = *sp++;
    return d;
}

int memcmp(const void *a, const void *b, size_t n) {
    const u8 *x = a, *y = b;
    for (; n--; x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n) {
    for (; n && *a && *a == *b; n--, a++, b++) ;
    return n ? (u8)*a - (u8)*b : 0;
}

const char *strstr(const char *h, const char *n) {
    size_t len = strlen(n);
    for (; *h; h++)
        if (!strncmp(h, n, len)) return h;
    return NULL;
}

void kputs(const char *s) {
    while (*s) sbi_putchar(*s++);
}

static void put_num(u64 v, int base, int width, int neg) {
    char buf[24];
    int i = 0;
    do { buf[i++] = "0123456789abcdef"[v % base]; v /= base; } while (v);
    while (i < width) buf[i++] = '0';
    if (neg) sbi_putchar('-');
    while (i) sbi_putchar(buf[--i]);
}

static void vkprintf(const char *fmt, va_list ap) {
    for (; *fmt; fmt++) {
        if (*fmt != '%') { sbi_putchar(*fmt); continue; }
        int width = 0, lng = 0;
        fmt++;
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') { lng = 1; fmt++; }
        switch (*fmt) {
        case 'd': { i64 v = lng ? va_arg(ap, i64) : va_arg(ap, int);
                    put_num(v < 0 ? -(u64)v : (u64)v, 10, width, v < 0); break; }
        case 'u': put_num(lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, width, 0); break;
        case 'x': put_num(lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, width, 0); break;
        case 'p': kputs("0x"); put_num(va_arg(ap, u64), 16, 0, 0); break;
        case 's': { const char *s = va_arg(ap, const char *); kputs(s ? s : "(null)"); break; }
        case 'c': sbi_putchar(va_arg(ap, int)); break;
        case '%': sbi_putchar('%'); break;
        default: sbi_putchar('%'); sbi_putchar(*fmt); break;
        }
    }
}

void kprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vkprintf(fmt, ap);
    va_end(ap);
}

void shutdown(int failure) {
    sbi_shutdown(failure);
    for (;;) asm volatile("wfi");
}

void panic(const char *fmt, ...) {
    va_list ap;
    kputs("\npanic: ");
    va_start(ap, fmt);
    vkprintf(fmt, ap);
    va_end(ap);
    kputs("\n");
    shutdown(1);
}
