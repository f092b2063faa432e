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
#define POPEK_ABI_VERSION 1
#define POPEK_MMU_BATCH 64             /* PTE stores per MMU_UPDATE at most */
