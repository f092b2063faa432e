/* Sensitive operations, native or paravirtual (see pv.h). */
#include "pv.h"
#include "lib.h"
#include "popek_hypercall.h"
#include "sbi.h"

u64 pv_hypercalls, pv_batched_ptes;

void tlb_remote_flush(u64 va, u64 size) {
    sbi_remote_sfence_vma(1, 0, va, size);           /* hart mask: hart 0 */
}

void set_timer(u64 when) { sbi_set_timer(when); }

#ifndef PV
/* Native: the privileged instructions themselves. */
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
void irq_enable(void) { hypercall(POPEK_FID_IRQ_ENABLE, 1, 0); }
void irq_disable(void) { hypercall(POPEK_FID_IRQ_ENABLE, 0, 0); }
#endif
