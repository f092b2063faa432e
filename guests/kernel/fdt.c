/* A minimal flattened-device-tree reader (devicetree spec v0.4, chapter 5):
 * walks the structure block once and keeps memory, timebase, bootargs and the
 * virtio-mmio nodes. */
#include "fdt.h"
#include "lib.h"

struct boot_info boot_info;

#define FDT_MAGIC 0xd00dfeed
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE 2
#define FDT_PROP 3
#define FDT_NOP 4
#define FDT_END 9

static u32 be32(const void *p) {
    const u8 *b = p;
    return (u32)b[0] << 24 | (u32)b[1] << 16 | (u32)b[2] << 8 | b[3];
}

static u64 be64(const void *p) { return (u64)be32(p) << 32 | be32((const u8 *)p + 4); }

void fdt_parse(const void *dtb) {
    const u8 *base = dtb;
    if (be32(base) != FDT_MAGIC) panic("no device tree at %p", dtb);
    const u8 *p = base + be32(base + 8);             /* off_dt_struct */
    const char *strings = (const char *)base + be32(base + 12);
    int depth = 0;
    /* What the node at each depth is (only the path matters to us). */
    enum { OTHER, MEMORY, CPUS, CHOSEN } kind[16] = {OTHER};
    u64 reg_base[16] = {0};
    int is_virtio[16] = {0}, is_pcie[16] = {0};
    for (;;) {
        u32 tok = be32(p);
        p += 4;
        if (tok == FDT_BEGIN_NODE) {
            const char *name = (const char *)p;
            depth++;
            if (depth >= 16) panic("device tree too deep");
            kind[depth] = OTHER;
            is_virtio[depth] = is_pcie[depth] = 0;
            if (!strncmp(name, "memory", 6)) kind[depth] = MEMORY;
            else if (!strncmp(name, "cpus", 5) && depth == 2) kind[depth] = CPUS;
            else if (!strncmp(name, "chosen", 7)) kind[depth] = CHOSEN;

            p += (strlen(name) + 4) & ~3UL;        /* name, NUL, padding to 4 */
        } else if (tok == FDT_END_NODE) {
            if (is_virtio[depth] && boot_info.nvirtio < MAX_VIRTIO)
                boot_info.virtio[boot_info.nvirtio++] = reg_base[depth];
            if (is_pcie[depth]) boot_info.pcie_ecam = reg_base[depth];
            depth--;
        } else if (tok == FDT_PROP) {
            u32 len = be32(p), nameoff = be32(p + 4);
            const u8 *val = p + 8;
            const char *pname = strings + nameoff;
            if (!strncmp(pname, "reg", 4) && len >= 16) {
                reg_base[depth] = be64(val);
                if (kind[depth] == MEMORY) {
                    boot_info.ram_base = be64(val);
                    boot_info.ram_size = be64(val + 8);
                }
            } else if (!strncmp(pname, "timebase-frequency", 19) && kind[depth] == CPUS) {
                boot_info.timebase = len == 8 ? be64(val) : be32(val);
            } else if (!strncmp(pname, "bootargs", 9) && kind[depth] == CHOSEN) {
                u32 n = len < sizeof boot_info.bootargs - 1 ? len : sizeof boot_info.bootargs - 1;
                memcpy(boot_info.bootargs, val, n);
                boot_info.bootargs[n] = 0;
            } else if (!strncmp(pname, "riscv,isa", 10) && len > 4) {
                /* "rv64imafdc_zicsr...": the single-letter extensions, up to the first '_' */
                int f = 0, d = 0;
                for (u32 i = 4; i < len && val[i] && val[i] != '_'; i++) {
                    f |= val[i] == 'f' || val[i] == 'g';
                    d |= val[i] == 'd' || val[i] == 'g';
                }
                boot_info.has_fp = f && d;
            } else if (!strncmp(pname, "compatible", 11) && !strncmp((const char *)val, "virtio,mmio", 12)) {
                is_virtio[depth] = 1;
            } else if (!strncmp(pname, "compatible", 11) &&
                       !strncmp((const char *)val, "pci-host-ecam-generic", 22)) {
                is_pcie[depth] = 1;
            } else if (!strncmp(pname, "ranges", 7)) {
                /* A PCI host's windows: 7 cells each (space, PCI address, CPU address,
                 * size); the 32-bit memory one (space 0x02) is where BARs go. */
                for (u32 off = 0; off + 28 <= len; off += 28)
                    if (((be32(val + off) >> 24) & 3) == 2) {
                        boot_info.pcie_mem = be64(val + off + 12);
                        boot_info.pcie_mem_size = be64(val + off + 20);
                    }
            }
            p += 8 + ((len + 3) & ~3UL);
        } else if (tok == FDT_NOP) {
            continue;
        } else if (tok == FDT_END) {
            break;
        } else {
            panic("bad device tree token %d", tok);
        }
    }
    if (!boot_info.ram_size) panic("device tree has no memory node");
    if (!boot_info.timebase) boot_info.timebase = 10000000;
}
