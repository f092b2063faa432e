/* Processes and the scheduler (round robin; the timer preempts user code). */
#include "proc.h"
#include "asm.h"
#include "fdt.h"
#include "kalloc.h"
#include "lib.h"
#include "memlayout.h"
#include "pv.h"

_Static_assert(sizeof(struct trapframe) == TF_SIZE, "trapframe layout");
_Static_assert(__builtin_offsetof(struct trapframe, kstack) == TF_KSTACK, "trapframe layout");

struct proc procs[NPROC];
struct proc *current;
static struct context scheduler_ctx;
static char kstacks[NPROC][KSTACK_SIZE] __attribute__((aligned(16)));
static int next_pid = 1;
int init_exit_code = -1;
extern void swtch(struct context *old, struct context *new);

u64 current_heap_start(void) { return current ? current->heap_start : 0; }

static struct proc *alloc_proc(void) {
    for (int i = 0; i < NPROC; i++) {
        struct proc *p = &procs[i];
        if (p->state != UNUSED) continue;
        memset(p, 0, sizeof *p);
        p->pid = next_pid++;
        p->tf.kstack = (u64)kstacks[i] + KSTACK_SIZE;
        p->pt = vm_create();
        if (!p->pt) { p->state = UNUSED; return NULL; }
        return p;
    }
    return NULL;
}

static void first_run(void) { return_to_user(); }

static void make_runnable(struct proc *p) {
    p->ctx.ra = (u64)first_run;
    p->ctx.sp = p->tf.kstack;
    p->state = RUNNABLE;
}

/* The first process, from the ELF image of the user program. */
int proc_spawn_init(const void *image, u64 size, const char *args) {
    const u8 *elf = image;
    if (size < 64 || *(const u32 *)elf != 0x464C457F) panic("user image is not an ELF");
    struct proc *p = alloc_proc();
    if (!p) panic("no process slot for init");
    u64 phoff = *(const u64 *)(elf + 32);
    u16 phentsize = *(const u16 *)(elf + 54), phnum = *(const u16 *)(elf + 56);
    u64 end = USER_BASE;
    for (int i = 0; i < phnum; i++) {
        const u8 *ph = elf + phoff + i * phentsize;
        if (*(const u32 *)ph != 1) continue;           /* PT_LOAD */
        u64 off = *(const u64 *)(ph + 8), va = *(const u64 *)(ph + 16);
        u64 filesz = *(const u64 *)(ph + 32), memsz = *(const u64 *)(ph + 40);
        if (va < USER_BASE || va + memsz > USER_HEAP_MAX) panic("user segment outside user space");
        for (u64 a = PGROUNDDOWN(va); a < va + memsz; a += PGSIZE) {
            void *page = kalloc();
            if (!page || vm_map(p->pt, a, (u64)page, PTE_R | PTE_W | PTE_X | PTE_U) < 0)
                panic("out of memory loading init");
            for (u64 b = a; b < a + PGSIZE; b++)       /* the file's bytes, zeros past filesz */
                if (b >= va && b < va + filesz) ((u8 *)page)[b - a] = elf[off + (b - va)];
        }
        if (va + memsz > end) end = va + memsz;
    }
    pte_commit();
    p->heap_start = p->brk = PGROUNDUP(end);
    /* Arguments on the stack; a0 points at them. */
    u64 len = strlen(args) + 1, sp = (USER_STACK_TOP - len) & ~15UL;
    current = p;
    if (copy_out(p->pt, sp, args, len, p->brk) < 0) panic("cannot set up init's stack");
    current = NULL;
    p->tf.regs[0] = *(const u64 *)(elf + 24);          /* e_entry */
    p->tf.regs[2] = sp;
    p->tf.regs[10] = sp;
    memcpy(p->name, "init", 5);
    make_runnable(p);
    return p->pid;
}

/* ---- FP state, switched lazily by sstatus.FS, as Linux does ----------------------
 * The FPU holds one process's registers, fp_owner's.  A process that has never run
 * an FP instruction runs with FS Off: its first one traps (illegal instruction) and
 * fp_first_use gives it FP state (zeros).  Returning to a process with FP state
 * while the FPU holds another's: the other's registers are saved only if they
 * changed since they were loaded or last saved (FS was Dirty at some point since),
 * then this one's are loaded, and it runs with FS Clean.  Returning to the owner
 * costs nothing, and a process that does not use FP never costs anything. */
static struct proc *fp_owner;
static int fp_dirty;               /* the FPU's registers differ from fp_owner->fp */
u64 fp_saves, fp_restores, fp_first_uses;
extern void fp_save(struct fpstate *fp), fp_restore(struct fpstate *fp);

static void fp_switch_to(struct proc *p) {
    u64 fs = 0;
    int fp_work = 0;
    if ((status_read() & SSTATUS_FS) == SSTATUS_FS_DIRTY)
        fp_dirty = 1;              /* only the owner runs with FS on: its registers changed */
    if (p->fp_used) {
        if (fp_owner != p) {
            status_set(SSTATUS_FS_CLEAN);              /* FS on, to reach the registers */
            status_sync();
            if (fp_owner && fp_dirty) {
                fp_save(&fp_owner->fp);
                fp_saves++;
            }
            fp_restore(&p->fp);
            fp_restores++;
            fp_owner = p;
            fp_dirty = 0;
            fp_work = 1;
        }
        fs = SSTATUS_FS_CLEAN;
    }
    status_clear(SSTATUS_FS);
    status_set(fs);
    if (fp_work) status_sync_fs();     /* PV: Clean, though the restore dirtied the hart */
}

/* An FP instruction: F and D, their loads and stores (also compressed), the FP CSRs. */
static int is_fp_insn(u32 insn) {
    u32 op = insn & 0x7F, f3 = insn >> 12 & 7, csr = insn >> 20;
    if ((insn & 3) != 3) {                              /* c.fld c.fsd c.fldsp c.fsdsp */
        u32 q = insn & 3, cf3 = insn >> 13 & 7;
        return (q == 0 || q == 2) && (cf3 == 1 || cf3 == 5);
    }
    if (op == 0x07 || op == 0x27 || op == 0x43 || op == 0x47 || op == 0x4B || op == 0x4F ||
        op == 0x53)
        return 1;
    return op == 0x73 && f3 != 0 && f3 != 4 && csr >= 1 && csr <= 3;
}

/* An illegal-instruction trap from user code: the process's first FP instruction on a
 * CPU with F and D gives it FP state (it then runs again); anything else is illegal. */
int fp_first_use(u32 insn) {
    struct proc *p = current;
    if (!boot_info.has_fp || p->fp_used || !is_fp_insn(insn)) return 0;
    p->fp_used = 1;
    memset(&p->fp, 0, sizeof p->fp);
    fp_first_uses++;
    return 1;
}

void return_to_user(void) {
    struct proc *p = current;
    fp_switch_to(p);
    set_trap_vector();
    set_trap_pc(p->tf.regs[0]);
    status_clear(SSTATUS_SPP);                         /* to U-mode ... */
    status_set(SSTATUS_SPIE);                          /* ... with interrupts on */
    enter_user(&p->tf);
}

void scheduler(void) {
    int last = 0;
    for (;;) {
        int ran = 0, alive = 0;
        for (int k = 1; k <= NPROC; k++) {
            struct proc *p = &procs[(last + k) % NPROC];
            if (p->state != UNUSED && p->state != ZOMBIE) alive++;
            if (p->state != RUNNABLE) continue;
            last = p - procs;
            p->state = RUNNING;
            current = p;
            vm_activate(p->pt);
            swtch(&scheduler_ctx, &p->ctx);
            current = NULL;
            ran = 1;
            break;
        }
        if (!alive) {
            kprintf("kernel: all processes exited; init exit code %d\n", init_exit_code);
            shutdown(init_exit_code != 0);
        }
        if (!ran) {                     /* everyone sleeps: wait for an interrupt */
            irq_enable();
            asm volatile("wfi");
            irq_disable();
        }
    }
}

void yield(void) {
    current->state = RUNNABLE;
    swtch(&current->ctx, &scheduler_ctx);
}

void sleep_net(void) {
    current->net_waiting = 1;
    current->state = SLEEPING;
    swtch(&current->ctx, &scheduler_ctx);
    current->net_waiting = 0;
}

void wakeup_net(void) {
    for (int i = 0; i < NPROC; i++)
        if (procs[i].state == SLEEPING && procs[i].net_waiting) procs[i].state = RUNNABLE;
}

void proc_exit(int code) {
    struct proc *p = current;
    vm_activate(vm_kernel());          /* stop using the tables we are about to free */
    vm_destroy(p->pt);
    p->pt = NULL;
    p->exit_code = code;
    p->state = ZOMBIE;
    if (fp_owner == p) {               /* its registers are nobody's now */
        fp_owner = NULL;
        fp_dirty = 0;
        status_clear(SSTATUS_FS);
    }
    if (p->pid == 1) init_exit_code = code;
    for (int i = 0; i < NPROC; i++) {  /* orphans are reaped by nobody: free them */
        if (procs[i].parent == p->pid && procs[i].state != UNUSED) procs[i].parent = 0;
        if (procs[i].parent == 0 && procs[i].state == ZOMBIE && &procs[i] != p) procs[i].state = UNUSED;
    }
    for (int i = 0; i < NPROC; i++) {
        struct proc *q = &procs[i];
        if (q->pid == p->parent && q->state == SLEEPING && q->waiting) q->state = RUNNABLE;
    }
    if (!p->parent) p->state = UNUSED;
    swtch(&p->ctx, &scheduler_ctx);
    panic("zombie ran");
}

int proc_fork(void) {
    struct proc *parent = current, *child = alloc_proc();
    if (!child) return -1;
    if (vm_fork(parent->pt, child->pt) < 0) {
        vm_destroy(child->pt);
        child->state = UNUSED;
        return -1;
    }
    u64 kstack = child->tf.kstack;
    child->tf = parent->tf;
    child->tf.kstack = kstack;
    child->tf.regs[10] = 0;                            /* fork returns 0 in the child */
    child->fp_used = parent->fp_used;                  /* and its FP registers: */
    if (parent->fp_used && fp_owner == parent)
        fp_save(&child->fp);                           /* in the FPU (FS is the parent's: on) */
    else if (parent->fp_used)
        child->fp = parent->fp;
    child->heap_start = parent->heap_start;
    child->brk = parent->brk;
    child->parent = parent->pid;
    memcpy(child->name, parent->name, sizeof child->name);
    make_runnable(child);
    return child->pid;
}

int proc_wait(u64 status_va) {
    struct proc *p = current;
    for (;;) {
        int children = 0;
        for (int i = 0; i < NPROC; i++) {
            struct proc *c = &procs[i];
            if (c->state == UNUSED || c->parent != p->pid) continue;
            children++;
            if (c->state != ZOMBIE) continue;
            int pid = c->pid;
            if (status_va && copy_out(p->pt, status_va, &c->exit_code, sizeof(int), p->brk) < 0)
                return -1;
            c->state = UNUSED;
            return pid;
        }
        if (!children) return -1;
        p->waiting = 1;
        p->state = SLEEPING;
        swtch(&p->ctx, &scheduler_ctx);
        p->waiting = 0;
    }
}

int proc_kill(int pid) {
    for (int i = 0; i < NPROC; i++) {
        struct proc *p = &procs[i];
        if (p->pid == pid && p->state != UNUSED && p->state != ZOMBIE) {
            p->killed = 1;
            if (p->state == SLEEPING) p->state = RUNNABLE;
            return 0;
        }
    }
    return -1;
}

void proc_init(void) {
    for (int i = 0; i < NPROC; i++) procs[i].state = UNUSED;
}
