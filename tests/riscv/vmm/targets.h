/* What the VMM's malicious test guests share: the targets they are given on their
 * command line, `dma=A:B:...` (hex, colon-separated: a --vm option's value has no
 * commas), read from the device tree's /chosen/bootargs the VMM passed in a1.
 * Needs u8/u32/u64 (e1000.h has them). */
static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static int streq(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return *a == *b; }

/* The chosen node's bootargs, from the device tree the VMM passed in a1. */
static const char *bootargs(const u8 *fdt) {
    if (be32(fdt) != 0xd00dfeed) return "";
    const u8 *p = fdt + be32(fdt + 8);
    const char *strings = (const char *)fdt + be32(fdt + 12);
    for (;;) {
        u32 token = be32(p);
        p += 4;
        if (token == 1) {                               /* FDT_BEGIN_NODE: skip the name */
            while (*p) p++;
            p = (const u8 *)(((u64)p + 4) & ~3UL);
        } else if (token == 3) {                        /* FDT_PROP */
            u32 len = be32(p), name = be32(p + 4);
            if (streq(strings + name, "bootargs")) return (const char *)p + 8;
            p = (const u8 *)(((u64)p + 8 + len + 3) & ~3UL);
        } else if (token != 2 && token != 4) {          /* not END_NODE, not NOP: the end */
            return "";
        }
    }
}

static int targets(const char *args, u64 *out, int n) {
    while (*args && !(args[0] == 'd' && args[1] == 'm' && args[2] == 'a' && args[3] == '='))
        args++;
    if (!*args) return 0;
    args += 4;
    int k = 0;
    while (k < n) {
        u64 v = 0;
        if (args[0] == '0' && args[1] == 'x') args += 2;
        for (;; args++) {
            char c = *args;
            if (c >= '0' && c <= '9') v = v * 16 + (c - '0');
            else if (c >= 'a' && c <= 'f') v = v * 16 + (c - 'a' + 10);
            else break;
        }
        out[k++] = v;
        if (*args != ':') break;
        args++;
    }
    return k;
}
