"""The simulated host's own hardware, below the VMM: physical PCI devices that do DMA
(``--host-device``: an e1000 NIC, an NVMe disk), and the IOMMU between them and host
memory (``--iommu``).

Addresses (host-physical; QEMU's virt board has its IOMMU and PCIe at these too):

    0x0301_0000 +0x1000       the IOMMU's registers (riscv/iommu.py)
    0x3000_0000 +0x1000_0000  the host PCIe's ECAM
    0x4000_0000 +0x4000_0000  host PCI memory: the devices' BARs, placed by the VMM
                              as a host kernel would, and enabled (memory, bus master)

A physical device's DMA goes through the IOMMU (``IommuDma``, for its requester ID
``slot << 3``) or, with ``--iommu off``, straight to host memory: then a DMA address
is a host-physical address, whoever wrote it into the device.  Its INTx line is
routed to whichever VM owns it (vmm/io/passthrough.py sets ``route``).

A device no VM owns is left alone (its line goes nowhere, its DMA is blocked).  The VMM reads
the IOMMU's fault records between slices (:meth:`HostHardware.poll`) and tells the
owner: ``--on-iommu-fault report`` counts and logs them (once per VM and cause),
``stop`` also powers the owning VM off.
"""

from __future__ import annotations

import logging

from popek.devices.e1000 import E1000
from popek.devices.nvme import Nvme
from popek.devices.options import MAX_DEVICES
from popek.devices.pci import (CMD_MASTER, CMD_MEMORY, HOST_BRIDGE_CLASS, BarAllocator, PciBus,
                               PciEcam, PciFunction, PciWindow)
from popek.errors import ConfigError
from popek.riscv import iommu as hw
from popek.riscv.pcie import ECAM_BASE, ECAM_SIZE, GPEX_HOST, MMIO_BASE, MMIO_SIZE, REDHAT
from popek.vmm.iommu import IommuDriver

log = logging.getLogger(__name__)

IOMMU_BASE = 0x0301_0000
FAULT_STOP_CODE = 1                  # the exit code of a VM stopped for a blocked DMA


def check_passthrough(configs, specs, network) -> None:
    """Before anything is built: every --host-device's netdev exists, every passthrough=
    names a --host-device, once, and a VM's PCIe has the slots for what it is given."""
    for spec in specs:
        if "netdev" in spec.options and spec.options["netdev"] not in network.specs:
            raise ConfigError(f"--host-device {spec.driver},id={spec.options['id']}: "
                              f"netdev={spec.options['netdev'][:40]}: no --netdev has that id")
    if len(specs) > MAX_DEVICES:
        raise ConfigError(f"at most {MAX_DEVICES} --host-device (the host's PCI slots)")
    ids = [s.options["id"] for s in specs]
    owner: dict[str, str] = {}
    for c in configs:
        if len(c.devices) + len(c.passthrough) > MAX_DEVICES:
            raise ConfigError(f"{c.name}: at most {MAX_DEVICES} devices and passed-through "
                              "devices in all (its PCI slots)")
        for ident in c.passthrough:
            if ident not in ids:
                known = f" (there are: {', '.join(ids)})" if ids else " (there is none)"
                raise ConfigError(f"{c.name}: passthrough={ident[:40]}: no --host-device "
                                  f"has that id{known}")
            if ident in owner:
                raise ConfigError(f"{c.name}: passthrough={ident}: the device is already "
                                  f"assigned to {owner[ident]} (a device has one owner)")
            owner[ident] = c.name


class HostDevice:
    """One physical device: its PCI function, requester ID, and owner (a VM or None)."""

    def __init__(self, ident: str, slot: int, fn: PciFunction):
        self.id, self.slot, self.fn = ident, slot, fn
        self.device_id = slot << 3
        self.owner = None
        self.owner_name = None                 # who drives it if no VM owns it (the VMM)
        self.route = None                      # level → the owner's virtual INTx
        self.interrupts = 0
        self.level = False

    def set_level(self, level: bool) -> None:
        """The device's INTx line; the owner hears of changes only (a device reports
        its level at every update of its interrupt registers)."""
        level = bool(level)
        if level == self.level:
            return
        self.level = level
        if self.route is not None:
            self.interrupts += level
            self.route(level)


class HostHardware:
    """``specs``: the --host-device DeviceSpecs; ``network``: the run's; ``region``:
    (base, pages) of host RAM that is the VMM's (the IOMMU driver's, ``iommu``)."""

    def __init__(self, hv, specs, network, region, iommu: bool = True,
                 on_fault: str = "report"):
        self.hv = hv
        self.on_fault = on_fault
        self.region = region
        self.pci = PciBus(PciFunction(REDHAT, GPEX_HOST, HOST_BRIDGE_CLASS))
        self.iommu = self.driver = None
        if region is not None and iommu:
            self.iommu = hw.RiscvIommu(hv.ram, costs=hv.costs)
            self.driver = IommuDriver(self.iommu, hv.ram, *region)
            hv.bus.add(IOMMU_BASE, hw.SIZE, self.iommu, "iommu")
        self.devices: dict[str, HostDevice] = {}
        self.blocked: dict[tuple[str, int], int] = {}    # (VM, cause) → blocked DMAs
        self.gscids: dict[str, int] = {}                 # VM → its GSCID (tables' tag)
        bars = BarAllocator((MMIO_BASE, MMIO_BASE + MMIO_SIZE))   # (no host I/O window)
        for spec in specs:
            slot = self.pci.free_slot()
            ident = spec.options["id"]
            mem = hw.IommuDma(self.iommu, slot << 3) if self.iommu else hv.ram
            dev = HostDevice(ident, slot, None)
            if spec.driver == "nvme":
                dev.fn = Nvme(mem, spec.options["drive"], dev.set_level)
            else:
                backend, mac = network.nic(spec)
                dev.fn = E1000(mem, mac, backend, dev.set_level)
            self.devices[ident] = dev             # (before the next can fail: close() has it)
            bars.place(dev.fn)                      # as a host kernel would
            dev.fn.command = CMD_MEMORY | CMD_MASTER
            self.pci.add(slot, dev.fn)
        if specs:
            hv.bus.add(ECAM_BASE, ECAM_SIZE, PciEcam(self.pci), "host-pcie-ecam")
            hv.bus.add(MMIO_BASE, MMIO_SIZE, PciWindow(self.pci, MMIO_BASE, MMIO_SIZE),
                       "host-pcie-mmio")

    def assign(self, ident: str, vm) -> HostDevice:
        """Give device ``ident`` to ``vm``: its DMA may reach that VM's RAM, nothing else."""
        dev = self.devices[ident]                  # (check_passthrough said it exists)
        assert dev.owner is None, f"{ident} assigned twice"
        dev.owner = vm
        if self.driver is not None:
            gscid = self.gscids.setdefault(vm.name, len(self.gscids) + 1)
            self.driver.map_vm(gscid, vm.RAM_BASE, vm.host_base, vm.cfg.memory)
            self.driver.attach(dev.device_id, gscid)
        return dev

    def release(self, vm) -> None:
        """``vm`` is being rebuilt (a driver domain restarted): its devices are free to
        be assigned again, to the VM that takes its place, with the same tables (its
        GSCID is by name).  Until then the device's interrupts go nowhere."""
        for dev in self.devices.values():
            if dev.owner is vm:
                dev.owner = None
                dev.route = None

    def poll(self) -> None:
        """Between slices: the devices' leftover work, and the IOMMU's fault records."""
        for dev in self.devices.values():
            if hasattr(dev.fn, "service"):           # (a NIC's leftover work)
                dev.fn.service()
        if self.driver is None:
            return
        owners = {d.device_id: d for d in self.devices.values()}
        for rec in self.driver.faults():
            dev = owners.get(rec.device_id)
            vm = dev.owner if dev is not None else None
            if vm is None:
                log.warning("IOMMU: %s from unassigned device %#x at %#x", rec.what,
                            rec.device_id, rec.iotval)
                continue
            key = (vm.name, rec.cause)
            self.blocked[key] = self.blocked.get(key, 0) + 1
            vm.ledger.record("iommu_fault", f"{dev.id} {rec.what}")
            if self.blocked[key] == 1:
                log.warning("%s: the IOMMU blocked a DMA of %s: %s at %#x", vm.name, dev.id,
                            rec.what, rec.iotval)
            if self.on_fault == "stop" and vm.exit_code is None:
                vm.shutdown(FAULT_STOP_CODE, f"stopped: the IOMMU blocked a DMA of {dev.id} "
                                             f"({rec.what} at {rec.iotval:#x})")
                self._disown(dev)

    def _disown(self, dev: HostDevice) -> None:
        """A stopped VM's device: its DMA blocked from now on (its context invalid), its
        interrupts going nowhere."""
        dev.route = None
        if self.driver is not None:
            self.driver.detach(dev.device_id, self.gscids[dev.owner.name])

    def stats(self) -> dict:
        out = {}
        for dev in self.devices.values():
            owner = dev.owner.name if dev.owner else dev.owner_name or "unassigned"
            out[f"host {dev.id}"] = {"owner": owner, "slot": dev.slot,
                                     "interrupts": dev.interrupts, **dev.fn.stats,
                                     **({"queues": dev.fn.queue_counts()}
                                        if hasattr(dev.fn, "queue_counts") else {})}
        if self.iommu is not None:
            out["iommu"] = self.iommu.report()
        for (vm, cause), n in sorted(self.blocked.items()):
            out[f"{vm}_iommu_blocked {hw.CAUSE_NAMES.get(cause, cause)}"] = n
        return out

    def close(self) -> None:
        for dev in self.devices.values():
            if hasattr(dev.fn, "backend"):
                dev.fn.backend.deliver = None
            if hasattr(dev.fn, "close"):
                dev.fn.close()                        # (a disk: unlocked and closed)
