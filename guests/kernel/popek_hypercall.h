/* popek's paravirtual interface: hypercalls in the SBI firmware-specific
 * extension space (SBI spec v2.0, 3.3: EIDs 0x0A000000-0x0AFFFFFF).
 *
 * Calling convention: as every SBI call, ecall with a7 = EID, a6 = FID,
 * arguments in a0..a5; the VMM returns an error code in a0 (0 = success,
 * SBI error codes otherwise) and a value in a1.
 *
 *   FID  name            arguments                         what it does
 *   0    PROBE           -                                 a1 = ABI version (1)
 *   1    MMU_UPDATE      a0 = gpa of {u64 pte_gpa, u64 value}[a1], a1 = count
 *                                                          stores each PTE after checking it
 *                                                          maps only the guest's own memory;
 *                                                          a1 = entries done
 *   2    SET_SATP        a0 = satp value                   switch address space (and flush)
 *   3    TLB_FLUSH       a0 = va, a1 = 1: all              sfence.vma for the guest
 *   4    IRQ_ENABLE      a0 = 1 enable / 0 disable         the guest's sstatus.SIE
 *   5    VCPU_PAGE       a0 = gpa of a page (0: none)      share a vCPU page with the VMM
 *                                                          (below); NOT_SUPPORTED where the
 *                                                          VMM cannot (hardware assist)
 *   6    SYNC            a0 = 1: the page's FS as it is    nothing but the exit: the VMM
 *                                                          reads the vCPU page now (FS
 *                                                          only if changed, unless a0 = 1)
 *   7-9  DOMAIN_ATTACH, GRANT_MAP, DOMAIN_NOTIFY: a driver domain's (blkif.h); the
 *        VMM answers NOT_SUPPORTED to any other VM
 *
 * The vCPU page (as Xen's vcpu_info): the supervisor registers of the calling vCPU,
 * which the guest reads and writes with loads and stores instead of CSR instructions.
 * The VMM reads the page at every exit and writes it at every entry; a store of SIE
 * takes effect at the next exit, so a guest that sets SIE asks for what PENDING
 * shows with any hypercall (SYNC).  The fields are u64s from byte
 * POPEK_VCPU_FIELDS of the page: mapped at the top of the address space, each is
 * reachable as an offset from x0 (a trap entry has no free register).
 *
 * The timer and remote fences use the standard SBI TIME and RFENCE extensions.
 * Documented in docs/guest.md. */
#pragma once

#define POPEK_EID 0x0A504F50           /* "\nPOP" */
#define POPEK_FID_PROBE 0
#define POPEK_FID_MMU_UPDATE 1
#define POPEK_FID_SET_SATP 2
#define POPEK_FID_TLB_FLUSH 3
#define POPEK_FID_IRQ_ENABLE 4
#define POPEK_FID_VCPU_PAGE 5
#define POPEK_FID_SYNC 6
#define POPEK_VCPU_FIELDS 2048
#define PV_SSTATUS 0                   /* SIE SPIE SPP FS */
#define PV_SEPC 8
#define PV_SCAUSE 16
#define PV_STVAL 24
#define PV_SSCRATCH 32
#define PV_STVEC 40
#define PV_PENDING 48                  /* sip & sie, written by the VMM */
#define PV_SPARE 56                    /* the guest's own: its trap entry's spare register */
#define POPEK_ABI_VERSION 1
#define POPEK_MMU_BATCH 64             /* PTE stores per MMU_UPDATE at most */
