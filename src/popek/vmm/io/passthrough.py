"""Passthrough I/O: a physical device of the host (vmm/host.py) given to one VM
(``--vm ...,passthrough=ID``), which drives it with its ordinary driver.

* **Configuration space** is the VMM's, as VFIO's is: the VM's PCIe has a function
  whose header is a copy of the device's (IDs, class, capabilities, pin), with
  *virtual* BARs of the device's sizes that the guest places where it likes, and a
  virtual command register.  The device keeps the host's BAR addresses.
* **Registers without exits**: a guest-physical page of an enabled virtual memory BAR
  is mapped, on its first touch, to the device's host-physical page in the VM's
  shadow or G-stage tables (:meth:`PassthroughIo.direct_page`, which the paging
  strategies ask; one ``passthrough_map`` exit per page); from then on the guest's
  loads and stores reach the device with no VMM in between.  When the guest moves or
  disables a BAR those mappings are dropped.  An access before the mapping, or to an
  I/O BAR, is emulated and forwarded (an ordinary MMIO exit).
* **Interrupts** are the VMM's to route: the device's INTx line drives the virtual
  function's pin (``passthrough_irq`` in the ledger at each rise: in hardware, a host
  interrupt and an injection).
* **DMA** carries guest-physical addresses, which the IOMMU translates with the VM's
  second-stage tables (vmm/iommu.py); without it (``--iommu off``) they are taken as
  host-physical.
Every other device of the VM is emulated, as with ``--io emulated``.
"""

from __future__ import annotations

from popek.devices.pci import BAR0, CMD_MEMORY, COMMAND, NUM_BARS, Bar, PciFunction
from popek.vmm.io.emulated import EmulatedIo

PAGE = 4096


class PassthroughFunction(PciFunction):
    """The VM's view of a physical function: its header, virtual BARs forwarding to
    the device's registers, and a virtual command register."""

    def __init__(self, physical: PciFunction, irq, on_remap, decodes):
        """``on_remap()``: the guest moved or disabled a memory BAR; ``decodes(addr,
        size)``: whether the VM's host bridge passes that range to its PCI memory."""
        super().__init__(0, 0, 0)
        self.config[:] = physical.config
        self.physical = physical
        self.irq = irq
        self.on_remap = on_remap
        self.decodes = decodes
        self.bars = [Bar(b.size, b.read, b.write, io=b.io, name=b.name) if b else None
                     for b in physical.bars]

    def _decoded(self) -> tuple:
        return tuple(b.addr for b in self.bars if b is not None and not b.io) \
            if self.command & CMD_MEMORY else ()

    def config_write(self, off: int, size: int, value: int) -> None:
        before = self._decoded()
        super().config_write(off, size, value)
        if (off == COMMAND or BAR0 <= off < BAR0 + 4 * NUM_BARS) and self._decoded() != before:
            self.on_remap()                # (a write that changes nothing maps nothing anew)

    def host_address(self, gpa: int) -> int | None:
        """The host-physical address of guest-physical ``gpa`` if it is in one of this
        function's memory BARs: enabled, at least a page long, and where the VM's host
        bridge decodes PCI memory (a BAR placed elsewhere answers nothing, as on QEMU)."""
        if not self.command & CMD_MEMORY:
            return None
        for virt, phys in zip(self.bars, self.physical.bars):
            if virt is not None and not virt.io and virt.size >= PAGE \
                    and virt.addr <= gpa < virt.addr + virt.size \
                    and self.decodes(virt.addr, virt.size):
                return phys.addr + (gpa - virt.addr)
        return None


class PassthroughIo(EmulatedIo):
    name = "passthrough"

    def __init__(self, vm):
        super().__init__(vm)
        self.functions: list[PassthroughFunction] = []
        self.maps = self.remaps = 0
        host = vm.vmm.host
        for ident in vm.cfg.passthrough:
            dev = host.assign(ident, vm)
            pcie = vm.platform.pcie
            fn = pcie.plug(lambda irq, dev=dev: PassthroughFunction(dev.fn, irq, self._remapped,
                                                                   pcie.decodes_memory))
            dev.route = self._router(fn, ident)
            self.functions.append(fn)

    def _router(self, fn: PassthroughFunction, ident: str):
        ledger = self.vm.ledger

        def route(level: bool) -> None:
            if level:
                ledger.record("passthrough_irq", ident)
            fn.irq(level)
        return route

    def direct_page(self, gpa: int) -> int | None:
        """The host-physical page a guest-physical page of a passed-through BAR is (the
        paging strategies map it), or None."""
        for fn in self.functions:
            hpa = fn.host_address(gpa & ~(PAGE - 1))
            if hpa is not None:
                self.maps += 1
                return hpa
        return None

    def _remapped(self) -> None:
        """The guest moved or disabled a BAR: no old mapping may stay."""
        self.remaps += 1
        self.vm.memory.drop_device_mappings()

    def stats(self) -> dict:
        return {"passthrough_maps": self.maps, "passthrough_remaps": self.remaps}
