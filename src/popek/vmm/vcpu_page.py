"""The vCPU page: supervisor registers a paravirtual guest reads and writes with plain
loads and stores instead of trapping CSR instructions, as Xen's vcpu_info.

A PV guest gives the VMM one page of its RAM per vCPU (hypercall VCPU_PAGE,
guests/kernel/popek_hypercall.h); the fields start at byte 2048 of it, so a guest
that maps the page at the top of its address space reaches each with an offset
from x0 (its trap entry has no free register):

    offset  field      who writes it
    0       sstatus    SIE SPIE SPP FS: the guest (interrupt enable, sret's stack,
                       FP state), the VMM (trap entry, injection)
    8       sepc       both (the guest steps past an ecall; trap entry sets it)
    16      scause     the VMM (trap entry)
    24      stval      the VMM (trap entry)
    32      sscratch   the guest (its trap entry's stack swap)
    40      stvec      the guest
    48      pending    the VMM: interrupts pending and enabled in sie, which the
                       guest must ask for (any hypercall) when it sets SIE
    56      (spare)    the guest's own: its trap entry saves a register there

The registers' truth is the vCPU's (vmm/vcpu.py) whenever the VMM runs: the page
is read into it at every exit and before each slice (:meth:`pull`), and written
back when the guest resumes (:meth:`push`).  FS is the hart's while the guest
runs (FP work dirties it there): a pull takes the page's FS only if the guest
changed it since the last push.  Only a VMM whose guest's registers are the
vCPU's (trap-and-emulate) offers the page; under hardware assist they are the
hart's VS registers, which the guest reads without exits anyway.
"""

from __future__ import annotations

import struct

from popek.riscv.csrs import MSTATUS_FS, MSTATUS_SIE, MSTATUS_SPIE, MSTATUS_SPP

FIELDS_OFFSET = 2048
LAYOUT = struct.Struct("<7Q")          # sstatus sepc scause stval sscratch stvec pending
REGISTERS = ("sepc", "scause", "stval", "sscratch", "stvec")
GUEST_STATUS = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP      # what the page's sstatus carries


class VcpuPage:
    def __init__(self, ram, gpa: int):
        self.ram = ram
        self.addr = gpa + FIELDS_OFFSET
        self.pushed = None              # the fields as last written, to see the guest's stores
        self.pulls = self.pushes = 0

    def pull(self, vcpu, hart) -> None:
        """The guest's stores since the last push, into the vCPU."""
        data = self.ram.read(self.addr, LAYOUT.size)
        if data == self.pushed:
            vcpu.fs_from_hart(hart)
            return
        self.pulls += 1
        status, *registers, _ = LAYOUT.unpack(data)
        # SIE, SPIE and SPP directly: none decides translation, so no context change
        # (an sstatus write through the CSR file would drop the shadow tables each time).
        vcpu.mstatus = (vcpu.mstatus & ~GUEST_STATUS) | (status & GUEST_STATUS)
        if self.pushed is not None and (status ^ LAYOUT.unpack(self.pushed)[0]) & MSTATUS_FS:
            self.take_fs(vcpu, hart, status)                     # the guest's FS store
        else:
            vcpu.fs_from_hart(hart)
        for name, value in zip(REGISTERS, registers):           # as csrw would write them
            vcpu.csrs.write(vcpu, name, value)

    def take_fs(self, vcpu, hart, status: int | None = None) -> None:
        """The page's FS is the guest's: after a store of it, or even if it equals what
        was pushed (SYNC with a0 = 1: the guest set FS after FP work of its own had
        dirtied the hart's)."""
        if status is None:
            status = LAYOUT.unpack(self.ram.read(self.addr, LAYOUT.size))[0]
        if vcpu.fs_writable:
            vcpu.mstatus = (vcpu.mstatus & ~MSTATUS_FS) | (status & MSTATUS_FS)
            vcpu.fs_to_hart(hart)

    def push(self, vcpu, hart) -> None:
        """The vCPU's registers as the guest must see them when it resumes."""
        vcpu.fs_from_hart(hart)
        data = LAYOUT.pack(vcpu.mstatus & (GUEST_STATUS | MSTATUS_FS), vcpu.sepc, vcpu.scause,
                           vcpu.stval, vcpu.sscratch, vcpu.stvec, vcpu.pending_enabled())
        if data != self.pushed:
            self.ram.write(self.addr, data)
            self.pushed = data
            self.pushes += 1
