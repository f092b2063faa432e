# An exit-cost probe any PVH-capable VMM can boot (popek, and QEMU's -kernel), so
# bench/bench_kvm.py can time the same guest under both.  Entered through the PVH
# note in flat 32-bit protected mode with ebx -> hvm_start_info; the command line
# is "T N": test T, N times:
#   1  outb to port 0x80 (POST: a no-op device in popek and QEMU; handled in user space)
#   2  cpuid             (handled inside KVM)
#   5  movb to unassigned MMIO at 0xdff00000 (handled in user space)
# then writes 0 to the debug-exit port 0x501 (QEMU: -device isa-debug-exit,iobase=0x501).
    .section .note.pvh, "a", @note
    .align 4
    .long 4, 4, 18          # namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long pvh_start

    .section .text
    .code32
    .globl pvh_start, _start
_start:
pvh_start:
    mov 24(%ebx), %esi      # hvm_start_info.cmdline_paddr (low half)
    movzbl (%esi), %ebx
    sub $'0', %ebx          # T
    add $2, %esi
    xor %ecx, %ecx          # N, in decimal
1:  movzbl (%esi), %eax
    sub $'0', %eax
    cmp $9, %eax
    ja 2f
    imul $10, %ecx
    add %eax, %ecx
    inc %esi
    jmp 1b
2:  test %ecx, %ecx
    jz done
    cmp $1, %ebx
    je pio
    cmp $2, %ebx
    je cpuid_loop
    cmp $5, %ebx
    je mmio
    jmp done
pio:
    outb %al, $0x80
    dec %ecx
    jnz pio
    jmp done
cpuid_loop:
    mov %ecx, %edi
3:  xor %eax, %eax
    cpuid
    dec %edi
    jnz 3b
    jmp done
mmio:
    mov $0xdff00000, %edi
4:  movb %al, (%edi)
    dec %ecx
    jnz 4b
done:
    mov $0x501, %dx
    xor %eax, %eax
    outb %al, %dx
5:  cli
    hlt
    jmp 5b
    .section .note.GNU-stack, "", @progbits
