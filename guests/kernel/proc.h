/* Processes: one kernel thread each, a user address space, round-robin
 * scheduling preempted by the timer. */
#pragma once
#include "types.h"
#include "vm.h"

#define NPROC 16
#define KSTACK_SIZE 8192

enum procstate { UNUSED, RUNNABLE, RUNNING, SLEEPING, ZOMBIE };

struct context { u64 ra, sp, s[12]; };

/* x1..x31 at 8*i (slot 0 holds the user pc), then the kernel stack top. */
struct trapframe { u64 regs[32]; u64 kstack; u64 pad; };

/* A process's FP registers and fcsr while they are not in the FPU (kernel/fp.S). */
struct fpstate { u64 f[32]; u64 fcsr; };

struct proc {
    struct trapframe tf;            /* first: sscratch points here */
    int pid, state, parent, exit_code, killed, waiting;
    int net_waiting;                /* asleep until a NIC interrupts (net_wait) */
    int fp_used;                    /* it has run an FP instruction: it has FP state */
    struct fpstate fp;
    pagetable_t pt;
    u64 heap_start, brk;
    struct context ctx;
    char name[16];
};

extern struct proc *current;
void proc_init(void);
int proc_spawn_init(const void *elf, u64 size, const char *args);
void scheduler(void) __attribute__((noreturn));
void yield(void);
void sleep_net(void);              /* the current process, until wakeup_net() */
void wakeup_net(void);
void proc_exit(int code) __attribute__((noreturn));
int proc_fork(void);
int proc_wait(u64 status_va);
int proc_kill(int pid);
void return_to_user(void) __attribute__((noreturn));
int fp_first_use(u32 insn);
extern u64 fp_saves, fp_restores, fp_first_uses;
