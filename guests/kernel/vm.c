/* Sv39 address spaces (privileged spec, 4.4): the kernel map shared by every
 * process, per-process user maps, demand-zero pages and copy-on-write.
 *
 * Every page-table store goes through pte_set() and every TLB flush through
 * the tlb_* functions, so that the PV build (pv.c) can turn them into
 * batched hypercalls. */
#include "vm.h"
#include "pci.h"
#include "plic.h"
#include "fdt.h"
#include "kalloc.h"
#include "lib.h"
#include "memlayout.h"
#include "pv.h"
#include "sbi.h"

static pagetable_t kernel_pt;
u64 vm_stats_faults, vm_stats_cow_copies, vm_stats_pt_updates;

#define VPN(va, level) (((va) >> (12 + 9 * (level))) & 0x1FF)

pte_t *vm_walk(pagetable_t pt, u64 va, int alloc) {
    for (int level = 2; level > 0; level--) {
        pte_t *pte = &pt[VPN(va, level)];
        if (*pte & PTE_V) {
            if (*pte & (PTE_R | PTE_X)) return NULL;      /* a superpage: not ours to split */
            pt = (pagetable_t)PTE2PA(*pte);
        } else {
            if (!alloc) return NULL;
            pagetable_t next = kalloc();
            if (!next) return NULL;
            pte_set(pte, PA2PTE(next) | PTE_V);
            pte_commit();                       /* later walks read it back */
            pt = next;
        }
    }
    return &pt[VPN(va, 0)];
}

int vm_map(pagetable_t pt, u64 va, u64 pa, u64 perm) {
    pte_t *pte = vm_walk(pt, va, 1);
    if (!pte) return -1;
    /* A and D set up front: no hardware A/D updates needed (nor faults on Svade). */
    pte_set(pte, PA2PTE(pa) | perm | PTE_V | PTE_A | PTE_D);
    vm_stats_pt_updates++;
    return 0;
}

void tlb_flush_page(u64 va) { tlb_flush(va); }

void vm_unmap(pagetable_t pt, u64 va, u64 npages, int free) {
    for (u64 i = 0; i < npages; i++, va += PGSIZE) {
        pte_t *pte = vm_walk(pt, va, 0);
        if (!pte || !(*pte & PTE_V)) continue;
        if (free) kfree((void *)PTE2PA(*pte));
        pte_set(pte, 0);
        vm_stats_pt_updates++;
        tlb_flush(va);
        /* Other harts may cache the old translation: a remote fence (SBI RFENCE). */
        tlb_remote_flush(va, PGSIZE);
    }
}

void vm_init(void) {
    kernel_pt = kalloc();
    /* RAM: identity gigapages (root entries 2, 3, ...), kernel only. */
    for (u64 a = RAM_BASE & ~((1UL << 30) - 1); a < boot_info.ram_base + boot_info.ram_size; a += 1UL << 30)
        pte_set(&kernel_pt[VPN(a, 2)], PA2PTE(a) | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | PTE_G);
    /* Device windows: identity 4 KiB pages below 1 GiB, kernel only. */
    for (int i = 0; i < boot_info.nvirtio; i++)
        if (vm_map(kernel_pt, boot_info.virtio[i], boot_info.virtio[i], PTE_R | PTE_W) < 0)
            panic("cannot map virtio at %p", boot_info.virtio[i]);
    pci_map(kernel_pt);                          /* PCIe: ECAM, and the BAR window */
    plic_map(kernel_pt);                         /* the PLIC, for the NICs' interrupts */
    if (vm_map(kernel_pt, UART_BASE, UART_BASE, PTE_R | PTE_W) < 0)   /* the console bench */
        panic("cannot map the UART");
    pte_commit();
    vm_activate(kernel_pt);
}

pagetable_t vm_create(void) {
    pagetable_t pt = kalloc();
    if (!pt) return NULL;
    /* Share the kernel's entries; user space is root entry 1 (0x4000_0000..). */
    for (int i = 0; i < 512; i++)
        if (i != VPN(USER_BASE, 2) && kernel_pt[i]) pte_set(&pt[i], kernel_pt[i]);
    pte_commit();
    return pt;
}

void vm_activate(pagetable_t pt) {
    set_address_space((8UL << 60) | ((u64)pt >> 12));
}

pagetable_t vm_kernel(void) { return kernel_pt; }

void vm_destroy(pagetable_t pt) {
    pte_t *root = &pt[VPN(USER_BASE, 2)];
    if (*root & PTE_V) {
        pagetable_t l1 = (pagetable_t)PTE2PA(*root);
        for (int i = 0; i < 512; i++) {
            if (!(l1[i] & PTE_V)) continue;
            pagetable_t l0 = (pagetable_t)PTE2PA(l1[i]);
            for (int j = 0; j < 512; j++)
                if (l0[j] & PTE_V) kfree((void *)PTE2PA(l0[j]));
            kfree(l0);
        }
        kfree(l1);
    }
    kfree(pt);
}

int vm_fork(pagetable_t from, pagetable_t to) {
    pte_t *root = &from[VPN(USER_BASE, 2)];
    if (!(*root & PTE_V)) return 0;
    pagetable_t l1 = (pagetable_t)PTE2PA(*root);
    for (u64 i = 0; i < 512; i++) {
        if (!(l1[i] & PTE_V)) continue;
        pagetable_t l0 = (pagetable_t)PTE2PA(l1[i]);
        for (u64 j = 0; j < 512; j++) {
            pte_t pte = l0[j];
            if (!(pte & PTE_V)) continue;
            u64 va = USER_BASE + (i << 21) + (j << 12);
            if (pte & PTE_W) {                      /* shared, read-only, copied on write */
                pte = (pte & ~PTE_W) | PTE_COW;
                pte_set(&l0[j], pte);
                vm_stats_pt_updates++;
            }
            pte_t *child = vm_walk(to, va, 1);
            if (!child) return -1;
            pte_set(child, pte);
            vm_stats_pt_updates++;
            kref((void *)PTE2PA(pte));
        }
    }
    pte_commit();
    tlb_flush_all();                                /* the parent's pages lost W */
    return 0;
}

static int demand_zero(u64 va, u64 brk, u64 heap_start) {
    return (va >= heap_start && va < brk) || (va >= USER_MMAP_BASE && va < USER_MMAP_END)
        || (va >= USER_STACK_LOW && va < USER_STACK_TOP);
}

int vm_fault(pagetable_t pt, u64 va, int write, u64 brk) {
    extern u64 current_heap_start(void);
    if (va < USER_BASE || va >= USER_END) return -1;
    va = PGROUNDDOWN(va);
    vm_stats_faults++;
    pte_t *pte = vm_walk(pt, va, 0);
    if (pte && (*pte & PTE_V)) {
        if (!write || !(*pte & PTE_COW)) return -1;     /* a real protection fault */
        void *old = (void *)PTE2PA(*pte);
        u64 perm = (*pte & 0x3FF & ~PTE_COW) | PTE_W;
        if (krefs(old) == 1) {                          /* the last sharer keeps the page */
            pte_set(pte, (*pte & ~PTE_COW) | PTE_W);
        } else {
            void *copy = kalloc();
            if (!copy) return -1;
            memcpy(copy, old, PGSIZE);
            pte_set(pte, PA2PTE(copy) | perm);
            kfree(old);
            vm_stats_cow_copies++;
        }
        vm_stats_pt_updates++;
        pte_commit();
        tlb_flush(va);
        return 0;
    }
    if (!demand_zero(va, brk, current_heap_start())) return -1;
    void *page = kalloc();
    if (!page) return -1;
    if (vm_map(pt, va, (u64)page, PTE_R | PTE_W | PTE_U) < 0) { kfree(page); return -1; }
    pte_commit();
    return 0;
}

/* The kernel reaches user memory by walking the tables (no SUM), faulting pages in. */
static u8 *user_page(pagetable_t pt, u64 va, int write, u64 brk) {
    for (int tries = 0; tries < 2; tries++) {
        pte_t *pte = vm_walk(pt, va, 0);
        if (pte && (*pte & PTE_V) && (*pte & PTE_U) && (!write || (*pte & PTE_W)))
            return (u8 *)PTE2PA(*pte) + (va & (PGSIZE - 1));
        if (vm_fault(pt, va, write, brk) < 0) return NULL;
    }
    return NULL;
}

int copy_in(pagetable_t pt, void *dst, u64 va, u64 n, u64 brk) {
    u8 *d = dst;
    while (n) {
        u8 *src = user_page(pt, va, 0, brk);
        if (!src) return -1;
        u64 chunk = PGSIZE - (va & (PGSIZE - 1));
        if (chunk > n) chunk = n;
        memcpy(d, src, chunk);
        d += chunk; va += chunk; n -= chunk;
    }
    return 0;
}

int copy_out(pagetable_t pt, u64 va, const void *src, u64 n, u64 brk) {
    const u8 *s = src;
    while (n) {
        u8 *dst = user_page(pt, va, 1, brk);
        if (!dst) return -1;
        u64 chunk = PGSIZE - (va & (PGSIZE - 1));
        if (chunk > n) chunk = n;
        memcpy(dst, s, chunk);
        s += chunk; va += chunk; n -= chunk;
    }
    return 0;
}
