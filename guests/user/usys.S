# System call stubs: a7 = number (kernel/syscall.h), arguments in a0..a2.
#include "../kernel/syscall.h"
.macro SYSCALL name, num
    .globl sys_\name
sys_\name:
    li a7, \num
    ecall
    ret
.endm
    .section .text
    SYSCALL write, SYS_write
    SYSCALL exit, SYS_exit
    SYSCALL yield, SYS_yield
    SYSCALL getpid, SYS_getpid
    SYSCALL sbrk, SYS_sbrk
    SYSCALL mmap, SYS_mmap
    SYSCALL munmap, SYS_munmap
    SYSCALL time, SYS_time
    SYSCALL fork, SYS_fork
    SYSCALL wait, SYS_wait
    SYSCALL kill, SYS_kill
    SYSCALL blk_read, SYS_blk_read
    SYSCALL blk_write, SYS_blk_write
    SYSCALL blk_flush, SYS_blk_flush
    SYSCALL blk_size, SYS_blk_size
    SYSCALL timebase, SYS_timebase
    SYSCALL stats, SYS_stats
    SYSCALL net_info, SYS_net_info
    SYSCALL net_send, SYS_net_send
    SYSCALL net_recv, SYS_net_recv
    SYSCALL net_wait, SYS_net_wait
    SYSCALL cons_write, SYS_cons_write

    .section .text.start
    .globl _start
_start:
    # a0 = the argument string (on the stack), sp set by the kernel.
    call main
    call sys_exit
