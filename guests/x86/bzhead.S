# The first part of a minimal bzImage (Linux x86 boot protocol 2.15 header) for
# testing popek's loader: a setup area holding only the header, then the
# protected-mode part, loaded at 1 MiB, whose 64-bit entry is at +0x200 and calls
# bzmain(boot_params) in bzprobe.c.  Linked at 0xffc00 so that the protected-mode
# part lands at exactly 0x100000.
    .section .text.head, "ax"
    .globl _head
_head:
    .org 0x1f1
    .byte 1                 # setup_sects: setup is (1 + 1) * 512 bytes
    .org 0x200
    .byte 0xeb, 0x66        # jump over the header: its length is 0x202 + 0x66
    .ascii "HdrS"
    .word 0x020f            # protocol 2.15
    .org 0x211
    .byte 0x01              # loadflags: LOADED_HIGH
    .org 0x22c
    .long 0x7fffffff        # initrd_addr_max
    .org 0x236
    .word 0x0001            # xloadflags: XLF_KERNEL_64
    .long 2047              # cmdline_size
    .org 0x260
    .long 0x200000          # init_size
    .org 0x400              # ---- protected-mode part, at 0x100000 ----
startup_32:
    hlt                     # the 32-bit entry: popek does not use it
    .org 0x600              # 0x100200: the 64-bit entry, rsi = boot_params
    .code64
startup_64:
    mov %rsi, %rdi
    mov $0x7f000, %rsp
    call bzmain
    mov $0x501, %dx
    outb %al, %dx
1:  hlt
    jmp 1b
    .section .note.GNU-stack, "", @progbits
