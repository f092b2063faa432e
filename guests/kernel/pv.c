/* Sensitive operations, native or paravirtual (see pv.h). */
#include "pv.h"
#include "lib.h"
#include "memlayout.h"
#include "popek_hypercall.h"
#include "sbi.h"
#include "vm.h"
#include "kalloc.h"

u64 pv_hypercalls, pv_batched_ptes;
int pv_vcpu_page;
extern void trap_entry(void), trap_entry_pv(void);
extern void user_return(void *tf) __attribute__((noreturn));
extern void user_return_pv(void *tf) __attribute__((noreturn));

void tlb_remote_flush(u64 va, u64 size) {
    sbi_remote_sfence_vma(1, 0, va, size);           /* hart mask: hart 0 */
}

void set_timer(u64 when) { sbi_set_timer(when); }

#define FIELD PV_PAGE_FIELD
void set_trap_vector(void) {
    if (PV_PAGE) FIELD(PV_STVEC) = (u64)trap_entry_pv;
    else csr_write(stvec, (u64)trap_entry);
}
void enter_user(void *tf) {
    if (PV_PAGE) user_return_pv(tf);
    user_return(tf);
}

#ifndef PV
/* Native: the privileged instructions themselves. */
void pv_init(void) {}
void status_sync(void) {}
void status_sync_fs(void) {}
void pte_set(u64 *pte, u64 value) { *pte = value; }
void pte_commit(void) {}
void tlb_flush(u64 va) { asm volatile("sfence.vma %0, zero" :: "r"(va) : "memory"); }
void tlb_flush_all(void) { asm volatile("sfence.vma zero, zero" ::: "memory"); }
void set_address_space(u64 satp) {
    csr_write(satp, satp);
    asm volatile("sfence.vma zero, zero" ::: "memory");
}
void irq_enable(void) { csr_set(sstatus, SSTATUS_SIE); }
void irq_disable(void) { csr_clear(sstatus, SSTATUS_SIE); }

#else
/* Paravirtual: hypercalls, PTE stores batched like Xen's mmu_update. */
static struct { u64 pte, value; } batch[POPEK_MMU_BATCH];
static int nbatch;

static struct sbiret hypercall(u64 fid, u64 a0, u64 a1) {
    pv_hypercalls++;
    return sbi_call(POPEK_EID, fid, a0, a1, 0, 0);
}

void pte_commit(void) {
    if (!nbatch) return;
    /* The kernel maps RAM 1:1, so these addresses are guest-physical. */
    struct sbiret r = hypercall(POPEK_FID_MMU_UPDATE, (u64)batch, nbatch);
    if (r.error || r.value != nbatch) panic("MMU_UPDATE refused (%d of %d)", r.value, nbatch);
    pv_batched_ptes += nbatch;
    nbatch = 0;
}

void pte_set(u64 *pte, u64 value) {
    if (nbatch == POPEK_MMU_BATCH) pte_commit();
    batch[nbatch].pte = (u64)pte;
    batch[nbatch].value = value;
    nbatch++;
}

void tlb_flush(u64 va) { pte_commit(); hypercall(POPEK_FID_TLB_FLUSH, va, 0); }
void tlb_flush_all(void) { pte_commit(); hypercall(POPEK_FID_TLB_FLUSH, 0, 1); }
void set_address_space(u64 satp) { pte_commit(); hypercall(POPEK_FID_SET_SATP, satp, 0); }

/* Interrupt enable: a store to the vCPU page, and a hypercall only if an interrupt
 * is waiting for it (Xen's evtchn_upcall_mask and upcall_pending). */
void irq_enable(void) {
    if (!pv_vcpu_page) { hypercall(POPEK_FID_IRQ_ENABLE, 1, 0); return; }
    FIELD(PV_SSTATUS) |= SSTATUS_SIE;
    if (FIELD(PV_PENDING)) hypercall(POPEK_FID_SYNC, 0, 0);
}
void irq_disable(void) {
    if (!pv_vcpu_page) { hypercall(POPEK_FID_IRQ_ENABLE, 0, 0); return; }
    FIELD(PV_SSTATUS) &= ~SSTATUS_SIE;
}
void status_sync(void) { if (pv_vcpu_page) hypercall(POPEK_FID_SYNC, 0, 0); }
void status_sync_fs(void) { if (pv_vcpu_page) hypercall(POPEK_FID_SYNC, 1, 0); }

/* The vCPU page: one page of RAM, mapped at the top of every address space (root
 * entry 511, shared like the kernel's), and given to the VMM.  The registers move
 * there: the trap vector first, as the VMM will read it from the page from now on. */
void pv_init(void) {
    void *page = kalloc();
    if (!page) panic("no page for the vCPU page");
    if (vm_map(vm_kernel(), VCPU_PAGE_VA, (u64)page, PTE_R | PTE_W) < 0)
        panic("cannot map the vCPU page");
    pte_commit();
    tlb_flush(VCPU_PAGE_VA);
    struct sbiret r = hypercall(POPEK_FID_VCPU_PAGE, (u64)page, 0);
    if (r.error) {
        kprintf("pv: no vCPU page (SBI error %d): supervisor registers by CSR\n", (int)r.error);
        return;
    }
    pv_vcpu_page = 1;
    kprintf("pv: vCPU page at %p\n", (u64)page);
}
#endif
