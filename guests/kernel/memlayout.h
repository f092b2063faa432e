/* The guest's memory map (Sv39).
 *
 *   virtual address            what                              who
 *   0x0000_0000_1000_1000      virtio-mmio (identity, 4 KiB)     kernel
 *   0x0000_0000_4000_0000      user program image (ELF)          user
 *     ... heap (sbrk), demand-zero, up to USER_HEAP_MAX
 *   0x0000_0000_6000_0000      mmap region, demand-zero          user
 *   0x0000_0000_7fef_f000      user stack, demand-zero, grows down to USER_STACK_LOW
 *   0x0000_0000_7fff_f000      user stack top (a guard page above)
 *   0x0000_0000_8000_0000      RAM, identity: OpenSBI, then      kernel
 *   0x0000_0000_8020_0000      this kernel, then free pages to the end of RAM
 *   0xffff_ffff_ffff_f000      PV only: the vCPU page shared with   kernel
 *                              the VMM (popek_hypercall.h)
 *
 * Every address space (one per process) shares the kernel's mappings (root
 * entries 0, 2 and, PV, 511, without the U bit), so traps need no page-table switch.
 */
#pragma once

#define UART_BASE 0x10000000UL       /* the 16550 (the console benchmark writes it) */
#define RAM_BASE 0x80000000UL
#define KERNEL_BASE 0x80200000UL
#define USER_BASE 0x40000000UL
#define USER_HEAP_MAX 0x58000000UL
#define USER_MMAP_BASE 0x60000000UL
#define USER_MMAP_END 0x70000000UL
#define USER_STACK_TOP 0x7FFFF000UL
#define USER_STACK_LOW (USER_STACK_TOP - 0x100000UL)
#define USER_END 0x80000000UL
#define VCPU_PAGE_VA 0xFFFFFFFFFFFFF000UL
/* A field of the vCPU page as an offset from x0 (the page's top half: -2048..-1). */
#define PV_FIELD(off) (-2048 + (off))
