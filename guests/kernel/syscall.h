/* System call numbers (a7), shared with the user library. */
#pragma once
#define SYS_write 1
#define SYS_exit 2
#define SYS_yield 3
#define SYS_getpid 4
#define SYS_sbrk 5
#define SYS_mmap 6
#define SYS_munmap 7
#define SYS_time 8
#define SYS_fork 9
#define SYS_wait 10
#define SYS_kill 11
#define SYS_blk_read 12
#define SYS_blk_write 13
#define SYS_blk_flush 14
#define SYS_blk_size 15
#define SYS_timebase 16
#define SYS_stats 17
#define SYS_net_info 18       /* a0 = NIC, a1 = 6 bytes for its MAC: 0, or -1 if none */
#define SYS_net_send 19       /* a0 = NIC, a1 = frame, a2 = length: 0 sent, -1 ring full */
#define SYS_net_recv 20       /* a0 = NIC, a1 = buffer, a2 = its size: bytes, 0 nothing yet */
#define SYS_net_wait 21       /* sleep until some NIC has a frame: 0, or -1 without NICs */
#define SYS_cons_write 22     /* a0 = 1 the 16550, 2 the virtio console; a1 = buf, a2 = n */
