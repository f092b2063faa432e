"""Where everything lives in an x86-64 guest's physical address space.

::

    0x0000_0000 ┌──────────────────────────────┐
                │ real-mode IVT, BIOS data     │  left zero
    0x0000_0500 │ GDT                          │  null, code32 0x08, code64 0x10, data
                │                              │  0x18, user data 0x23, user code64 0x2b
    0x0000_1000 │ TSS + I/O permission bitmap  │  rsp0 for ring-3 traps, all ports open
    0x0000_7000 │ boot_params (zero page)      │  Linux 64-bit boot protocol
    0x0000_8000 │ probe parameters             │  kvm-check's probe guest reads them here
    0x0000_9000 │ PML4 → PDPT → 4 PDs          │  identity map of the first 4 GiB, 2 MiB
                │                              │  pages, user-accessible (ring-3 probes)
    0x0000_f000 │ hvm_start_info + memory map  │  PVH boot
    0x0002_0000 │ kernel command line          │  up to 64 KiB
    0x0007_f000 │ initial stack (grows down)   │  tiny guests only; Linux brings its own
    0x0009_fc00 │ MP table (EBDA)              │  --smp: lists the vCPUs for Linux
    0x000a_0000 ├──────────────────────────────┤
                │ legacy hole (VGA, BIOS)      │  e820: reserved
    0x0010_0000 ├──────────────────────────────┤
                │ kernel image                 │  ELF segments, or bzImage's protected-
                │                              │  mode part
                │ ...                          │
                │ initrd                       │  at the top of RAM, page-aligned
    RAM end     ├──────────────────────────────┤  -m (at most MMIO_BASE)
                │ (unmapped)                   │
    0xd000_0000 │ virtio-mmio devices          │  0x1000 each, IRQ 5, 6, ...
    0xe000_0000 │ PCI memory BARs              │  each aligned to its size
    0xfec0_0000 │ IOAPIC (in KVM)              │
    0xfee0_0000 │ local APIC (in KVM)          │
    0xfffb_c000 │ VMX identity map, TSS pages  │  KVM_SET_IDENTITY_MAP_ADDR/TSS_ADDR
    0x1_0000_0000
"""

GDT = 0x500
TSS = 0x1000                # 64-bit TSS + I/O bitmap (0x1000-0x3068), so ring 3 can
                            # trap back to ring 0 and use ports
BOOT_PARAMS = 0x7000
PROBE_PARAMS = 0x8000
PML4 = 0x9000
PDPT = 0xA000
PD = 0xB000                 # four page directories: 0xb000-0xefff
START_INFO = 0xF000         # PVH hvm_start_info, then its memory map at +0x100
CMDLINE = 0x20000
CMDLINE_MAX = 0x10000
STACK_TOP = 0x7F000
MPTABLE = 0x9FC00
LEGACY_HOLE = 0xA0000
HIMEM = 0x100000

MMIO_BASE = 0xD000_0000
VIRTIO_MMIO_SIZE = 0x1000
VIRTIO_MMIO_FIRST_IRQ = 5
PCI_BAR_BASE = 0xE000_0000
PCI_BAR_END = 0xFEC0_0000   # (the IOAPIC)
PCI_IO_BASE = 0xC000        # PCI I/O BARs (e1000's), above the legacy ports
IOAPIC = 0xFEC0_0000
LAPIC = 0xFEE0_0000
IDENTITY_MAP = 0xFFFB_C000
TSS_PAGES = 0xFFFB_D000

# Port I/O.
UART_PORT, UART_IRQ = 0x3F8, 4
I8042_PORT = 0x64           # writing 0xfe here resets the machine (Linux reboot=k)
POST_PORT = 0x80            # Linux's io_delay writes here
DEBUG_EXIT_PORT = 0x501     # writing v ends the run with exit code v
NULL_PORT = 0x510           # does nothing: exit-cost measurements write here
PCI_CONFIG_ADDRESS, PCI_CONFIG_DATA = 0xCF8, 0xCFC

E820_RAM, E820_RESERVED = 1, 2


def e820(memory: int) -> list[tuple[int, int, int]]:
    """The memory map Linux is given: (address, size, type)."""
    return [(0, MPTABLE, E820_RAM),
            (MPTABLE, LEGACY_HOLE - MPTABLE, E820_RESERVED),
            (0xF0000, 0x10000, E820_RESERVED),
            (HIMEM, memory - HIMEM, E820_RAM)]
