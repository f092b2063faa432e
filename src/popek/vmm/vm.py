"""A virtual machine: its guest-physical memory (a window of host RAM), its
devices (the virt board's, from riscv/platform.py), its device tree, its console
and disks, its vCPU, its exit ledger, and the strategies it is assembled from
(vmm/builder.py: CPU, paging, I/O), with the table its exits go through."""

from __future__ import annotations

from dataclasses import dataclass, field

from popek.errors import ConfigError
from popek.riscv import devicetree
from popek.riscv.board import MAX_RAM
from popek.riscv.loader import load_blob, load_image
from popek.riscv.platform import Platform, VirtLayout
from popek.riscv.smp import MAX_HARTS
from popek.vmm import builder
from popek.vmm.ledger import Ledger
from popek.vmm.vcpu import VCpu

MiB = 1 << 20
KERNEL_OFFSET = 2 * MiB          # the S-mode entry: RAM base + 2 MiB, as after OpenSBI


@dataclass
class VmConfig:
    kernel: str
    name: str = "vm0"
    memory: int = 128 * MiB
    drives: list = field(default_factory=list)
    append: str = ""
    initrd: str | None = None         # an initial ramdisk for Linux, placed as QEMU places it
    cpu: str = "trap-emulate"         # the strategies it is assembled from (builder.py)
    paging: str = "shadow"
    io: str = "emulated"
    smp: int = 1                      # vCPUs (the first starts; SBI HSM starts the others)
    trap_time: bool = False           # hw: the guest's reads of time exit (hcounteren.TM clear)
    devices: list = field(default_factory=list)   # NICs, RNGs (devices/options.py)
    netdevs: list = field(default_factory=list)   # their backends, in the run's network
    passthrough: list = field(default_factory=list)   # ids of host devices it is given
    disks: list = field(default_factory=list)   # host NVMe ids it reaches as virtio-blk
    domain: bool = False              # a driver domain the VMM made (vmm/drivers/)

    def check(self) -> None:
        """One clear error for a configuration no VM can have (before any memory is
        set aside for it)."""
        if self.memory < 4 * MiB or self.memory % MiB:
            raise ConfigError(f"{self.name}: memory must be a whole number of MiB, at least 4")
        if self.memory > MAX_RAM:
            raise ConfigError(f"{self.name}: memory must be at most {MAX_RAM >> 30} GiB")
        if not 1 <= self.smp <= MAX_HARTS:
            raise ConfigError(f"{self.name}: smp takes 1 to {MAX_HARTS} vCPUs (got {self.smp})")
        if self.passthrough and self.io == "emulated":
            self.io = "passthrough"           # (its other devices are still emulated)
        if self.io == "passthrough" and not self.passthrough:
            raise ConfigError(f"{self.name}: --io passthrough needs a device to pass through "
                              "(--vm ...,passthrough=ID of a --host-device)")
        builder.check(self.cpu, self.paging, self.io)


class VirtualMachine(VirtLayout):
    def __init__(self, vmm, cfg: VmConfig, host_ram, host_base: int, pool_base: int, console):
        self.isa = vmm.guest_isa              # (the hart's, without H: what the guest sees)
        self.vmm = vmm
        self.cfg = cfg
        self.name = cfg.name
        self.bootargs = cfg.append
        self.console = console
        self.exit_code: int | None = None
        self.exit_reason = ""
        self.host_base = host_base
        self.pool_base = pool_base
        self.ram = host_ram.window(self.RAM_BASE, host_base, cfg.memory)
        # Its vCPUs; ``vcpu`` is the one on the hart now (or last).  Only the first
        # starts; the guest starts the others through SBI HSM (sbi.py).
        self.vcpus = [VCpu(self, i) for i in range(cfg.smp)]
        self.harts = self.vcpus               # (what the device tree lists)
        self.vcpu = self.vcpus[0]
        self.vcpu.started = True
        self.domain = None                    # the DriverDomain, if this VM is one
        self.retired = 0                      # instructions its vCPUs retired (the hart's)
        # Disks whose driver the VMM places (vmm/drivers/): a virtio-blk each.
        frontends = [vmm.placement.frontend(self, ident) for ident in cfg.disks]
        self.platform = Platform(self, self.ram, self.console_write, cfg.drives, self.vcpus,
                                 devices=cfg.devices, network=vmm.network,
                                 virtio_models=frontends)
        self.bus = self.platform.bus
        self.uart = self.platform.uart
        self.ledger = Ledger(vmm.charge_cycles, costs=vmm.costs,
                             switch=builder.CPU[cfg.cpu].SWITCH)
        builder.assemble(self, host_ram, pool_base)
        # The kernel at RAM + 2 MiB (an ELF at its own addresses), the tree at the top.
        img = load_image(cfg.kernel, self.ram, self.RAM_BASE + KERNEL_OFFSET)
        self.initrd_range = None
        high = img.high
        if cfg.initrd is not None:
            start = img.entry + min(cfg.memory // 2, 128 * MiB)      # hw/riscv/boot.c's rule
            rd = load_blob(cfg.initrd, self.ram, start, "initrd")
            if rd.low < img.high and img.low < rd.high:
                raise ConfigError(f"{cfg.name}: the initrd at {start:#x} overlaps the kernel")
            self.initrd_range = (rd.low, rd.high)
            high = rd.high
        self.dtb = devicetree.build(self)
        self.dtb_addr = (self.ram.end - len(self.dtb)) & ~(2 * MiB - 1)
        if high > self.dtb_addr:
            raise ConfigError(f"{cfg.name}: {cfg.kernel} and its initrd do not fit below the "
                              f"device tree (give the VM more memory)")
        self.ram.write(self.dtb_addr, self.dtb)
        v = self.vcpu
        v.pc = img.entry
        v.x[10], v.x[11] = 0, self.dtb_addr          # a0 = hart id, a1 = device tree

    # -- what the devices call ---------------------------------------------
    def rtc_ns(self) -> int:
        return self.vmm.rtc_ns()

    def shutdown(self, code: int, why: str) -> None:
        if self.exit_code is None:
            self.exit_code = code
            self.exit_reason = why
        self.vmm.vm_stopped(self)

    def request_reset(self) -> None:
        self.shutdown(0, "reset (treated as power off)")

    # -- console -------------------------------------------------------------
    def console_write(self, data: bytes) -> None:
        self.console.write(data)

    def console_getchar(self) -> int:
        """SBI getchar: the next byte typed at this VM (the same queue its UART reads)."""
        rx = self.uart.rx
        return rx.popleft() if rx else (1 << 64) - 1    # -1: nothing there

    def console_read(self, n: int) -> bytes:
        rx = self.uart.rx
        return bytes(rx.popleft() for _ in range(min(n, len(rx))))

    def close(self) -> None:
        self.platform.close()
