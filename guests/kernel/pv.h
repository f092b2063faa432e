/* The operations a hypervisor must see, in one place: page-table stores, TLB
 * flushes, address-space switches and interrupt enables.
 *
 * The native build does them directly (privileged instructions, which a
 * trap-and-emulate VMM catches one by one).  The paravirtual build
 * (make PV=1, defines PV) asks the VMM by hypercall instead, batching
 * page-table stores as Xen's PV MMU does (mmu_update): the ABI is in
 * popek_hypercall.h and docs/guest.md. */
#pragma once
#include "types.h"

void pte_set(u64 *pte, u64 value);       /* store a PTE (queued in PV) */
void pte_commit(void);                   /* PV: send queued PTE stores */
void tlb_flush(u64 va);                  /* sfence.vma va */
void tlb_flush_all(void);                /* sfence.vma */
void tlb_remote_flush(u64 va, u64 size); /* SBI RFENCE to the other harts */
void set_address_space(u64 satp);        /* csrw satp; sfence.vma */
void irq_enable(void);                   /* sstatus.SIE = 1 */
void irq_disable(void);
void set_timer(u64 when);
extern u64 pv_hypercalls, pv_batched_ptes;
