# Exit-cost probe for `popek kvm-check`: the host writes a test number at 0x8000
# and a count N at 0x8008; the guest (long mode, ring 0) runs N of:
#   1  outb to the null port 0x510   (an exit handled by popek, in Python)
#   2  cpuid                         (an exit handled inside KVM)
#   3  add                           (no exit: guest instruction speed)
# then ends through the debug-exit port.
    .code64
    .section .text
    .globl _start
_start:
    mov 0x8000, %rbx
    mov 0x8008, %rcx
    test %rcx, %rcx
    jz done
    cmp $1, %rbx
    je pio
    cmp $2, %rbx
    je cpuid_loop
    cmp $3, %rbx
    je alu
    jmp done
pio:
    mov $0x510, %dx
1:  outb %al, %dx
    dec %rcx
    jnz 1b
    jmp done
cpuid_loop:
    mov %rcx, %r8
2:  xor %eax, %eax
    cpuid
    dec %r8
    jnz 2b
    jmp done
alu:
3:  add $1, %rax
    dec %rcx
    jnz 3b
done:
    mov $0x501, %dx
    xor %eax, %eax
    outb %al, %dx
    hlt
