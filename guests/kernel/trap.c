/* Traps: system calls, page faults, timer and NIC interrupts from user mode; the
 * timer and NICs (only) from the kernel, which otherwise runs with interrupts off. */
#include "asm.h"
#include "fdt.h"
#include "lib.h"
#include "memlayout.h"
#include "proc.h"
#include "pv.h"
#include "sbi.h"
#include "syscall.h"
#include "blk.h"
#include "net.h"
#include "console.h"

#define CAUSE_ILLEGAL 2
#define CAUSE_ECALL_U 8
#define CAUSE_FETCH_PF 12
#define CAUSE_LOAD_PF 13
#define CAUSE_STORE_PF 15
#define IRQ_S_TIMER 5
#define IRQ_S_EXTERNAL 9
#define TICKS_PER_SECOND 100
#define BLK_CHUNK 65536

u64 timer_ticks;
static u8 blk_buf[BLK_CHUNK] __attribute__((aligned(4096)));

void timer_arm(void) { set_timer(rdtime() + boot_info.timebase / TICKS_PER_SECOND); }

static long sys_blk(int write, u64 sector, u64 va, u64 count) {
    struct proc *p = current;
    if (!blk_present()) return -1;
    long done = 0;
    while (count) {
        u64 n = count * 512 > BLK_CHUNK ? BLK_CHUNK / 512 : count;
        if (write && copy_in(p->pt, blk_buf, va, n * 512, p->brk) < 0) return -1;
        if (blk_rw(write, sector, blk_buf, n) < 0) return -1;
        if (!write && copy_out(p->pt, va, blk_buf, n * 512, p->brk) < 0) return -1;
        sector += n; va += n * 512; count -= n; done += n;
    }
    return done;
}

/* Frames between a process and a NIC, through a kernel buffer (copy_in/copy_out check
 * the user's addresses). */
static long sys_net(int call, u64 nic, u64 va, u64 len) {
    static u8 frame[FRAME_MAX];
    struct proc *p = current;
    if (nic >= (u64)nnics) return -1;
    struct nic *n = &nics[nic];
    if (call == SYS_net_info) return copy_out(p->pt, va, n->mac, 6, p->brk);
    if (call == SYS_net_send) {
        if (len > FRAME_MAX || len < 14 || copy_in(p->pt, frame, va, len, p->brk) < 0) return -1;
        return n->send(n, frame, len);
    }
    int got = n->recv(n, frame, sizeof frame);
    if (got <= 0) return got;
    if ((u64)got > len) got = len;
    return copy_out(p->pt, va, frame, got, p->brk) < 0 ? -1 : got;
}

static long syscall(struct trapframe *tf) {
    struct proc *p = current;
    u64 a0 = tf->regs[10], a1 = tf->regs[11], a2 = tf->regs[12];
    switch (tf->regs[17]) {
    case SYS_write: {
        char buf[128];
        u64 done = 0;
        if (a0 != 1 && a0 != 2) return -1;
        while (done < a2) {
            u64 n = a2 - done > sizeof buf ? sizeof buf : a2 - done;
            if (copy_in(p->pt, buf, a1 + done, n, p->brk) < 0) return -1;
            for (u64 i = 0; i < n; i++) sbi_putchar(buf[i]);
            done += n;
        }
        return done;
    }
    case SYS_exit: proc_exit((int)a0);
    case SYS_yield: yield(); return 0;
    case SYS_getpid: return p->pid;
    case SYS_sbrk: {
        u64 old = p->brk, new = old + (i64)a0;
        if (new < p->heap_start || new > USER_HEAP_MAX) return -1;
        if (new < old) vm_unmap(p->pt, PGROUNDUP(new), (PGROUNDUP(old) - PGROUNDUP(new)) / PGSIZE, 1);
        p->brk = new;
        return old;
    }
    case SYS_mmap:             /* mmap(addr, len): reserve; pages come on first touch */
        if (a0 < USER_MMAP_BASE || a0 + a1 > USER_MMAP_END || a0 % PGSIZE) return -1;
        return a0;
    case SYS_munmap:
        if (a0 < USER_MMAP_BASE || a0 + a1 > USER_MMAP_END || a0 % PGSIZE) return -1;
        vm_unmap(p->pt, a0, PGROUNDUP(a1) / PGSIZE, 1);
        return 0;
    case SYS_time: return rdtime();
    case SYS_timebase: return boot_info.timebase;
    case SYS_fork: return proc_fork();
    case SYS_wait: return proc_wait(a0);
    case SYS_kill: return proc_kill((int)a0);
    case SYS_blk_read: return sys_blk(0, a0, a1, a2);
    case SYS_blk_write: return sys_blk(1, a0, a1, a2);
    case SYS_blk_flush: return blk_present() ? blk_flush() : -1;
    case SYS_blk_size: return blk_present() ? (long)blk_capacity() : -1;
    case SYS_net_info: case SYS_net_send: case SYS_net_recv:
        return sys_net(tf->regs[17], a0, a1, a2);
    case SYS_net_wait: return net_wait();
    case SYS_cons_write: {
        char buf[256];
        if (a2 > sizeof buf || copy_in(p->pt, buf, a1, a2, p->brk) < 0) return -1;
        return console_write(a0, buf, a2);
    }
    case SYS_stats: {          /* a0 = which: 0 faults, 1 COW copies, 2 PT updates, 3 hypercalls,
                                  4 FP saves, 5 FP restores, 6 first FP uses, 7 F and D there */
        u64 v[] = {vm_stats_faults, vm_stats_cow_copies, vm_stats_pt_updates, pv_hypercalls,
                   fp_saves, fp_restores, fp_first_uses, boot_info.has_fp};
        return a0 < sizeof v / sizeof v[0] ? (long)v[a0] : -1;
    }
    }
    return -1;
}

/* The instruction an illegal-instruction trap was for: stval, where the hardware puts
 * it (popek and QEMU do), else read from the process's memory. */
static u32 illegal_insn(struct proc *p, u64 pc, u64 stval) {
    u32 insn = 0;
    if (stval) return (u32)stval;
    if (copy_in(p->pt, &insn, pc, 2, p->brk) < 0) return 0;
    if ((insn & 3) == 3 && copy_in(p->pt, &insn, pc, 4, p->brk) < 0) return 0;
    return insn;
}

/* A kernel checks that the machine is in the state its trap handlers assume, as
 * xv6's usertrap and kerneltrap do: where the trap came from (sstatus.SPP) and
 * that interrupts are off (SIE).  On a CPU with a virtualization hole, under a
 * trap-and-emulate VMM, these are the checks that catch it. */
static void check_trap_state(int from_kernel) {
    u64 s = status_read();
    if (!!(s & SSTATUS_SPP) != from_kernel)
        panic("%s: not from %s mode (sstatus %p)", from_kernel ? "kernel_trap" : "user_trap",
              from_kernel ? "supervisor" : "user", s);
    if (s & SSTATUS_SIE) panic("trap with interrupts enabled (sstatus %p)", s);
}

void user_trap(struct trapframe *tf) {
    struct proc *p = current;
    check_trap_state(0);
    u64 scause = trap_cause(), stval = trap_value();
    tf->regs[0] = trap_pc();
    if (scause == CAUSE_ECALL_U) {
        tf->regs[0] += 4;
        tf->regs[10] = syscall(tf);
    } else if (scause == (SCAUSE_IRQ | IRQ_S_TIMER)) {
        timer_ticks++;
        timer_arm();
        yield();                       /* preemption */
    } else if (scause == (SCAUSE_IRQ | IRQ_S_EXTERNAL)) {
        net_interrupt();               /* a NIC: wake who waits for it */
    } else if (scause == CAUSE_FETCH_PF || scause == CAUSE_LOAD_PF || scause == CAUSE_STORE_PF) {
        if (vm_fault(p->pt, stval, scause == CAUSE_STORE_PF, p->brk) < 0) {
            kprintf("kernel: pid %d: bad access at %p (pc %p, cause %d): killed\n",
                    p->pid, stval, tf->regs[0], (int)scause);
            proc_exit(-11);
        }
    } else if (scause == CAUSE_ILLEGAL && fp_first_use(illegal_insn(p, tf->regs[0], stval))) {
        /* the process has FP state now: the instruction runs again */
    } else {
        kprintf("kernel: pid %d: exception %d at pc %p (tval %p): killed\n",
                p->pid, (int)scause, tf->regs[0], stval);
        proc_exit(-4);
    }
    if (p->killed) proc_exit(-9);
    return_to_user();
}

void kernel_trap(struct trapframe *tf) {
    check_trap_state(1);
    u64 scause = trap_cause();
    if (scause == (SCAUSE_IRQ | IRQ_S_TIMER)) {
        timer_ticks++;
        timer_arm();
        return;
    }
    if (scause == (SCAUSE_IRQ | IRQ_S_EXTERNAL)) {    /* in the scheduler's wfi */
        net_interrupt();
        return;
    }
    panic("kernel trap: cause %p pc %p tval %p", scause, trap_pc(), trap_value());
}

/* Interrupts reach the kernel: with them enabled, a timer tick (armed for 1 ms from
 * now) must come within 100 ms (a kernel calibrating its delay loop waits for ticks
 * the same way). */
void timer_check(void) {
    u64 ticks = timer_ticks, start = rdtime();
    set_timer(start + boot_info.timebase / 1000);
    irq_enable();
    while (timer_ticks == ticks && rdtime() - start < boot_info.timebase / 10)
        asm volatile("wfi");
    irq_disable();
    if (timer_ticks == ticks)
        panic("no timer interrupt in 100 ms with interrupts enabled (sstatus %p)",
              status_read());
    kprintf("kernel: timer interrupts arrive\n");
}
