"""An Intel MultiProcessor Specification (1.4) table: how a kernel without ACPI
learns which CPUs exist, where the IOAPIC is, and how ISA and PCI interrupts reach
it (Firecracker and kvmtool describe their VMs the same way).

Layout at ``layout.MPTABLE`` (in the EBDA, where Linux's scan looks):

    floating pointer "_MP_" (16 bytes) → configuration table "PCMP" (44-byte header)
    then entries: one processor per vCPU, buses ISA (0) and PCI (1), the IOAPIC,
    an I/O interrupt entry per ISA IRQ and per PCI device, and the local interrupts
    (ExtINT on LINT0, NMI on LINT1).
"""

from __future__ import annotations

import struct

from popek.kvm import layout

SPEC_REV = 4
APIC_VERSION, IOAPIC_VERSION = 0x14, 0x11
CPU_ENABLED, CPU_BSP = 1, 2
CPU_SIGNATURE = 0x600                 # family 6
CPU_FEATURES = 0x201                  # FPU, APIC
PROCESSOR, BUS, IOAPIC, IO_INTERRUPT, LOCAL_INTERRUPT = 0, 1, 2, 3, 4
INT, NMI, EXTINT = 0, 1, 3
CONFORMS = 0                          # polarity and trigger as the bus defines them
LEVEL_HIGH = 0x1 | (0x3 << 2)         # active high, level triggered (how KVM_IRQ_LINE drives)
ISA_BUS, PCI_BUS = 0, 1
ISA_IRQS = [i for i in range(16) if i != 2]   # IRQ 2 is the PIC cascade


def _checksum(data: bytes) -> int:
    return (-sum(data)) & 0xFF


def build(cpus: int, pci_irqs: dict[int, int], base: int = layout.MPTABLE) -> bytes:
    """The table's bytes, to be written at ``base``; ``pci_irqs`` maps PCI slot → IRQ."""
    ioapic_id = cpus
    entries = []
    for i in range(cpus):
        entries.append(struct.pack("<BBBBII8x", PROCESSOR, i, APIC_VERSION,
                                   CPU_ENABLED | (CPU_BSP if i == 0 else 0),
                                   CPU_SIGNATURE, CPU_FEATURES))
    entries.append(struct.pack("<BB6s", BUS, ISA_BUS, b"ISA   "))
    entries.append(struct.pack("<BB6s", BUS, PCI_BUS, b"PCI   "))
    entries.append(struct.pack("<BBBBI", IOAPIC, ioapic_id, IOAPIC_VERSION, 1, layout.IOAPIC))
    for irq in ISA_IRQS:
        entries.append(struct.pack("<BBHBBBB", IO_INTERRUPT, INT, CONFORMS, ISA_BUS, irq,
                                   ioapic_id, irq))
    for slot, irq in sorted(pci_irqs.items()):
        # PCI source IRQ: device number in bits 2-6, INTA# (0) in bits 0-1.
        entries.append(struct.pack("<BBHBBBB", IO_INTERRUPT, INT, LEVEL_HIGH, PCI_BUS,
                                   slot << 2, ioapic_id, irq))
    entries.append(struct.pack("<BBHBBBB", LOCAL_INTERRUPT, EXTINT, CONFORMS, ISA_BUS, 0,
                               0xFF, 0))
    entries.append(struct.pack("<BBHBBBB", LOCAL_INTERRUPT, NMI, CONFORMS, ISA_BUS, 0, 0xFF, 1))
    body = b"".join(entries)
    config_at = base + 16
    header = bytearray(struct.pack("<4sHBB8s12sIHHIHBx", b"PCMP", 44 + len(body), SPEC_REV, 0,
                                   b"POPEK   ", b"popek-kvm   ", 0, 0, len(entries),
                                   layout.LAPIC, 0, 0))
    header[7] = _checksum(bytes(header) + body)
    floating = bytearray(struct.pack("<4sIBBB5x", b"_MP_", config_at, 1, SPEC_REV, 0))
    floating[10] = _checksum(bytes(floating))
    return bytes(floating) + bytes(header) + body
