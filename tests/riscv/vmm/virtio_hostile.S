# A hostile virtio driver: it lays out queue 0 of the virtio-blk disk at
# 0x10001000 in every way the rules forbid, notifies, and prints what the device
# did: "X:R" when the device refused (DEVICE_NEEDS_RESET), "X:K" when the case
# ended as a well-behaved device must (the request served, refused with an error
# status, or ignored).  The VMM must survive all of it, in bounded time, and a
# VM beside it must not notice.  (tests/test_hostile_guests.py)
#
#   A used ring laid over the avail ring     (each completion a new request: endless)
#   B a descriptor chain that loops          C a chain through the whole queue, twice
#   D a next index beyond the queue          E a buffer outside guest RAM
#   F a buffer on a device (the UART)        G a buffer of length 2^32-1
#   H an indirect descriptor (not offered)   I the avail index jumping 1000 ahead
#   J queue sizes 0 and 3 (refused: the queue keeps 8), then a good read
#   K a notify before the queue is ready (ignored)
#   L a good read of sector 0 after all that ("POPEK-VMM-DISK!!")
#   M eight writes far past the disk's end, 4 MiB of buffer each (each refused at once)
    .equ VIRTIO, 0x10001000
    .equ QSIZE, 8
    .section .text
    .globl _start
_start:
    la sp, stack_top
    la s0, area                 # s0: desc, s0+0x1000: avail, s0+0x2000: used,
    li s1, VIRTIO               # s0+0x3000: header, s0+0x4000: data, s0+0x5000: status

    # -- A: used ring over the avail ring --
    li a0, 'A'
    call begin
    addi a0, s0, 0
    li t0, 0x1000
    add a1, s0, t0
    mv a2, a1
    call setup
    call good_read_chain
    call submit
    call report

    # -- B: a loop (0 -> 0) --
    li a0, 'B'
    call begin
    call setup_normal
    li a1, 16
    li a2, 1                    # NEXT
    li a3, 0
    li a4, 0
    call desc_hdr
    call submit
    call report

    # -- C: 0 -> 1 -> ... -> 7 -> 0 --
    li a0, 'C'
    call begin
    call setup_normal
    li s2, 0
1:  mv a4, s2
    addi a3, s2, 1
    andi a3, a3, QSIZE - 1
    li a1, 16
    li a2, 1
    call desc_hdr
    addi s2, s2, 1
    li t0, QSIZE
    bne s2, t0, 1b
    call submit
    call report

    # -- D: next = 200 --
    li a0, 'D'
    call begin
    call setup_normal
    li a1, 16
    li a2, 1
    li a3, 200
    li a4, 0
    call desc_hdr
    call submit
    call report

    # -- E: a buffer outside RAM --
    li a0, 'E'
    call begin
    call setup_normal
    li a0, 0x400000000000
    li a1, 16
    li a2, 0
    li a3, 0
    li a4, 0
    call desc
    call submit
    call report

    # -- F: a buffer on the UART --
    li a0, 'F'
    call begin
    call setup_normal
    li a0, 0x10000000
    li a1, 16
    li a2, 0
    li a3, 0
    li a4, 0
    call desc
    call submit
    call report

    # -- G: length 2^32-1 --
    li a0, 'G'
    call begin
    call setup_normal
    li a1, 0xffffffff
    li a2, 0
    li a3, 0
    li a4, 0
    call desc_hdr
    call submit
    call report

    # -- H: indirect --
    li a0, 'H'
    call begin
    call setup_normal
    li a1, 32
    li a2, 4                    # INDIRECT
    li a3, 0
    li a4, 0
    call desc_hdr
    call submit
    call report

    # -- I: avail idx 1000 --
    li a0, 'I'
    call begin
    call setup_normal
    call good_read_chain
    li t0, 0x1000
    add t0, s0, t0
    li t1, 1000
    sh t1, 2(t0)
    sw zero, 0x50(s1)
    call report

    # -- J: queue sizes 0 and 3, then a good read --
    li a0, 'J'
    call begin
    call setup_normal
    sw zero, 0x38(s1)
    li t0, 3
    sw t0, 0x38(s1)
    call good_read_chain
    call submit
    call report_read

    # -- K: notify before ready --
    li a0, 'K'
    call begin
    sw zero, 0x70(s1)           # reset: the queue is not ready
    li t0, 0x2000
    add t0, s0, t0
    sw zero, 0(t0)              # used idx 0
    call good_read_chain
    li t0, 0x1000
    add t0, s0, t0
    li t1, 1
    sh t1, 2(t0)
    sw zero, 0x50(s1)           # notify queue 0
    li t0, 0x2000
    add t0, s0, t0
    lhu t1, 2(t0)               # used idx: still 0?
    li a0, 'K'
    beqz t1, 2f
    li a0, 'X'
2:  call putchar
    li a0, ' '
    call putchar

    # -- L: a good read after all that --
    li a0, 'L'
    call begin
    call setup_normal
    call good_read_chain
    call submit
    call report_read

    # -- M: eight 4 MiB writes far past the end, each refused at once --
    li a0, 'M'
    call begin
    call setup_normal
    li t0, 0x3000
    add t0, s0, t0
    li t1, 1                    # VIRTIO_BLK_T_OUT
    sw t1, 0(t0)
    li t1, 1
    slli t1, t1, 40             # sector 2^40
    sd t1, 8(t0)
    li s2, 0
    # Each chain (header, a 4 MiB readable buffer, a status byte) is offered and
    # served before the next one is built over the same three descriptors.
3:  li t0, 0x3000
    add a0, s0, t0
    li a1, 16
    li a2, 1
    li a3, 1
    li a4, 0
    call desc
    la a0, bigbuf
    li a1, 0x400000
    li a2, 1
    li a3, 2
    li a4, 1
    call desc
    li t0, 0x5000
    add a0, s0, t0
    li a1, 1
    li a2, 2                    # WRITE
    li a3, 0
    li a4, 2
    call desc
    li t0, 0x5000
    add t0, s0, t0
    li t1, 0xff
    sb t1, 0(t0)
    addi a0, s2, 1              # avail idx = chains so far + 1
    call submit_idx
    li t0, 0x5000
    add t0, s0, t0
    lbu t1, 0(t0)
    li t2, 1                    # VIRTIO_BLK_S_IOERR
    bne t1, t2, 4f
    addi s2, s2, 1
    li t0, 8
    bne s2, t0, 3b
4:  li a0, 'K'
    li t0, 8
    beq s2, t0, 5f
    li a0, 'X'
5:  call putchar
    li a0, '\n'
    call putchar

    li a7, 0x53525354           # SRST: shutdown, success
    li a6, 0
    li a0, 0
    li a1, 0
    ecall
6:  j 6b

# -- subroutines (a0..a4 arguments; s0 = area, s1 = the device) --------------------
begin:                          # print "<letter>:"
    addi sp, sp, -16
    sd ra, 0(sp)
    call putchar
    li a0, ':'
    call putchar
    ld ra, 0(sp)
    addi sp, sp, 16
    ret

setup_normal:                   # the queue laid out properly
    mv a0, s0
    li t0, 0x1000
    add a1, s0, t0
    li t0, 0x2000
    add a2, s0, t0
    # fall through
setup:                          # reset, negotiate VERSION_1, queue 0 at a0/a1/a2, ready
    sw zero, 0x70(s1)
    li t0, 1
    sw t0, 0x70(s1)
    li t0, 3
    sw t0, 0x70(s1)
    li t0, 1
    sw t0, 0x24(s1)
    sw t0, 0x20(s1)
    sw zero, 0x24(s1)
    sw zero, 0x20(s1)
    li t0, 11
    sw t0, 0x70(s1)
    sw zero, 0x30(s1)
    li t0, QSIZE
    sw t0, 0x38(s1)
    sw a0, 0x80(s1)
    srli t0, a0, 32
    sw t0, 0x84(s1)
    sw a1, 0x90(s1)
    srli t0, a1, 32
    sw t0, 0x94(s1)
    sw a2, 0xa0(s1)
    srli t0, a2, 32
    sw t0, 0xa4(s1)
    li t0, 0x1000               # clear the rings' indices
    add t0, s0, t0
    sw zero, 0(t0)
    li t0, 0x2000
    add t0, s0, t0
    sw zero, 0(t0)
    li t0, 1
    sw t0, 0x44(s1)
    li t0, 15
    sw t0, 0x70(s1)
    ret

desc_hdr:                       # descriptor a4 at the header: len a1, flags a2, next a3
    li t0, 0x3000
    add a0, s0, t0
desc:                           # descriptor a4: addr a0, len a1, flags a2, next a3
    slli t0, a4, 4
    add t0, s0, t0
    sd a0, 0(t0)
    sw a1, 8(t0)
    sh a2, 12(t0)
    sh a3, 14(t0)
    ret

good_read_chain:                # 0: header (read sector 0), 1: 512 data bytes, 2: status
    addi sp, sp, -16
    sd ra, 0(sp)
    li t0, 0x3000
    add t0, s0, t0
    sd zero, 0(t0)              # VIRTIO_BLK_T_IN, reserved
    sd zero, 8(t0)              # sector 0
    li t0, 0x4000
    add t0, s0, t0
    sd zero, 0(t0)
    sd zero, 8(t0)
    li a1, 16
    li a2, 1
    li a3, 1
    li a4, 0
    call desc_hdr
    li t0, 0x4000
    add a0, s0, t0
    li a1, 512
    li a2, 3                    # NEXT | WRITE
    li a3, 2
    li a4, 1
    call desc
    li t0, 0x5000
    add a0, s0, t0
    li a1, 1
    li a2, 2
    li a3, 0
    li a4, 2
    call desc
    ld ra, 0(sp)
    addi sp, sp, 16
    ret

submit:                         # offer chain 0 as the first request, and notify
    li a0, 1
submit_idx:                     # offer chain 0 with avail idx a0, and notify
    li t0, 0x1000
    add t0, s0, t0
    addi t1, a0, -1
    andi t1, t1, QSIZE - 1
    slli t1, t1, 1
    add t1, t0, t1
    sh zero, 4(t1)              # ring[idx - 1] = 0
    fence
    sh a0, 2(t0)
    fence
    sw zero, 0x50(s1)           # notify queue 0
    ret

report:                         # "R " if the device needs a reset, else "K "
    addi sp, sp, -16
    sd ra, 0(sp)
    lw t0, 0x70(s1)
    andi t0, t0, 0x40
    li a0, 'K'
    beqz t0, 1f
    li a0, 'R'
1:  call putchar
    li a0, ' '
    call putchar
    ld ra, 0(sp)
    addi sp, sp, 16
    ret

report_read:                    # "K " if the read came back with the disk's first bytes
    addi sp, sp, -16
    sd ra, 0(sp)
    li a0, 'X'
    lw t0, 0x70(s1)
    andi t0, t0, 0x40
    bnez t0, 1f
    li t0, 0x4000
    add t0, s0, t0
    ld t1, 0(t0)
    li t2, 0x4d562d4b45504f50   # "POPEK-VM"
    bne t1, t2, 1f
    li a0, 'K'
1:  call putchar
    li a0, ' '
    call putchar
    ld ra, 0(sp)
    addi sp, sp, 16
    ret

putchar:                        # SBI legacy console putchar
    li a7, 1
    ecall
    ret

    .section .bss
    .align 12
area:
    .zero 0x6000
    .align 12
bigbuf:
    .zero 0x400000
stack_bottom:
    .zero 4096
stack_top:
