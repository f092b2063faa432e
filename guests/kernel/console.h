/* Console output through a device, for the console benchmarks: the 16550 written
 * register by register, or a virtio console (one buffer per write).  The kernel's own
 * messages go through SBI. */
#pragma once
#include "types.h"

#define CONSOLE_UART 1
#define CONSOLE_VIRTIO 2

void console_init(void);
long console_write(int which, const void *buf, u64 n);   /* bytes written, -1 no device */
