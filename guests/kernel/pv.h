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

void status_sync(void);                  /* PV: the VMM applies the page's sstatus now */
void status_sync_fs(void);               /* ... and its FS, even if unchanged (after FP work) */
void set_trap_vector(void);              /* stvec = the trap entry (entry.S) */
void enter_user(void *tf) __attribute__((noreturn));   /* entry.S's user_return */

extern u64 pv_hypercalls, pv_batched_ptes;
extern int pv_vcpu_page;                 /* PV: the VMM shares the vCPU page */

/* The supervisor registers of trap handling: the CSRs themselves, or (PV, where the
 * VMM shares it) the vCPU page mapped at VCPU_PAGE_VA.  Inline: in the native build
 * each is the one CSR instruction it always was. */
#include "memlayout.h"
#include "popek_hypercall.h"
#define PV_PAGE_FIELD(off) (*(volatile u64 *)(VCPU_PAGE_VA + POPEK_VCPU_FIELDS + (off)))
#ifdef PV
#define PV_PAGE pv_vcpu_page
#else
#define PV_PAGE 0
#endif
static inline u64 status_read(void) {                    /* sstatus */
    return PV_PAGE ? PV_PAGE_FIELD(PV_SSTATUS) : csr_read(sstatus);
}
static inline void status_set(u64 bits) {
    if (PV_PAGE) PV_PAGE_FIELD(PV_SSTATUS) |= bits; else csr_set(sstatus, bits);
}
static inline void status_clear(u64 bits) {
    if (PV_PAGE) PV_PAGE_FIELD(PV_SSTATUS) &= ~bits; else csr_clear(sstatus, bits);
}
static inline u64 trap_cause(void) {                     /* scause */
    return PV_PAGE ? PV_PAGE_FIELD(PV_SCAUSE) : csr_read(scause);
}
static inline u64 trap_value(void) {                     /* stval */
    return PV_PAGE ? PV_PAGE_FIELD(PV_STVAL) : csr_read(stval);
}
static inline u64 trap_pc(void) {                        /* sepc */
    return PV_PAGE ? PV_PAGE_FIELD(PV_SEPC) : csr_read(sepc);
}
static inline void set_trap_pc(u64 pc) {
    if (PV_PAGE) PV_PAGE_FIELD(PV_SEPC) = pc; else csr_write(sepc, pc);
}
