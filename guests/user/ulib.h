/* The user library: system calls and a few helpers. */
#pragma once
typedef unsigned long u64;
typedef long i64;
typedef unsigned char u8;

long sys_write(int fd, const void *buf, u64 n);
void sys_exit(int code) __attribute__((noreturn));
long sys_yield(void);
long sys_getpid(void);
long sys_sbrk(long delta);
long sys_mmap(u64 addr, u64 len);
long sys_munmap(u64 addr, u64 len);
long sys_time(void);
long sys_fork(void);
long sys_wait(int *status);
long sys_kill(int pid);
long sys_blk_read(u64 sector, void *buf, u64 count);
long sys_blk_write(u64 sector, const void *buf, u64 count);
long sys_blk_flush(void);
long sys_blk_size(void);
long sys_timebase(void);
long sys_stats(int which);

void printf(const char *fmt, ...);
void *memset(void *d, int c, u64 n);
int strcmp(const char *a, const char *b);
const char *strstr(const char *h, const char *n);
u64 strlen(const char *s);
static inline u64 rdtime(void) { u64 t; asm volatile("rdtime %0" : "=r"(t)); return t; }
static inline u64 rdcycle(void) { u64 c; asm volatile("rdcycle %0" : "=r"(c)); return c; }
long sys_net_info(int nic, u8 mac[6]);
long sys_net_send(int nic, const void *frame, u64 len);
long sys_net_recv(int nic, void *buf, u64 size);
long sys_net_wait(void);
long sys_cons_write(int which, const void *buf, u64 n);
void *memcpy(void *d, const void *s, u64 n);
int memcmp(const void *a, const void *b, u64 n);

/* net.c: the network programs init runs ("netecho", "netbench") */
void net_echo(void);
void net_bench(u64 timebase, int pingpongs, int bulk_frames);
