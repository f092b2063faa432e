/* Basic types and helpers shared by every kernel file. */
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;
typedef u64 uintptr;
typedef u64 size_t;

#define NULL ((void *)0)
#define PGSIZE 4096UL
#define PGROUNDUP(a) (((a) + PGSIZE - 1) & ~(PGSIZE - 1))
#define PGROUNDDOWN(a) ((a) & ~(PGSIZE - 1))

#define csr_read(csr) ({ u64 __v; asm volatile("csrr %0, " #csr : "=r"(__v)); __v; })
#define csr_write(csr, v) asm volatile("csrw " #csr ", %0" :: "r"((u64)(v)))
#define csr_set(csr, v) asm volatile("csrs " #csr ", %0" :: "r"((u64)(v)))
#define csr_clear(csr, v) asm volatile("csrc " #csr ", %0" :: "r"((u64)(v)))

static inline u64 rdtime(void) { u64 t; asm volatile("rdtime %0" : "=r"(t)); return t; }
static inline u64 rdcycle(void) { u64 c; asm volatile("rdcycle %0" : "=r"(c)); return c; }

#define SSTATUS_SIE (1UL << 1)
#define SSTATUS_SPIE (1UL << 5)
#define SSTATUS_SPP (1UL << 8)
#define SSTATUS_SUM (1UL << 18)
#define SSTATUS_FS (3UL << 13)           /* FP state: Off, Initial, Clean, Dirty */
#define SSTATUS_FS_CLEAN (2UL << 13)
#define SSTATUS_FS_DIRTY (3UL << 13)
#define SIE_STIE (1UL << 5)
#define SIE_SEIE (1UL << 9)
#define SCAUSE_IRQ (1UL << 63)
