/* The operations a hypervisor must see, in one place: page-table stores, TLB
 * flushes, address-space switches, interrupt enables, and the supervisor
 * registers a trap handler reads and writes.
 *
 * The native build does them directly (privileged instructions, which a
 * trap-and-emulate VMM catches one by one).  The paravirtual build
 * (make PV=1, defines PV) asks the VMM by hypercall instead, batching
 * page-table stores as Xen's PV MMU does (mmu_update), and keeps sstatus, sepc,
 * scause, stval, sscratch and stvec in a vCPU page shared with the VMM (plain
 * loads and stores, no exits; Xen's vcpu_info) where the VMM offers one: the ABI
 * is in popek_hypercall.h and docs/guest.md. */
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
void pv_init(void);                      /* PV: share the vCPU page (after vm_init) */

/* The supervisor registers of trap handling. */
u64 status_read(void);                   /* sstatus */
void status_set(u64 bits);
void status_clear(u64 bits);
void status_sync(void);                  /* PV: the VMM applies the page's sstatus now */
u64 trap_cause(void);                    /* scause */
u64 trap_value(void);                    /* stval */
u64 trap_pc(void);                       /* sepc */
void set_trap_pc(u64 pc);
void set_trap_vector(void);              /* stvec = the trap entry (entry.S) */
void enter_user(void *tf) __attribute__((noreturn));   /* entry.S's user_return */

extern u64 pv_hypercalls, pv_batched_ptes;
extern int pv_vcpu_page;                 /* PV: the VMM shares the vCPU page */
