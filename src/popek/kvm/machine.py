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

Exits from KVM_RUN become :class:`popek.vmm.exits.Exit` records (port_io, mmio,
halt, shutdown), dispatched by :meth:`X86Machine.handle_exit` and recorded, with
the host time each took, in a measured :class:`~popek.vmm.exits.Ledger`.
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
from popek.devices.pci import PciHost
from popek.devices.uart16550 import Uart16550
from popek.devices.virtio.blk import VirtioBlk
from popek.devices.virtio.mmio import VirtioMmio
from popek.devices.virtio.pci import VirtioPci
from popek.errors import ConfigError, ImageError
from popek.kvm import abi, layout, linux, x86
from popek.kvm.system import Kvm
from popek.riscv.loader import _read, load_image
from popek.vmm.exits import HALT, MMIO, PORT_IO, SHUTDOWN, Exit, Ledger

log = logging.getLogger(__name__)

MiB = 1 << 20
CPUID_CX16 = 1 << 13        # PVM does not emulate cmpxchg16b in ring 0: hide it
INT3, BP_VECTOR = 0xCC, 3
KICK_SIGNAL = signal.SIGUSR1


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
                 irqchip: bool = True):
        if memory < 4 * MiB or memory % MiB:
            raise ConfigError("KVM guests need a whole number of MiB, at least 4")
        if memory > layout.MMIO_BASE:
            raise ConfigError(f"KVM guests take at most {layout.MMIO_BASE >> 20} MiB (-m)")
        self.kvm = Kvm()
        self.vm = self.kvm.create_vm()
        self.irqchip = irqchip
        if irqchip:
            self.vm.set_tss_addr(layout.TSS_PAGES)
            self.vm.set_identity_map_addr(layout.IDENTITY_MAP)
            self.vm.create_irqchip()
            self.vm.create_pit2()
        self.backing = mmap.mmap(-1, memory)
        self.ram = GuestMemory(0, memory, self.backing)
        self.vm.set_user_memory_region(0, self.backing)
        self.console = console
        self.ledger = Ledger(measured=True)
        self.exit_code: int | None = None
        self.exit_reason = ""
        self.wall = 0.0
        # Without an irqchip nothing can wake a halted vCPU, so HLT ends the run,
        # unless a measurement wants to count HLT exits.
        self.resume_after_halt = False
        self.lock = threading.Lock()          # devices are shared with the input thread
        self._build_devices(drives)
        self.vcpu = self.vm.create_vcpu(0)
        self._set_cpuid()
        x86.write_tables(self.ram)
        self.boot = self._load(kernel, initrd, append)

    # -- set-up ----------------------------------------------------------------------
    def _irq(self, line: int):
        if not self.irqchip:
            return None
        return lambda level: self.vm.irq_line(line, level)

    def _build_devices(self, drives) -> None:
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
        next_irq = layout.VIRTIO_MMIO_FIRST_IRQ
        for spec in drives:
            blk = VirtioBlk(self.ram, spec.path, spec.readonly)
            self.disks.append(blk)
            if spec.interface == "virtio-mmio":
                base = layout.MMIO_BASE + layout.VIRTIO_MMIO_SIZE * len(self.mmio.mappings())
                self.mmio.add(base, layout.VIRTIO_MMIO_SIZE,
                              VirtioMmio(blk, self.ram, self._irq(next_irq)), "virtio-mmio-blk")
            else:
                slot = len(self.pci.functions) + 1
                self.pci.add(slot, VirtioPci(blk, self.ram, next_irq, self._irq(next_irq),
                                             layout.PCI_BAR_BASE + slot * layout.PCI_BAR_SIZE))
            next_irq += 1
            if next_irq in (8, 12, 13, 14, 15):   # RTC, mouse, FPU, IDE: keep clear
                next_irq += 1

    def _set_cpuid(self) -> None:
        c = self.kvm.supported_cpuid()
        for i in range(c.nent):
            e = c.entries[i]
            if e.function == 1:
                e.ecx &= ~CPUID_CX16
        self.vcpu.set_cpuid2(c)

    def _load(self, kernel: str, initrd: str | None, append: str) -> linux.Boot:
        initrd_data = _read(initrd) if initrd else None
        head = _read(kernel)
        if linux.is_bzimage(head):
            boot = linux.load_bzimage(self.ram, kernel, head, append, initrd_data)
            x86.long_mode(self.vcpu, boot.entry, rsi=boot.arg, rsp=0)
            return boot
        image = load_image(kernel, self.ram, layout.HIMEM, machine="EM_X86_64")
        if not image.is_elf:
            raise ImageError(f"{kernel}: not a bzImage or an x86-64 ELF")
        entry = linux.pvh_entry(kernel, head)
        if entry is not None:
            boot = linux.start_pvh(self.ram, kernel, entry, image.high, append, initrd_data)
            x86.protected_mode(self.vcpu, boot.entry, rbx=boot.arg)
            return boot
        if initrd or append:
            raise ConfigError(f"{kernel}: a bare ELF takes no --initrd or --append "
                              "(only Linux kernels do)")
        x86.long_mode(self.vcpu, image.entry)
        return linux.Boot("elf-64", image.entry, 0, image.high)

    # -- exits ---------------------------------------------------------------------
    def next_exit(self) -> Exit:
        """Run the vCPU until it exits to us; the exit as a record."""
        reason = self.vcpu.run()
        area = self.vcpu.run_area
        u = abi.RUN_EXIT_UNION
        if reason == abi.EXIT_IO:
            direction, size, port = area[u], area[u + 1], int.from_bytes(area[u + 2:u + 4], "little")
            count = int.from_bytes(area[u + 4:u + 8], "little")
            offset = int.from_bytes(area[u + 8:u + 16], "little")
            return Exit(PORT_IO, port, (direction, size, count, offset), 0)
        if reason == abi.EXIT_MMIO:
            addr = int.from_bytes(area[u:u + 8], "little")
            length = int.from_bytes(area[u + 16:u + 20], "little")
            return Exit(MMIO, addr, (area[u + 20], length), 0)
        if reason == abi.EXIT_HLT:
            return Exit(HALT, 0, 0, 0)
        return Exit(SHUTDOWN, reason, abi.EXIT_REASONS.get(reason, str(reason)), 0)

    def handle_exit(self, e: Exit) -> None:
        start = time.perf_counter()
        area = self.vcpu.run_area
        if e.kind == PORT_IO:
            direction, size, count, offset = e.tval
            out = direction == abi.EXIT_IO_OUT
            with self.lock:
                for i in range(count):
                    at = offset + i * size
                    if out:
                        self._port_write(e.cause, size, int.from_bytes(area[at:at + size], "little"))
                    else:
                        area[at:at + size] = self._port_read(e.cause, size).to_bytes(size, "little")
            self.ledger.record("port_io_out" if out else "port_io_in", f"{e.cause:#x}",
                               time.perf_counter() - start)
        elif e.kind == MMIO:
            is_write, length = e.tval
            data = abi.RUN_EXIT_UNION + 8
            with self.lock:
                if is_write:
                    self._mmio_write(e.cause, length, int.from_bytes(area[data:data + length], "little"))
                else:
                    area[data:data + length] = self._mmio_read(e.cause, length).to_bytes(length, "little")
            self.ledger.record("mmio_write" if is_write else "mmio_read", f"{e.cause:#x}",
                               time.perf_counter() - start)
        elif e.kind == HALT:
            self.ledger.record("halt", "", time.perf_counter() - start)
            if not self.irqchip and not self.resume_after_halt:
                self.stop(0, "halted")
        elif e.tval == "intr":
            self.ledger.record("signal", "", time.perf_counter() - start)
        elif e.tval == "internal_error" and self._step_over_int3():
            self.ledger.record("int3_emulated", "", time.perf_counter() - start)
        else:
            self.ledger.record("shutdown", e.tval, time.perf_counter() - start)
            self.stop(1, f"KVM exit: {e.tval}" + self._internal_error_detail(e))

    def _step_over_int3(self) -> bool:
        """PVM cannot emulate ``int3`` in ring 0 (Linux uses it to patch its own text):
        skip the instruction and deliver the #BP it raises, as hardware would."""
        area = self.vcpu.run_area
        u = abi.RUN_EXIT_UNION
        if int.from_bytes(area[u:u + 4], "little") != abi.INTERNAL_ERROR_EMULATION:
            return False
        regs = self.vcpu.get_regs()
        phys = self.vcpu.translate(regs.rip)
        if phys is None or not self.ram.contains(phys) or self.ram.read(phys, 1)[0] != INT3:
            return False
        regs.rip += 1
        self.vcpu.set_regs(regs)
        ev = self.vcpu.get_vcpu_events()
        ev.exc_injected, ev.exc_nr, ev.exc_has_error_code, ev.exc_pending = 1, BP_VECTOR, 0, 0
        self.vcpu.set_vcpu_events(ev)
        return True

    def _internal_error_detail(self, e: Exit) -> str:
        """Where the guest was, and the instruction bytes there, for the error line."""
        try:
            rip = self.vcpu.get_regs().rip
            phys = self.vcpu.translate(rip)
        except Exception:                              # the vCPU may be beyond asking
            return ""
        text = f" at rip {rip:#x}"
        if e.tval == "internal_error":
            u = abi.RUN_EXIT_UNION
            text += f" (suberror {int.from_bytes(self.vcpu.run_area[u:u + 4], 'little')})"
        if phys is not None and self.ram.contains(phys, 15):
            text += f", bytes {self.ram.read(phys, 15).hex(' ')}"
        return text

    def _port_write(self, port: int, size: int, value: int) -> None:
        m = self.ports.find(port)
        if m is not None:
            m.device.write(port - m.base, size, value)

    def _port_read(self, port: int, size: int) -> int:
        m = self.ports.find(port)
        if m is None:
            return (1 << (8 * size)) - 1              # nothing there: all ones
        return m.device.read(port - m.base, size)

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

    def stop(self, code: int, why: str) -> None:
        if self.exit_code is None:
            self.exit_code, self.exit_reason = code, why

    # -- running -----------------------------------------------------------------------
    def _kick(self) -> None:
        """Make the vCPU thread's KVM_RUN return (EINTR)."""
        signal.pthread_kill(self._vcpu_thread, KICK_SIGNAL)

    def _input_loop(self) -> None:
        while self.exit_code is None and not self._done.is_set():
            self.console.wait(0.05)
            data = self.console.poll()
            if data:
                with self.lock:
                    self.uart.push_input(data)

    def run(self, max_exits: int | None = None, timeout: float | None = None) -> int | None:
        """Run until the guest stops, ``max_exits`` exits, or ``timeout`` seconds
        (those two return None)."""
        self._vcpu_thread = threading.get_ident()
        old = signal.signal(KICK_SIGNAL, lambda *_: None)
        self._done = threading.Event()
        timed_out = threading.Event()
        helpers = []
        if timeout is not None:
            def expire():
                timed_out.set()
                self._kick()
            helpers.append(threading.Timer(timeout, expire))
        if self.irqchip and hasattr(self.console, "poll"):
            helpers.append(threading.Thread(target=self._input_loop, daemon=True))
        for h in helpers:
            h.start()
        start = time.perf_counter()
        n = 0
        try:
            while self.exit_code is None:
                if (max_exits is not None and n >= max_exits) or timed_out.is_set():
                    return None
                self.handle_exit(self.next_exit())
                n += 1
        finally:
            self.wall += time.perf_counter() - start
            self._done.set()
            for h in helpers:
                if isinstance(h, threading.Timer):
                    h.cancel()
            signal.signal(KICK_SIGNAL, old)
        return self.exit_code

    def close(self) -> None:
        for d in self.disks:
            d.close()
        self.vcpu.close()
        self.vm.close()
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
