"""The virt board's PCIe host bridge, laid out as QEMU's (hw/riscv/virt.c, a "gpex"
generic ECAM host):

    0x0300_0000 +0x0001_0000   PCI I/O space 0x0000-0xffff   (ranges: I/O)
    0x3000_0000 +0x1000_0000   ECAM, buses 0-255             (reg)
    0x4000_0000 +0x4000_0000   PCI memory, 32-bit, 1:1       (ranges: MEM32)
    0x4_0000_0000 (RAM's end rounded up to 16 GiB) +16 GiB  PCI memory, 64-bit, 1:1

INTx: slot ``s``'s pin ``p`` (INTA# = 1) raises PLIC source ``32 + (s + p - 1) % 4``,
the swizzle QEMU's device tree gives in ``interrupt-map``.  Lines are wired-OR: a
source is high while any function on it holds its pin high, and every change of a
function's level is passed on (QEMU's pci_change_irq_level), so the PLIC sees a new
request when one of two sharing functions lowers its pin while the other stays high.
A function whose command register has Interrupt Disable set holds its pin low (a
level it raises meanwhile is not remembered for when the bit clears).  No MSI (QEMU's
virt has it only with the AIA, which popek does not model): drivers use INTx.  The BARs are left unassigned, as QEMU leaves them: no firmware on this board
enumerates PCI, and Linux (or U-Boot, or our guest OS) assigns them.
"""

from __future__ import annotations

import fdt

from popek.devices.pci import (HOST_BRIDGE_CLASS, INTX_DISABLE, PciBus, PciEcam, PciFunction,
                               PciWindow)

ECAM_BASE, ECAM_SIZE = 0x3000_0000, 0x1000_0000
PIO_BASE, PIO_SIZE = 0x0300_0000, 0x1_0000
MMIO_BASE, MMIO_SIZE = 0x4000_0000, 0x4000_0000
HIGH_MMIO_SIZE = 16 << 30
INTX_IRQ, PINS = 32, 4                 # PLIC sources 32-35
REDHAT, GPEX_HOST = 0x1B36, 0x0008     # QEMU's "PCIe host bridge"


class VirtPcie:
    def __init__(self, plic, ram_end: int):
        self.plic = plic
        self.bus = PciBus(PciFunction(REDHAT, GPEX_HOST, HOST_BRIDGE_CLASS))
        self.high_base = -(-ram_end // HIGH_MMIO_SIZE) * HIGH_MMIO_SIZE
        self._asserted: list[set[int]] = [set() for _ in range(PINS)]

    def attach(self, bus) -> None:
        """Put the ECAM and the three windows on the board's MMIO bus."""
        pci = self.bus
        bus.add(PIO_BASE, PIO_SIZE, PciWindow(pci, 0, PIO_SIZE, io=True), "pcie-pio")
        bus.add(ECAM_BASE, ECAM_SIZE, PciEcam(pci), "pcie-ecam")
        bus.add(MMIO_BASE, MMIO_SIZE, PciWindow(pci, MMIO_BASE, MMIO_SIZE), "pcie-mmio")
        bus.add(self.high_base, HIGH_MMIO_SIZE,
                PciWindow(pci, self.high_base, HIGH_MMIO_SIZE), "pcie-mmio-high")

    def decodes_memory(self, addr: int, size: int) -> bool:
        """Whether CPU addresses ``addr..addr+size`` are all in one PCI memory window."""
        return any(base <= addr and addr + size <= base + length
                   for base, length in ((MMIO_BASE, MMIO_SIZE),
                                        (self.high_base, HIGH_MMIO_SIZE)))

    def plug(self, make_function, slot: int | None = None) -> PciFunction:
        """Plug in the function ``make_function(irq)`` builds (``irq(level)`` drives its
        INTA#), at ``slot`` or the first free one, as QEMU places ``-device``s."""
        slot = self.bus.free_slot() if slot is None else slot
        if slot in self.bus.functions or not 0 < slot < 32:
            raise ValueError(f"PCI slot {slot} is taken or out of range")
        fn = make_function(self._intx(slot))
        self.bus.add(slot, fn)
        return fn

    @staticmethod
    def line(slot: int, pin: int = 1) -> int:
        """The PLIC source slot ``slot``'s pin ``pin`` raises."""
        return INTX_IRQ + (slot + pin - 1) % PINS

    def _intx(self, slot: int, pin: int = 1):
        source = self.line(slot, pin)
        asserted = self._asserted[source - INTX_IRQ]
        plic = self.plic

        def set_level(level: bool) -> None:
            fn = self.bus.functions.get(slot)
            if fn is not None and fn.command & INTX_DISABLE:
                level = False                  # the driver masked the function's INTx
            if level == (slot in asserted):
                return                     # the function's level did not change
            if level:
                asserted.add(slot)
            else:
                asserted.discard(slot)
            plic.set_level(source, bool(asserted))
        return set_level

    def fdt_node(self, plic_phandle: int) -> fdt.Node:
        """The ``pci@30000000`` node as QEMU's device tree has it."""
        n = fdt.Node(f"pci@{ECAM_BASE:x}")
        imap = []
        for slot in range(PINS):
            for pin in range(1, PINS + 1):
                imap += [slot << 11, 0, 0, pin, plic_phandle, self.line(slot, pin)]
        hb = self.high_base
        for p in (fdt.PropWords("interrupt-map-mask", 0x1800, 0, 0, 7),
                  fdt.PropWords("interrupt-map", *imap),
                  fdt.PropWords("ranges",
                                0x0100_0000, 0, 0, 0, PIO_BASE, 0, PIO_SIZE,
                                0x0200_0000, 0, MMIO_BASE, 0, MMIO_BASE, 0, MMIO_SIZE,
                                0x0300_0000, hb >> 32, hb & 0xFFFFFFFF, hb >> 32,
                                hb & 0xFFFFFFFF, HIGH_MMIO_SIZE >> 32,
                                HIGH_MMIO_SIZE & 0xFFFFFFFF),
                  fdt.PropWords("reg", 0, ECAM_BASE, 0, ECAM_SIZE),
                  fdt.Property("dma-coherent"),
                  fdt.PropWords("bus-range", 0, 0xFF),
                  fdt.PropWords("linux,pci-domain", 0),
                  fdt.PropStrings("device_type", "pci"),
                  fdt.PropStrings("compatible", "pci-host-ecam-generic"),
                  fdt.PropWords("#size-cells", 2),
                  fdt.PropWords("#interrupt-cells", 1),
                  fdt.PropWords("#address-cells", 3)):
            n.append(p)
        return n
