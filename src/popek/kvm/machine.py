"""An x86-64 machine on KVM: RAM, the in-kernel interrupt controllers and timer,
port-I/O and MMIO buses with popek's device models, a way in for each kind of
kernel, and the exit loop.

Kernels (``--kernel``), recognised by content:

* a bzImage: Linux's 64-bit boot protocol (:mod:`popek.kvm.linux`);
* an x86-64 ELF with a PVH note (an uncompressed vmlinux): the PVH entry;
* any other x86-64 ELF (popek's tiny guests): long mode, ring 0, at ``e_entry``.

Devices (addresses in :mod:`popek.kvm.layout`): the shared 16550 UART at 0x3f8 on
IRQ 4; virtio-blk disks on virtio-pci (``if=virtio``, what Linux finds on a PC) or
virtio-mmio (``if=virtio-mmio``, what the tiny guests drive); a debug-exit port; an
i8042 stub whose reset command resets (ends) the machine.

Exits from KVM_RUN become typed :mod:`popek.vmm.exits` records (PortIo, MmioRead,
MmioWrite, Halt, Shutdown), dispatched by type in :meth:`X86Machine.handle_exit` and
recorded, with the host time each took, in a measured :class:`~popek.vmm.ledger.Ledger`.
"""

from __future__ import annotations

import logging
import mmap
import os
import signal
import threading
import time

from popek.devices.bus import Bus
from popek.devices.memory import GuestMemory
from popek.devices.e1000 import E1000
from popek.devices.nvme import Nvme
from popek.devices.options import Network, virtio_model
from popek.devices.pci import INTERRUPT_LINE, BarAllocator, PciHost
from popek.devices.uart16550 import Uart16550
from popek.devices.virtio.blk import VirtioBlk
from popek.devices.virtio.mmio import VirtioMmio
from popek.devices.virtio.console import VirtioConsole
from popek.devices.virtio.pci import VirtioPci
from popek.errors import ConfigError, ImageError
from popek.kvm import abi, layout, linux, mptable, unemulated, vhost_user, x86
from popek.kvm.ioeventfd import IoEventThread
from popek.kvm.vhost_user import VhostUserThread
from popek.kvm.system import Kvm
from popek.riscv.loader import read_file, load_image
from popek.vmm.drivers.faults import plans
from popek.vmm.exits import Exit, Halt, MmioRead, MmioWrite, PortIo, Shutdown
from popek.vmm.ledger import Ledger

log = logging.getLogger(__name__)

MiB = 1 << 20
# Features hidden from guests because PVM's instruction emulator (which runs a
# non-PVM kernel's ring 0) lacks their instructions; (leaf, register) → bits.
HIDDEN_FEATURES = {
    (1, "ecx"): (1 << 13) | (1 << 17) | (1 << 22) | (1 << 23),   # cx16 pcid movbe popcnt
    (7, "ebx"): (1 << 0) | (1 << 3) | (1 << 8) | (1 << 10)       # fsgsbase bmi1 bmi2 invpcid
    | (1 << 20) | (1 << 23) | (1 << 24),                          # smap clflushopt clwb
    (7, "ecx"): (1 << 3) | (1 << 4) | (1 << 22),                  # pku ospke rdpid
}
# PVM shows the host's feature bits whatever KVM_SET_CPUID2 says, so a Linux kernel
# not built for PVM must also be told not to use them: xsave/xrstor, clac/stac,
# popcnt, wrfsbase, invpcid, rdpid ... are emulation failures in its ring 0, and so
# are the SSE instructions of the kernel's accelerated crypto (chosen by these bits).
# The crypto self-tests (RSA with big keys) and the W+X check that walks every kernel
# page table after write-protecting rodata would each take the emulator many minutes.
PVM_LINUX_ARGS = ("noxsave", "cryptomgr.notests", "rodata=off", "clearcpuid=smap,popcnt,movbe,pcid,fsgsbase,bmi1,bmi2,invpcid,"
                  "clflushopt,clwb,pku,rdpid,ssse3,sse4_1,sse4_2,avx,avx2,avx512f,aes,"
                  "pclmulqdq,sha_ni,vaes,f16c,fma,adx")
# What the KVM exits that end a run mean, for the line the user sees.
SHUTDOWN_MEANING = {
    "shutdown": ": a triple fault (an exception the guest could not handle)",
    "fail_entry": ": KVM could not enter the guest (invalid vCPU state)",
    "internal_error": ": KVM could not emulate the guest",
}
KICK_SIGNAL = signal.SIGUSR1
MAX_VCPUS = 32                  # what fits the MP table's 1 KiB
AP_STACK = 0x4000


def _fit(value: int, size: int) -> bytes:
    """A device's answer as the ``size`` bytes the guest asked for (devices may
    answer a narrow access with a wider register: the guest sees its low bytes)."""
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _exchange(area, at: int, size: int, is_write: bool, addr: int, read, write) -> None:
    """One access of an I/O exit: the guest's bytes at ``area[at:at + size]`` go to
    ``write(addr, size, value)``, or ``read(addr, size)``'s answer goes there."""
    if is_write:
        write(addr, size, int.from_bytes(area[at:at + size], "little"))
    else:
        area[at:at + size] = _fit(read(addr, size), size)


class _Port:
    """A port-I/O device from two callables (the debug-exit port, the i8042 stub)."""

    def __init__(self, read=None, write=None):
        self._read, self._write = read, write

    def read(self, off: int, size: int) -> int:
        return self._read(off, size) if self._read else (1 << (8 * size)) - 1

    def write(self, off: int, size: int, value: int) -> None:
        if self._write:
            self._write(off, size, value)


class X86Machine:
    def __init__(self, kernel: str, memory: int = 64 * MiB, console=None, *,
                 initrd: str | None = None, append: str = "", drives=(),
                 irqchip: bool = True, smp: int = 1, unpack: str = "auto",
                 devices=(), netdevs=(), ioeventfd: bool = True, drivers: str = "monolithic",
                 faults: dict | None = None, domain_watchdog_ms: int | None = None):
        """``ioeventfd``: virtio-pci notifies handled in KVM and served by a thread of
        popek's (kvm/ioeventfd.py), where KVM can (else each is an exit to popek);
        ``drivers``: ``domains`` serves each disk from a backend process of its own
        (kvm/vhost_user.py), ``faults`` the faults to inject into them (drive id → a
        FaultPlan, or the requests first served before a crash), and
        ``domain_watchdog_ms`` how long (wall time) one may leave requests unserved."""
        if memory < 4 * MiB or memory % MiB:
            raise ConfigError("KVM guests need a whole number of MiB, at least 4")
        if memory > layout.MMIO_BASE:
            raise ConfigError(f"KVM guests take at most {layout.MMIO_BASE >> 20} MiB (-m)")
        if not 1 <= smp <= MAX_VCPUS:
            raise ConfigError(f"--smp takes 1 to {MAX_VCPUS} vCPUs")
        if smp > 1 and not irqchip:
            raise ConfigError("more than one vCPU needs the in-kernel irqchip")
        self.network = Network(netdevs)
        self.network.check(devices)
        self.drivers, self.faults = drivers, plans(faults)
        self.watchdog_ms = vhost_user.DEFAULT_WATCHDOG_MS if domain_watchdog_ms is None \
            else domain_watchdog_ms
        self.vhost, self.vhost_dir, self.vhost_thread = [], None, None
        self.kvm = Kvm()
        try:
            self._build(kernel, memory, console, initrd, append, drives, irqchip, smp, unpack,
                        devices, ioeventfd)
        except BaseException:
            self.close()                  # a bad image or option must not leak fds or RAM
            raise

    def _build(self, kernel, memory, console, initrd, append, drives, irqchip, smp, unpack,
               devices, ioeventfd):
        self.vm = self.kvm.create_vm()
        self.irqchip = irqchip
        if irqchip:
            self.vm.set_tss_addr(layout.TSS_PAGES)
            self.vm.set_identity_map_addr(layout.IDENTITY_MAP)
            self.vm.create_irqchip()
            self.vm.create_pit2()
        # With a vhost-user backend, guest RAM is a memfd, which the backend maps too
        # (kvm/vhost_user.py).  (Python's mmap keeps a descriptor of its own for it, for
        # as long as the mapping lives: anonymous memory otherwise, which needs none.)
        self.ram_fd = None
        if self.drivers == "domains" or any(d.driver == "vhost-user-blk-pci" for d in devices):
            self.ram_fd = os.memfd_create("popek-guest-ram", os.MFD_CLOEXEC)
            os.ftruncate(self.ram_fd, memory)
            self.backing = mmap.mmap(self.ram_fd, memory)
        else:
            self.backing = mmap.mmap(-1, memory)
        self.ram = GuestMemory(0, memory, self.backing)
        self.vm.set_user_memory_region(0, self.backing)
        self.console = console
        self.ledger = Ledger(measured=True)
        self._handlers = self._exit_handlers()
        self.exit_code: int | None = None
        self.exit_reason = ""
        self.failed = False             # popek ended the run: the guest could not go on
        self.wall = 0.0
        # Without an irqchip nothing can wake a halted vCPU, so HLT ends the run,
        # unless a measurement wants to count HLT exits.
        self.resume_after_halt = False
        self.lock = threading.Lock()          # devices are shared with the input thread
        self.virtio_pci = []                  # the virtio-pci functions (their notifies)
        self._build_devices(drives, devices)
        self.ioevents = None
        if ioeventfd and irqchip and all(self.kvm.check_extension(abi.CAPS[c]) for c in
                                         ("ioeventfd_any_length", "irqfd_resample")):
            self.ioevents = IoEventThread(self.vm, self.lock,
                                          lambda why: self.stop(1, why, failed=True))
            for fn in self.virtio_pci:
                self.ioevents.watch(fn)
        unknown = set(self.faults) - {dev.id for dev in self.vhost}
        if unknown:
            raise ConfigError(f"--inject-fault {sorted(unknown)[0][:40]}: no disk of a driver "
                              "domain has that id (--drive ...,id=ID, or drive<N>)")
        if self.vhost:
            self.vhost_thread = VhostUserThread(self.vhost, self.lock,
                                                lambda why: self.stop(1, why, failed=True))
        self.vcpus = [self.vm.create_vcpu(i) for i in range(smp)]
        self.vcpu = self.vcpus[0]                      # the bootstrap processor
        for i, vcpu in enumerate(self.vcpus):
            self._set_cpuid(vcpu, i)
        x86.write_tables(self.ram)
        if irqchip:
            self.ram.write(layout.MPTABLE, mptable.build(smp, self.pci.irqs()))
        self._unpack_arg = unpack
        if unpack not in ("auto", "guest", "vmm"):
            raise ConfigError("--unpack takes auto, guest or vmm")
        # A bzImage decompresses itself in ring 0, which PVM emulates: minutes of work
        # that popek does in a second.  Elsewhere the kernel's own decompressor runs.
        self.unpack = "vmm" if unpack == "auto" and is_pvm() else unpack
        self.boot = self._load(kernel, initrd, append)
        self._threads: dict[int, int] = {}

    # -- set-up ----------------------------------------------------------------------
    def _irq(self, line: int):
        """A device's interrupt line into KVM's irqchip.  Devices drive their line at
        every change of state (for the RISC-V PLIC's sake, riscv/plic.py); KVM's
        IOAPIC and PIC want level changes only, so the same level twice costs no ioctl."""
        if not self.irqchip:
            return None
        last = [None]

        def set_level(level: bool) -> None:
            if level != last[0]:
                last[0] = level
                self.vm.irq_line(line, level)
        return set_level

    def _build_devices(self, drives, devices) -> None:
        self.ports = Bus()
        self.mmio = Bus()
        self.uart = Uart16550(self.console.write, self._irq(layout.UART_IRQ))
        self.ports.add(layout.UART_PORT, 8, self.uart, "uart")
        self.ports.add(layout.DEBUG_EXIT_PORT, 1,
                       _Port(write=lambda off, size, v: self.stop(v & 0xFF, "debug exit")),
                       "debug-exit")
        self.ports.add(layout.NULL_PORT, 1, _Port(read=lambda off, size: 0), "null")
        self.ports.add(layout.POST_PORT, 1, _Port(read=lambda off, size: 0), "post")
        self.ports.add(layout.I8042_PORT, 1, _Port(read=lambda off, size: 0,
                                                   write=self._i8042_command), "i8042")
        self.pci = PciHost()
        self.ports.add(layout.PCI_CONFIG_ADDRESS, 8, self.pci, "pci-config")
        self.disks = []
        self.models = []                        # NICs, RNGs, a console (--device)
        self.virtio_console = None
        self.transports = []                    # virtio, served further between exits
        self._next_irq = layout.VIRTIO_MMIO_FIRST_IRQ
        self._bars = BarAllocator((layout.PCI_BAR_BASE, layout.PCI_BAR_END),
                                  (layout.PCI_IO_BASE, 0x10000))
        for i, spec in enumerate(drives):
            ident = spec.ident or f"drive{i}"
            if self.drivers == "domains":           # served by a backend process
                if spec.interface not in ("virtio", "virtio-pci"):
                    raise ConfigError(f"--drivers domains: {ident}: a driver domain serves "
                                      f"virtio-pci disks (not if={spec.interface})")
                if not self.irqchip:
                    raise ConfigError("--drivers domains needs the in-kernel irqchip")
                self.vhost_dir = self.vhost_dir or vhost_user.socket_directory()
                path, argv = vhost_user.spawned_backend(ident, spec, self.vhost_dir)
                self._plug_vhost(vhost_user.VhostUserBlk(self, ident, path, argv,
                                                         self.faults.get(ident),
                                                         self.watchdog_ms))
                continue
            if spec.interface == "nvme":            # a PCI function of its own, not virtio
                irq = self._take_irq()
                fn = Nvme(self.ram, spec.path, self._irq(irq) or (lambda level: None),
                          spec.readonly)
                self.models.append(fn)          # (closed with the others, if a plug fails)
                self._plug_pci(fn, irq)
                continue
            blk = VirtioBlk(self.ram, spec.path, spec.readonly)
            self.disks.append(blk)
            self._plug_virtio(blk, spec.interface == "virtio-mmio")
        for spec in devices:
            if spec.driver == "vhost-user-blk-pci":     # a backend the user started
                if not self.irqchip:
                    raise ConfigError("vhost-user-blk-pci needs the in-kernel irqchip")
                self._plug_vhost(vhost_user.VhostUserBlk(
                    self, f"vhost{len(self.vhost)}", spec.options["socket"]),
                    spec.options.get("addr"))
                continue
            if spec.driver == "e1000":
                backend, mac = self.network.nic(spec)
                irq = self._take_irq()
                fn = E1000(self.ram, mac, backend, self._irq(irq) or (lambda level: None))
                self.models.append(fn)
                self._plug_pci(fn, irq, spec.options.get("addr"))
                continue
            model = virtio_model(spec, self.ram, self.network, self.console.write)
            if isinstance(model, VirtioConsole):
                self.virtio_console = model
            self.models.append(model)
            self._plug_virtio(model, spec.transport == "mmio", spec.options.get("addr"))

    def _plug_vhost(self, dev, slot: int | None = None) -> None:
        self.vhost.append(dev)                  # (closed with the machine, if a plug fails)
        self._plug_virtio(dev, False, slot)

    def _plug_pci(self, fn, irq: int, slot: int | None = None) -> None:
        """A PCI function that is not virtio (an e1000, an NVMe): its interrupt line
        told in its header, its BARs placed as firmware would, at ``slot`` or the
        first free one."""
        fn.config[INTERRUPT_LINE] = irq
        self._place_bars(fn)
        self.pci.add(slot or self.pci.free_slot(), fn)

    def _take_irq(self) -> int:
        irq = self._next_irq
        self._next_irq += 1
        if self._next_irq in (8, 12, 13, 14, 15):   # RTC, mouse, FPU, IDE: keep clear
            self._next_irq += 1
        if irq > 23:
            raise ConfigError("too many devices for the IOAPIC's 24 lines")
        return irq

    def _place_bars(self, fn) -> None:
        """Assign a function's BARs as firmware would (Linux on a PC keeps them):
        memory from PCI_BAR_BASE, ports from PCI_IO_BASE, each aligned to its size."""
        try:
            self._bars.place(fn)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def _plug_virtio(self, model, mmio: bool, slot: int | None = None) -> None:
        irq = self._take_irq()
        if mmio:
            base = layout.MMIO_BASE + layout.VIRTIO_MMIO_SIZE * len(self.mmio.mappings())
            t = VirtioMmio(model, self.ram, self._irq(irq))
            self.mmio.add(base, layout.VIRTIO_MMIO_SIZE, t, f"virtio-mmio-{model.name}")
        else:
            fn = VirtioPci(model, self.ram, irq, self._irq(irq))
            self._place_bars(fn)
            self.pci.add(slot or self.pci.free_slot(), fn)
            self.virtio_pci.append(fn)
            t = fn.t                                # the transport under the function
        self.transports.append(t)

    def _set_cpuid(self, vcpu, apic_id: int) -> None:
        c = self.kvm.supported_cpuid()
        for i in range(c.nent):
            e = c.entries[i]
            for (leaf, reg), bits in HIDDEN_FEATURES.items():
                if e.function == leaf and e.index == 0:
                    setattr(e, reg, getattr(e, reg) & ~bits)
            if e.function == 1:
                e.ebx = (e.ebx & 0x00FFFFFF) | (apic_id << 24)     # initial APIC ID
            elif e.function in (0xB, 0x1F):
                e.edx = apic_id                                    # x2APIC ID
        vcpu.set_cpuid2(c)

    def _linux_args(self, append: str) -> str:
        if not is_pvm():
            return append
        have = {a.split("=")[0] for a in append.split()}
        extra = [a for a in PVM_LINUX_ARGS if a.split("=")[0] not in have]
        if extra:
            log.info("PVM host: adding %s to the kernel command line", " ".join(extra))
        return " ".join([append] + extra).strip()

    def _load(self, kernel: str, initrd: str | None, append: str) -> linux.Boot:
        initrd_data = read_file(initrd) if initrd else None
        head = read_file(kernel)
        if linux.is_bzimage(head):
            append = self._linux_args(append)
            vmlinux = None
            if self.unpack == "vmm":
                try:
                    vmlinux = linux.extract_vmlinux(kernel, head)
                except ImageError as e:
                    if self._unpack_arg == "vmm":
                        raise
                    log.info("%s; letting the kernel decompress itself", e)
            boot = linux.load_bzimage(self.ram, kernel, head, append, initrd_data, vmlinux)
            x86.long_mode(self.vcpu, boot.entry, rsi=boot.arg, rsp=0)
            return boot
        image = load_image(kernel, self.ram, layout.HIMEM, machine="EM_X86_64")
        if not image.is_elf:
            raise ImageError(f"{kernel}: not a bzImage or an x86-64 ELF")
        entry = linux.pvh_entry(kernel, head)
        if entry is not None:
            append = self._linux_args(append)
            boot = linux.start_pvh(self.ram, kernel, entry, image.high, append, initrd_data)
            x86.protected_mode(self.vcpu, boot.entry, rbx=boot.arg)
            return boot
        if initrd or append:
            raise ConfigError(f"{kernel}: a bare ELF takes no --initrd or --append "
                              "(only Linux kernels do)")
        # A tiny guest's vCPUs all start at its entry, each with its own stack and
        # its index in rdi (Linux instead wakes its APs itself, with INIT and SIPI).
        for i, vcpu in enumerate(self.vcpus):
            x86.long_mode(vcpu, image.entry, rsp=layout.STACK_TOP - i * AP_STACK, rdi=i)
            if i:
                vcpu.set_mp_state(abi.MP_STATE_RUNNABLE)
        return linux.Boot("elf-64", image.entry, 0, image.high)

    # -- exits ---------------------------------------------------------------------
    def next_exit(self, vcpu=None) -> Exit:
        """Run a vCPU (the BSP by default) until it exits to us; the exit as a record."""
        vcpu = vcpu or self.vcpu
        reason = vcpu.run()
        area = vcpu.run_area
        u = abi.RUN_EXIT_UNION
        if reason == abi.EXIT_IO:
            direction, size, port = area[u], area[u + 1], int.from_bytes(area[u + 2:u + 4], "little")
            count = int.from_bytes(area[u + 4:u + 8], "little")
            offset = int.from_bytes(area[u + 8:u + 16], "little")
            return PortIo(0, port, size, count, direction == abi.EXIT_IO_OUT, offset)
        if reason == abi.EXIT_MMIO:
            addr = int.from_bytes(area[u:u + 8], "little")
            length = int.from_bytes(area[u + 16:u + 20], "little")
            if area[u + 20]:
                return MmioWrite(0, addr, length,
                                 int.from_bytes(area[u + 8:u + 8 + length], "little"))
            return MmioRead(0, addr, length)
        if reason == abi.EXIT_HLT:
            return Halt(0)
        return Shutdown(0, abi.EXIT_REASONS.get(reason, str(reason)))

    def handle_exit(self, e: Exit, vcpu=None) -> None:
        """One exit, through the table of handlers by exit type, timed into the ledger."""
        self._handlers[type(e)](e, vcpu or self.vcpu, time.perf_counter())

    def _exit_handlers(self) -> dict:
        return {PortIo: self._on_port_io, MmioRead: self._on_mmio_read,
                MmioWrite: self._on_mmio_write, Halt: self._on_halt, Shutdown: self._on_shutdown}

    def _on_port_io(self, e: PortIo, vcpu, start: float) -> None:
        area = vcpu.run_area
        with self.lock:
            for i in range(e.count):
                _exchange(area, e.data_offset + i * e.size, e.size, e.is_write, e.port,
                          self._port_read, self._port_write)
        self.ledger.record("port_io_out" if e.is_write else "port_io_in", f"{e.port:#x}",
                           time.perf_counter() - start)

    def _on_mmio_read(self, e: MmioRead, vcpu, start: float) -> None:
        at = abi.RUN_EXIT_UNION + 8
        with self.lock:
            vcpu.run_area[at:at + e.size] = _fit(self._mmio_read(e.addr, e.size), e.size)
        self.ledger.record("mmio_read", f"{e.addr:#x}", time.perf_counter() - start)

    def _on_mmio_write(self, e: MmioWrite, vcpu, start: float) -> None:
        with self.lock:
            self._mmio_write(e.addr, e.size, e.data)
        self.ledger.record("mmio_write", f"{e.addr:#x}", time.perf_counter() - start)

    def _on_halt(self, e: Halt, vcpu, start: float) -> None:
        self.ledger.record("halt", "", time.perf_counter() - start)
        if not self.irqchip and not self.resume_after_halt:
            self.stop(0, "halted")

    def _on_shutdown(self, e: Shutdown, vcpu, start: float) -> None:
        if e.reason == "intr":
            self.ledger.record("signal", "", time.perf_counter() - start)
        elif e.reason == "internal_error" and (what := self._finish_unemulated(vcpu)):
            self.ledger.record(f"{what}_emulated", "", time.perf_counter() - start)
        else:
            self.ledger.record("shutdown", e.reason, time.perf_counter() - start)
            self.stop(1, f"KVM exit: {e.reason}" + self._internal_error_detail(e, vcpu)
                      + SHUTDOWN_MEANING.get(e.reason, ""), failed=True)

    def _finish_unemulated(self, vcpu) -> str | None:
        """An emulation failure popek can finish itself (see :mod:`.unemulated`)."""
        u = abi.RUN_EXIT_UNION
        if int.from_bytes(vcpu.run_area[u:u + 4], "little") != abi.INTERNAL_ERROR_EMULATION:
            return None
        return unemulated.finish(vcpu, self.ram)

    def _internal_error_detail(self, e: Exit, vcpu) -> str:
        """Where the guest was, and the instruction bytes there, for the error line."""
        try:
            rip = vcpu.get_regs().rip
            phys = vcpu.translate(rip)
        except Exception:                              # the vCPU may be beyond asking
            return ""
        text = f" at rip {rip:#x}"
        if e.reason == "internal_error":
            u = abi.RUN_EXIT_UNION
            text += f" (suberror {int.from_bytes(vcpu.run_area[u:u + 4], 'little')})"
        if phys is not None and self.ram.contains(phys, 15):
            text += f", bytes {self.ram.read(phys, 15).hex(' ')}"
        return text

    def _port_target(self, port: int):
        m = self.ports.find(port)
        if m is not None:
            return m.device, port - m.base
        return self.pci.find(port, io=True)           # a PCI I/O BAR (e1000's)

    def _port_write(self, port: int, size: int, value: int) -> None:
        dev, off = self._port_target(port) or (None, 0)
        if dev is not None:
            dev.write(off, size, value)

    def _port_read(self, port: int, size: int) -> int:
        dev, off = self._port_target(port) or (None, 0)
        if dev is None:
            return (1 << (8 * size)) - 1              # nothing there: all ones
        return dev.read(off, size)

    def _mmio_target(self, addr: int):
        m = self.mmio.find(addr)
        if m is not None:
            return m.device, addr - m.base
        return self.pci.find_bar(addr)

    def _mmio_write(self, addr: int, size: int, value: int) -> None:
        dev, off = self._mmio_target(addr) or (None, 0)
        if dev is not None:
            dev.write(off, size, value)

    def _mmio_read(self, addr: int, size: int) -> int:
        dev, off = self._mmio_target(addr) or (None, 0)
        return dev.read(off, size) if dev is not None else (1 << (8 * size)) - 1

    def _i8042_command(self, off: int, size: int, value: int) -> None:
        if value == 0xFE:                              # pulse the CPU reset line
            self.stop(0, "reset (i8042)")

    def stop(self, code: int, why: str, failed: bool = False) -> None:
        """End the run with exit ``code`` because of ``why``; ``failed``: popek, not
        the guest, decided it (the guest cannot go on), so the user is told ``why``."""
        if self.exit_code is None:
            self.exit_code, self.exit_reason, self.failed = code, why, failed
        self._interrupt_all()

    # -- running -----------------------------------------------------------------------
    def _interrupt_all(self) -> None:
        """Make every other vCPU thread's KVM_RUN return: immediate_exit covers a thread
        about to enter KVM_RUN, the signal one already inside it."""
        me = threading.get_ident()
        for vcpu in self.vcpus:
            vcpu.run_area[abi.RUN_IMMEDIATE_EXIT] = 1
        for ident in list(self._threads.values()):
            if ident != me:
                signal.pthread_kill(ident, KICK_SIGNAL)

    def _input_loop(self) -> None:
        """Host input into the UART, and device work a notify left over."""
        while self.exit_code is None and not self._done.is_set():
            # No pause while a device has work left over (a deep queue of a guest
            # waiting in an in-kernel HLT would go at 16 MiB per pause).
            self.console.wait(0 if any(t.pending for t in self.transports) else 0.05)
            data = self.console.poll()
            if data:
                with self.lock:
                    hvc = self.virtio_console
                    if hvc is not None and hvc.ready_for_input:
                        hvc.push_input(data)
                    else:
                        self.uart.push_input(data)
            self._serve_left_over_io()

    def _serve_left_over_io(self) -> None:
        """Device work a notify left for later (a notify is served a bounded amount at a
        time: devices/virtio/transport.py): after each exit, and every 50 ms from the
        input thread, for a guest that waits in an in-kernel HLT."""
        for t in self.transports:
            if t.pending:
                with self.lock:
                    t.service()
        if self.models:
            with self.lock:
                self.network.poll()
                for m in self.models:
                    if hasattr(m, "service"):           # an emulated NIC's leftover work
                        m.service()

    def _vcpu_loop(self, index: int, budget) -> None:
        vcpu = self.vcpus[index]
        self._threads[index] = threading.get_ident()
        try:
            while self.exit_code is None and not self._done.is_set():
                if not budget():
                    break
                e = self.next_exit(vcpu)
                if type(e) is Shutdown and e.reason == "intr" and \
                        (self._done.is_set() or self.exit_code is not None):
                    break
                self.handle_exit(e, vcpu)
                self._serve_left_over_io()
        except Exception as e:                           # a vCPU thread must not die silently
            log.error("vCPU %d: %s", index, e)
            self.stop(1, f"vCPU {index}: {e}")

    def run(self, max_exits: int | None = None, timeout: float | None = None) -> int | None:
        """Run until the guest stops, ``max_exits`` exits, or ``timeout`` seconds
        (those two return None).  The calling thread runs the BSP; other vCPUs get
        a thread each."""
        old = signal.signal(KICK_SIGNAL, lambda *_: None)
        self._done = threading.Event()
        for vcpu in self.vcpus:
            vcpu.run_area[abi.RUN_IMMEDIATE_EXIT] = 0
        count = [0]
        self.budget_spent = None            # which budget ended the run, if one did

        def budget() -> bool:
            count[0] += 1
            if max_exits is not None and count[0] > max_exits:
                self.budget_spent = self.budget_spent or "--max-instructions"
                self._done.set()
                self._interrupt_all()
                return False
            return True

        def expire():
            self.budget_spent = self.budget_spent or "--timeout"
            self._done.set()
            self._interrupt_all()
        helpers = [threading.Thread(target=self._vcpu_loop, args=(i, budget), daemon=True)
                   for i in range(1, len(self.vcpus))]
        timer = threading.Timer(timeout, expire) if timeout is not None else None
        if self.irqchip and hasattr(self.console, "poll"):
            helpers.append(threading.Thread(target=self._input_loop, daemon=True))
        start = time.perf_counter()
        try:
            for h in helpers:
                h.start()
            if self.ioevents is not None:
                self.ioevents.start(self._done)
            if self.vhost_thread is not None:
                self.vhost_thread.start(self._done)
            if timer:
                timer.start()
            self._vcpu_loop(0, budget)
        finally:
            self._done.set()
            if timer:
                timer.cancel()
            self._interrupt_all()
            for h in helpers:
                h.join(timeout=5)
            if self.ioevents is not None:
                self.ioevents.stop()
            if self.vhost_thread is not None:
                self.vhost_thread.stop()
            self._threads.clear()
            self.wall += time.perf_counter() - start
            signal.signal(KICK_SIGNAL, old)
        return self.exit_code

    def close(self) -> None:
        """Release disks, vCPUs, the VM and KVM (whatever of them was made)."""
        if getattr(self, "ioevents", None) is not None:
            self.ioevents.close()
        if self.vhost_thread is not None:
            self.vhost_thread.close()
        for dev in self.vhost:
            dev.close()                         # (its backend process stopped)
        vhost_user.remove(self.vhost_dir)
        for d in getattr(self, "disks", ()):
            d.close()
        for m in getattr(self, "models", ()):
            if hasattr(m, "image"):             # an NVMe's disk, and its lock
                m.close()
        self.network.close()
        for vcpu in getattr(self, "vcpus", ()):
            vcpu.close()
        if getattr(self, "vm", None) is not None:
            self.vm.close()
        if getattr(self, "ram_fd", None) is not None:    # (the mapping goes with the machine)
            os.close(self.ram_fd)
            self.ram_fd = None
        self.kvm.close()


def implementation() -> str:
    """Which KVM this host has: hardware (VT-x / SVM) or a software one (PVM)."""
    for module, name in (("kvm_pvm", "PVM (software virtualization, no VMX/SVM)"),
                         ("kvm_intel", "hardware: Intel VT-x"), ("kvm_amd", "hardware: AMD SVM")):
        if os.path.isdir(f"/sys/module/{module}"):
            return name
    return "unknown"


def hardware_kvm() -> bool:
    return implementation().startswith("hardware")


def is_pvm() -> bool:
    return implementation().startswith("PVM")
