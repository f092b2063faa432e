"""x86-64 CPU state for the ways a guest is entered: GDT, page tables and
segment/control registers for 64-bit long mode (tiny guests, Linux's 64-bit
boot protocol) and for flat 32-bit protected mode (PVH)."""

from __future__ import annotations

from popek.kvm import abi, layout

CR0_PE, CR0_ET, CR0_PG = 1, 1 << 4, 1 << 31
CR4_PAE = 1 << 5
EFER_LME, EFER_LMA = 1 << 8, 1 << 10
RFLAGS_RESERVED = 1 << 1
RFLAGS_IOPL3 = 3 << 12

# Selectors: Linux's boot protocol wants __BOOT_CS = 0x10 and __BOOT_DS = 0x18.
CODE64, DATA, USER_DATA, USER_CODE64, TSS_SEL = 0x10, 0x18, 0x20, 0x28, 0x30
CODE32 = 0x08

GDT_ENTRIES = [
    0,
    0x00CF9B000000FFFF,     # 0x08 code, 32-bit, ring 0 (PVH entry)
    0x00AF9B000000FFFF,     # 0x10 code, 64-bit, ring 0
    0x00CF93000000FFFF,     # 0x18 data, ring 0
    0x00CFF3000000FFFF,     # 0x20 data, ring 3
    0x00AFFB000000FFFF,     # 0x28 code, 64-bit, ring 3
]
PTE_PRESENT, PTE_WRITE, PTE_USER, PTE_HUGE = 1, 2, 4, 0x80


def _tss_descriptor(base: int, limit: int) -> tuple[int, int]:
    low = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89 << 40) \
        | (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56)
    return low, base >> 32


TSS_SIZE = 104
IO_BITMAP = 8192 + 1        # one bit per port, all clear (allowed), and the 0xff terminator
TSS_LIMIT = TSS_SIZE + IO_BITMAP - 1


def write_tables(ram, rsp0: int = layout.STACK_TOP) -> None:
    """GDT, TSS and an identity map of the first 4 GiB into guest RAM.

    The TSS carries an all-clear I/O permission bitmap: ring-3 probes use ``out``,
    and a software KVM (PVM) checks the bitmap even when IOPL is 3."""
    entries = GDT_ENTRIES + list(_tss_descriptor(layout.TSS, TSS_LIMIT))
    for i, d in enumerate(entries):
        ram.write_int(layout.GDT + 8 * i, 8, d)
    ram.write(layout.TSS, bytes(TSS_SIZE + IO_BITMAP - 1) + b"\xff")
    ram.write_int(layout.TSS + 4, 8, rsp0)                 # rsp0: where ring 3 traps land
    ram.write_int(layout.TSS + 102, 2, TSS_SIZE)           # the bitmap follows the TSS
    flags = PTE_PRESENT | PTE_WRITE | PTE_USER
    ram.write_int(layout.PML4, 8, layout.PDPT | flags)
    for g in range(4):
        pd = layout.PD + g * 0x1000
        ram.write_int(layout.PDPT + 8 * g, 8, pd | flags)
        ram.write(pd, b"".join((((g << 30) | (i << 21)) | flags | PTE_HUGE).to_bytes(8, "little")
                               for i in range(512)))


def _segment(selector: int, code: bool, long: bool) -> abi.Segment:
    return abi.Segment(base=0, limit=0xFFFFFFFF, selector=selector, type=11 if code else 3,
                       present=1, dpl=0, db=0 if long else 1, s=1, l=int(long), g=1)


def _common(s: abi.Sregs) -> None:
    s.gdt = abi.DTable(base=layout.GDT, limit=8 * (len(GDT_ENTRIES) + 2) - 1)
    s.idt = abi.DTable(base=0, limit=0)
    s.tr = abi.Segment(base=layout.TSS, limit=TSS_LIMIT, selector=TSS_SEL, type=11, present=1)
    s.ldt = abi.Segment(type=2, present=1, unusable=1)


def long_mode(vcpu, entry: int, rsi: int = 0, rsp: int = layout.STACK_TOP, rdi: int = 0) -> None:
    """64-bit mode, ring 0, paging on (identity map), interrupts off, at ``entry``."""
    s = vcpu.get_sregs()
    s.cs = _segment(CODE64, True, True)
    s.ds = s.es = s.fs = s.gs = s.ss = _segment(DATA, False, False)
    _common(s)
    s.cr3 = layout.PML4
    s.cr4 = CR4_PAE
    s.cr0 = CR0_PE | CR0_ET | CR0_PG
    s.efer = EFER_LME | EFER_LMA
    vcpu.set_sregs(s)
    r = abi.Regs()
    r.rip, r.rsi, r.rdi, r.rsp, r.rflags = entry, rsi, rdi, rsp, RFLAGS_RESERVED
    vcpu.set_regs(r)


def protected_mode(vcpu, entry: int, rbx: int = 0) -> None:
    """Flat 32-bit protected mode, paging off, at ``entry`` (the PVH entry state)."""
    s = vcpu.get_sregs()
    s.cs = _segment(CODE32, True, False)
    s.ds = s.es = s.fs = s.gs = s.ss = _segment(DATA, False, False)
    _common(s)
    s.cr0 = CR0_PE | CR0_ET
    s.cr4 = s.efer = s.cr3 = 0
    vcpu.set_sregs(s)
    r = abi.Regs()
    r.rip, r.rbx, r.rflags = entry, rbx, RFLAGS_RESERVED
    vcpu.set_regs(r)
