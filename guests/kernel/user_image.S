# The user program, embedded: the kernel loads it as process 1 (init).
    .section .rodata
    .balign 8
    .globl user_elf, user_elf_end
user_elf:
    .incbin USER_ELF
user_elf_end:
