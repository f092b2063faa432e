# Exit-cost probe for `popek kvm-check` and `popek calibrate`.  The host writes a
# test number at 0x8000 and a count N at 0x8008 (layout.PROBE_PARAMS); the guest
# starts in long mode, ring 0, and runs N of:
#   1  outb to the null port 0x510   (an exit handled by popek, in Python)
#   2  cpuid                         (an exit handled inside KVM)
#   3  add + dec + jnz               (no exit: guest instruction speed)
#   4  hlt                           (an exit to popek; ring 0 only)
#   5  movb to unassigned MMIO       (an exit handled by popek, in Python)
# Adding 0x100 to the test number runs it in ring 3 (IOPL 3, so `out` is allowed);
# the VMM's GDT has user code at 0x28 and user data at 0x20.  Either way the probe
# ends through the debug-exit port 0x501.
    .code64
    .section .text
    .globl _start
_start:
    mov 0x8000, %rbx
    mov 0x8008, %rcx
    test $0x100, %rbx
    jz dispatch
    and $0xff, %rbx
    # iretq to ring 3: ss, rsp, rflags (IOPL 3), cs, rip
    pushq $0x23
    pushq $0x70000
    pushq $0x3002
    pushq $0x2b
    lea dispatch(%rip), %rax
    pushq %rax
    iretq
dispatch:
    test %rcx, %rcx
    jz done
    cmp $1, %rbx
    je pio
    cmp $2, %rbx
    je cpuid_loop
    cmp $3, %rbx
    je alu
    cmp $4, %rbx
    je hlt_loop
    cmp $5, %rbx
    je mmio
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
    jmp done
hlt_loop:
4:  hlt
    dec %rcx
    jnz 4b
    jmp done
mmio:
    mov $0xdff00000, %rdi          # above the virtio-mmio slots, below the PCI BARs: nothing
5:  movb %al, (%rdi)
    dec %rcx
    jnz 5b
done:
    mov $0x501, %dx
    xor %eax, %eax
    outb %al, %dx
    hlt
