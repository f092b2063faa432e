"""Driver placement (``--drivers``): where the driver of a physical disk runs, which
VMs reach through an ordinary virtio-blk (``--vm ...,disk=ID``: vmm/drivers/frontend.py).

    monolithic   the VMM's own driver (monolithic.py): the guest's request is served
                 inside its notify exit; the driver's crash is the VMM's
    domains      a driver domain (domain.py): a VM of its own with the disk passed
                 through, reached by a ring, events and grants; its crash is its own,
                 and the VMM restarts it

:class:`Placement` makes the backend of each physical disk some VM uses; the VMs'
frontends are made with :meth:`Placement.frontend`.
"""

from __future__ import annotations

import os
from pathlib import Path

from popek.errors import ConfigError
from popek.vmm.drivers.blkif import WINDOW_BYTES
from popek.vmm.drivers.domain import DriverDomain
from popek.vmm.drivers.faults import DriverCrash
from popek.vmm.drivers.frontend import DiskFrontend
from popek.vmm.drivers.monolithic import PAGES as MONOLITHIC_PAGES
from popek.vmm.drivers.monolithic import VmmNvmeDriver

PLACEMENTS = ("monolithic", "domains")
DOMAIN_MEMORY = 16 << 20
# A driver domain that leaves a request unanswered this long (its own time: domain.py)
# is taken for hung (an endless loop, a wait for ever): the disk answers in
# microseconds, and a guest's own timeouts are seconds (Linux's block layer: 30 s).
DEFAULT_WATCHDOG_MS = 100
# The driver domains' kernel, unless --domain-kernel names another: our guest kernel
# (guests/), which serves the ring when booted with ``blkback``.
DEFAULT_DOMAIN_KERNEL = Path(__file__).resolve().parents[4] / "guests" / "build" / "kernel.elf"
__all__ = ["DEFAULT_WATCHDOG_MS", "DriverCrash", "WINDOW_BYTES", "Placement", "check",
           "domain_config", "domain_kernel", "MONOLITHIC_PAGES"]


def domain_kernel(path: str | None) -> str:
    """The driver domains' kernel: ``path``, or ours (built by ``make -C guests``)."""
    kernel = path or str(DEFAULT_DOMAIN_KERNEL)
    if not os.path.isfile(kernel):
        raise ConfigError(f"--drivers domains: no driver-domain kernel at {kernel} (build "
                          "guests/ with make -C guests, or give --domain-kernel FILE)")
    return kernel


def domain_args(extra: str = "", fault=None) -> str:
    """A driver domain's kernel command line: ``blkback``, the fault to inject if any
    (a FaultPlan: ``crash=N`` or ``hang=N``), and ``extra`` (--domain-append)."""
    return " ".join(["blkback"] + ([f"{fault.kind}={fault.after}"] if fault is not None
                                   else []) + ([extra] if extra else []))


def domain_config(ident: str, kernel: str, like, fault=None, extra: str = ""):
    """The VM that drives ``ident``: our kernel with ``blkback``, the device passed
    through, the same CPU and paging strategies as ``like`` (the first VM)."""
    from popek.vmm.vm import VmConfig
    append = domain_args(extra, fault)
    return VmConfig(kernel=kernel, name=f"domain-{ident}", memory=DOMAIN_MEMORY,
                    append=append, cpu=like.cpu, paging=like.paging, passthrough=[ident],
                    domain=True)


class Placement:
    def __init__(self, hv, kind: str, faults: dict, extra_args: str = "",
                 watchdog_ms: int = DEFAULT_WATCHDOG_MS):
        """``faults``: device id → the FaultPlan its driver gets; ``extra_args``: more
        of the driver domains' command line; ``watchdog_ms``: how long a domain may
        leave a request unanswered (its own time) before it is taken for hung and
        restarted (0: never)."""
        self.hv, self.kind = hv, kind
        self.faults = faults
        self.extra_args = extra_args
        self.watchdog_ms = watchdog_ms
        self.backends: dict = {}
        self.frontends: dict[str, DiskFrontend] = {}    # device id → the guest's disk

    def start(self, disks, region_base: int | None) -> None:
        """Make a backend for each physical disk in ``disks`` (monolithic: the VMM's
        driver, with its pages of the VMM region from ``region_base``)."""
        for i, ident in enumerate(disks):
            fault = self.faults.get(ident)
            if self.kind == "monolithic":
                dev = self.hv.host.devices[ident]
                if self.hv.host.driver is not None:
                    self.hv.host.driver.attach_bare(dev.device_id)
                dev.owner_name = "the VMM"
                self.backends[ident] = VmmNvmeDriver(
                    self.hv, dev, region_base + i * MONOLITHIC_PAGES * 4096, fault)
            else:
                self.backends[ident] = DriverDomain(self.hv, ident,
                                                    domain_args(self.extra_args),
                                                    self.watchdog_ms)

    def frontend(self, vm, ident: str) -> DiskFrontend:
        self.frontends[ident] = DiskFrontend(vm, self.backends[ident])
        return self.frontends[ident]

    @property
    def domains(self) -> list[DriverDomain]:
        return [b for b in self.backends.values() if isinstance(b, DriverDomain)]

    def stats(self) -> dict:
        return {f"driver {ident}": b.report() for ident, b in self.backends.items()}


def check(kind: str, configs, host_specs, iommu: bool, faults: dict) -> list[str]:
    """One clear error for a placement that cannot be; the physical disks VMs use."""
    if kind not in PLACEMENTS:
        raise ConfigError(f"--drivers {kind}: unknown (choose from {', '.join(PLACEMENTS)})")
    drivers = {s.options["id"]: s.driver for s in host_specs}
    disks = []
    for c in configs:
        for ident in c.disks:
            if drivers.get(ident) != "nvme":
                raise ConfigError(f"{c.name}: disk={ident[:40]}: no --host-device nvme has "
                                  "that id")
            if ident in disks:
                raise ConfigError(f"{c.name}: disk={ident}: another VM has that disk already")
            if any(ident in o.passthrough for o in configs):
                raise ConfigError(f"{c.name}: disk={ident}: that device is passed through "
                                  "to a VM (passthrough=)")
            disks.append(ident)
    if kind == "domains" and disks and not iommu:
        raise ConfigError("--drivers domains needs the IOMMU (a driver domain reaches "
                          "guest memory only through grants it maps there): drop --iommu off")
    for ident in faults:
        if ident not in disks:
            raise ConfigError(f"--inject-fault {ident[:40]}: no VM has that disk "
                              "(--vm ...,disk=ID of a --host-device nvme)")
    return disks
