/* User-side helpers: printf into a buffer, one write() per call. */
#include <stdarg.h>
#include "ulib.h"

void *memcpy(void *d, const void *s, u64 n) {
    u8 *dp = d;
    const u8 *sp = s;
    while (n--) *dp++ = *sp++;
    return d;
}

int memcmp(const void *a, const void *b, u64 n) {
    const u8 *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q) return *p - *q;
    return 0;
}

void *memset(void *d, int c, u64 n) {
    u8 *p = d;
    while (n--) *p++ = (u8)c;
    return d;
}

u64 strlen(const char *s) { u64 n = 0; while (s[n]) n++; return n; }

int strcmp(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return (u8)*a - (u8)*b;
}

const char *strstr(const char *h, const char *n) {
    u64 len = strlen(n);
    for (; *h; h++) {
        u64 i = 0;
        while (i < len && h[i] == n[i]) i++;
        if (i == len) return h;
    }
    return 0;
}

struct out { char buf[256]; int n; };

static void put(struct out *o, char c) {
    if (o->n == sizeof o->buf) { sys_write(1, o->buf, o->n); o->n = 0; }
    o->buf[o->n++] = c;
}

static void num(struct out *o, u64 v, int base, int neg) {
    char t[24];
    int i = 0;
    do { t[i++] = "0123456789abcdef"[v % base]; v /= base; } while (v);
    if (neg) put(o, '-');
    while (i) put(o, t[--i]);
}

void printf(const char *fmt, ...) {
    struct out o;
    o.n = 0;
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') { put(&o, *fmt); continue; }
        int lng = 0;
        while (*++fmt == 'l') lng = 1;
        switch (*fmt) {
        case 'd': { i64 v = lng ? va_arg(ap, i64) : va_arg(ap, int);
                    num(&o, v < 0 ? -(u64)v : (u64)v, 10, v < 0); break; }
        case 'u': num(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, 0); break;
        case 'x': num(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, 0); break;
        case 's': { const char *s = va_arg(ap, const char *); while (*s) put(&o, *s++); break; }
        case 'c': put(&o, (char)va_arg(ap, int)); break;
        default: put(&o, *fmt); break;
        }
    }
    va_end(ap);
    if (o.n) sys_write(1, o.buf, o.n);
}
