/* Sv39 address spaces: the kernel map, per-process user maps, demand paging, COW. */
#pragma once
#include "types.h"

typedef u64 pte_t;
typedef pte_t *pagetable_t;

#define PTE_V (1UL << 0)
#define PTE_R (1UL << 1)
#define PTE_W (1UL << 2)
#define PTE_X (1UL << 3)
#define PTE_U (1UL << 4)
#define PTE_G (1UL << 5)
#define PTE_A (1UL << 6)
#define PTE_D (1UL << 7)
#define PTE_COW (1UL << 8)          /* RSW bit: a read-only page shared after fork */
#define PTE2PA(pte) (((pte) >> 10) << 12)
#define PA2PTE(pa) (((u64)(pa) >> 12) << 10)

void vm_init(void);
pagetable_t vm_create(void);                       /* a new user address space */
void vm_destroy(pagetable_t pt);
void vm_activate(pagetable_t pt);                  /* satp + sfence.vma */
pte_t *vm_walk(pagetable_t pt, u64 va, int alloc);
int vm_map(pagetable_t pt, u64 va, u64 pa, u64 perm);
pagetable_t vm_kernel(void);                 /* the kernel's own table */
void vm_unmap(pagetable_t pt, u64 va, u64 npages, int free);
int vm_fork(pagetable_t from, pagetable_t to);     /* COW-share every user page */
int vm_fault(pagetable_t pt, u64 va, int write, u64 brk);   /* 0: fixed, -1: kill */
int copy_in(pagetable_t pt, void *dst, u64 va, u64 n, u64 brk);
int copy_out(pagetable_t pt, u64 va, const void *src, u64 n, u64 brk);
void tlb_flush_page(u64 va);
extern u64 vm_stats_faults, vm_stats_cow_copies, vm_stats_pt_updates;
