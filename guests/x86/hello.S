# A tiny x86-64 guest, entered by popek's KVM backend in long mode, ring 0:
# prints a line on the UART (port 0x3f8), makes exactly 1000 writes to the
# null port (0x510), and ends through the debug-exit port (0x501) with code 0.
    .code64
    .section .text
    .globl _start
_start:
    lea msg(%rip), %rsi
    mov $0x3f8, %dx
1:  movb (%rsi), %al
    test %al, %al
    jz 2f
    outb %al, %dx
    inc %rsi
    jmp 1b
2:  mov $1000, %ecx
    mov $0x510, %dx
3:  outb %al, %dx
    loop 3b
    mov $0x501, %dx
    xor %eax, %eax
    outb %al, %dx
    hlt
msg:
    .asciz "hello from x86-64 long mode under KVM\n"
