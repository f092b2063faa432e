/* The kernel's only interface to the machine below it: SBI calls (SBI spec
 * v2.0, chapter 3 for the calling convention).  Legacy console putchar is used
 * for output because OpenSBI 1.1 (Debian 12) predates the DBCN extension.
 * A PV build (make PV=1) also uses popek's hypercalls: see pv.h. */
#pragma once
#include "types.h"

#define SBI_EXT_LEGACY_PUTCHAR 0x01
#define SBI_EXT_BASE 0x10
#define SBI_EXT_TIME 0x54494D45
#define SBI_EXT_IPI 0x735049
#define SBI_EXT_RFENCE 0x52464E43
#define SBI_EXT_SRST 0x53525354

#define SBI_SRST_SHUTDOWN 0
#define SBI_SRST_REASON_NONE 0
#define SBI_SRST_REASON_FAILURE 1

struct sbiret { long error; long value; };

static inline struct sbiret sbi_call(u64 ext, u64 fid, u64 a0, u64 a1, u64 a2, u64 a3) {
    register u64 r0 asm("a0") = a0, r1 asm("a1") = a1, r2 asm("a2") = a2, r3 asm("a3") = a3;
    register u64 r6 asm("a6") = fid, r7 asm("a7") = ext;
    asm volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r3), "r"(r6), "r"(r7) : "memory");
    return (struct sbiret){(long)r0, (long)r1};
}

static inline void sbi_putchar(int c) { sbi_call(SBI_EXT_LEGACY_PUTCHAR, 0, (u64)c, 0, 0, 0); }
static inline void sbi_set_timer(u64 t) { sbi_call(SBI_EXT_TIME, 0, t, 0, 0, 0); }
static inline void sbi_send_ipi(u64 mask, u64 base) { sbi_call(SBI_EXT_IPI, 0, mask, base, 0, 0); }
/* Remote sfence.vma on the harts in (mask, base) for [start, start+size). */
static inline void sbi_remote_sfence_vma(u64 mask, u64 base, u64 start, u64 size) {
    sbi_call(SBI_EXT_RFENCE, 1, mask, base, start, size);
}
static inline long sbi_spec_version(void) { return sbi_call(SBI_EXT_BASE, 0, 0, 0, 0, 0).value; }
static inline long sbi_probe(u64 ext) { return sbi_call(SBI_EXT_BASE, 3, ext, 0, 0, 0).value; }
static inline void sbi_shutdown(int failure) {
    sbi_call(SBI_EXT_SRST, 0, SBI_SRST_SHUTDOWN,
             failure ? SBI_SRST_REASON_FAILURE : SBI_SRST_REASON_NONE, 0, 0);
}
