/* Boot: each step one line.  OpenSBI enters here in S-mode with a0 = hart id,
 * a1 = the device tree. */
#include "fdt.h"
#include "kalloc.h"
#include "lib.h"
#include "memlayout.h"
#include "proc.h"
#include "pv.h"
#include "sbi.h"
#include "popek_hypercall.h"
#include "blk.h"
#include "net.h"
#include "console.h"

extern char end[];                           /* from kernel.ld */
extern const char user_elf[], user_elf_end[];
void timer_arm(void), timer_check(void);
void blkback_run(const char *args) __attribute__((noreturn));

#ifdef PV
#define FLAVOUR "paravirtual"
#else
#define FLAVOUR "native"
#endif

void kmain(u64 hartid, const void *dtb) {
#ifdef PV
    /* Everything below needs the VMM's hypercalls: stop at once without them. */
    if (sbi_probe(POPEK_EID) <= 0)
        panic("this is the paravirtual kernel: it runs only under popek's VMM "
              "(SBI extension %p is missing)", (u64)POPEK_EID);
#endif
    fdt_parse(dtb);                          /* read what we need before RAM is reused */
    kprintf("\npopek guest kernel (%s) on hart %d: %d MiB RAM at %p, timebase %d Hz, SBI %d.%d\n",
            FLAVOUR, (int)hartid, (int)(boot_info.ram_size >> 20), boot_info.ram_base,
            (int)boot_info.timebase, (int)(sbi_spec_version() >> 24) & 0x7f,
            (int)(sbi_spec_version() & 0xffffff));
    kalloc_init((u64)end, boot_info.ram_base + boot_info.ram_size);   /* free pages */
    vm_init();                               /* kernel page table, paging on */
    pv_init();                               /* PV: the vCPU page */
    if (blk_init() < 0)                      /* the disk, if there is one */
        kprintf("disk: none\n");
    net_init();                              /* NICs on PCIe, if any */
    console_init();                          /* a virtio console, if there is one */
    proc_init();
    set_trap_vector();                       /* traps */
    csr_write(scounteren, 7);                /* user may read cycle, time, instret */
    csr_set(sie, SIE_STIE);                  /* timer interrupts (taken in U-mode) */
    timer_arm();
    timer_check();
    const char *args = boot_info.bootargs[0] ? boot_info.bootargs : "all";
    if (!strncmp(args, "blkback", 7)) {      /* a driver domain: serve the VMM's ring */
        blkback_run(args);
    }
    kprintf("kernel: %d free pages; starting init with '%s'\n", (int)kfree_pages(), args);
    proc_spawn_init(user_elf, user_elf_end - user_elf, args);
    scheduler();
}
