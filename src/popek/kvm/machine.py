"""An x86-64 machine on KVM: memory, long mode, a port-I/O bus, exits.

Guest-physical memory map:

    0x0000_0500   GDT (null, 64-bit code 0x08, data 0x10)
    0x0000_9000   PML4 → 0xa000 PDPT → 0xb000 PD: the first 1 GiB identity-mapped, 2 MiB pages
    0x0010_0000   the guest image (a 64-bit ELF), entered in long mode, ring 0, at its entry
    RAM end       -m (default 64 MiB)

Port I/O:

    0x3f8-0x3ff   16550 UART (the same device model as the simulated machine's)
    0x501         debug exit: writing v ends the run with exit code v (as QEMU's isa-debug-exit,
                  but v itself, not 2v+1)
    0x510         a port that does nothing: exit-cost measurements write to it

Exits from KVM_RUN become :class:`popek.vmm.exits.Exit` records (kinds port_io, mmio,
halt, shutdown), handled in :meth:`X86Machine.handle_exit` and counted in a ledger.
"""

from __future__ import annotations

import mmap
import time

from popek.devices.memory import GuestMemory
from popek.devices.uart16550 import Uart16550
from popek.errors import ConfigError
from popek.kvm import abi
from popek.kvm.system import Kvm
from popek.riscv.loader import load_image
from popek.vmm.exits import HALT, MMIO, PORT_IO, SHUTDOWN, Exit, Ledger

MiB = 1 << 20
GDT_ADDR, PML4_ADDR, PDPT_ADDR, PD_ADDR = 0x500, 0x9000, 0xA000, 0xB000
IMAGE_ADDR = 0x100000
UART_PORT, DEBUG_EXIT_PORT, NULL_PORT = 0x3F8, 0x501, 0x510
CR0_PE, CR0_PG = 1, 1 << 31
CR4_PAE = 1 << 5
EFER_LME, EFER_LMA = 1 << 8, 1 << 10
CPUID_CX16 = 1 << 13             # PVM does not emulate cmpxchg16b in ring 0: hide it


class X86Machine:
    def __init__(self, kernel: str, memory: int = 64 * MiB, console=None):
        if memory < 4 * MiB or memory % MiB:
            raise ConfigError("KVM guests need a whole number of MiB, at least 4")
        self.kvm = Kvm()
        self.vm = self.kvm.create_vm()
        self.backing = mmap.mmap(-1, memory)
        self.ram = GuestMemory(0, memory, self.backing)
        self.vm.set_user_memory_region(0, self.backing)
        self.console = console
        self.uart = Uart16550(console.write)
        self.ledger = Ledger()
        self.exit_code: int | None = None
        self.exit_reason = ""
        self.image = load_image(kernel, self.ram, IMAGE_ADDR, machine="EM_X86_64")
        self.vcpu = self.vm.create_vcpu(0)
        self._set_cpuid()
        self._enter_long_mode(self.image.entry)
        self.wall = 0.0

    def _set_cpuid(self) -> None:
        c = self.kvm.supported_cpuid()
        for i in range(c.nent):
            e = c.entries[i]
            if e.function == 1:
                e.ecx &= ~CPUID_CX16
        self.vcpu.set_cpuid2(c)

    def _enter_long_mode(self, entry: int) -> None:
        """Page tables, GDT and control registers for a 64-bit entry in ring 0."""
        ram = self.ram
        gdt = [0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF]      # null, code64, data
        for i, d in enumerate(gdt):
            ram.write_int(GDT_ADDR + 8 * i, 8, d)
        ram.write_int(PML4_ADDR, 8, PDPT_ADDR | 3)               # present, writable
        ram.write_int(PDPT_ADDR, 8, PD_ADDR | 3)
        for i in range(512):                                     # 2 MiB pages (PS)
            ram.write_int(PD_ADDR + 8 * i, 8, (i << 21) | 0x83)
        s = self.vcpu.get_sregs()
        code = abi.Segment(base=0, limit=0xFFFFFFFF, selector=0x08, type=11, present=1,
                           dpl=0, db=0, s=1, l=1, g=1)
        data = abi.Segment(base=0, limit=0xFFFFFFFF, selector=0x10, type=3, present=1,
                           dpl=0, db=1, s=1, l=0, g=1)
        s.cs = code
        s.ds = s.es = s.fs = s.gs = s.ss = data
        s.gdt = abi.DTable(base=GDT_ADDR, limit=8 * len(gdt) - 1)
        s.cr3 = PML4_ADDR
        s.cr4 = CR4_PAE
        s.cr0 = CR0_PE | CR0_PG
        s.efer = EFER_LME | EFER_LMA
        self.vcpu.set_sregs(s)
        r = abi.Regs()
        r.rip = entry
        r.rsp = IMAGE_ADDR                                       # stack below the image
        r.rflags = 2
        self.vcpu.set_regs(r)

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
        area = self.vcpu.run_area
        if e.kind == PORT_IO:
            direction, size, count, offset = e.tval
            for i in range(count):
                at = offset + i * size
                if direction == abi.EXIT_IO_OUT:
                    self._port_write(e.cause, size, int.from_bytes(area[at:at + size], "little"))
                else:
                    area[at:at + size] = self._port_read(e.cause, size).to_bytes(size, "little")
            self.ledger.record("port_io_out" if direction == abi.EXIT_IO_OUT else "port_io_in",
                               f"{e.cause:#x}")
        elif e.kind == MMIO:
            is_write, length = e.tval
            u = abi.RUN_EXIT_UNION + 8
            if not is_write:
                area[u:u + length] = bytes([0xFF] * length)   # nothing there: all ones
            self.ledger.record("mmio_write" if is_write else "mmio_read", f"{e.cause:#x}")
        elif e.kind == HALT:
            self.ledger.record("halt")
            self.stop(0, "halted")
        else:
            self.ledger.record("shutdown", e.tval)
            self.stop(1, f"KVM exit: {e.tval}")

    def _port_write(self, port: int, size: int, value: int) -> None:
        if UART_PORT <= port < UART_PORT + 8:
            self.uart.write(port - UART_PORT, 1, value)
        elif port == DEBUG_EXIT_PORT:
            self.stop(value & 0xFF, "debug exit")

    def _port_read(self, port: int, size: int) -> int:
        if UART_PORT <= port < UART_PORT + 8:
            return self.uart.read(port - UART_PORT, 1)
        return (1 << (8 * size)) - 1

    def stop(self, code: int, why: str) -> None:
        if self.exit_code is None:
            self.exit_code, self.exit_reason = code, why

    def run(self, max_exits: int | None = None) -> int | None:
        start = time.perf_counter()
        n = 0
        try:
            while self.exit_code is None:
                if max_exits is not None and n >= max_exits:
                    return None
                self.handle_exit(self.next_exit())
                n += 1
        finally:
            self.wall += time.perf_counter() - start
        return self.exit_code

    def close(self) -> None:
        self.vcpu.close()
        self.vm.close()
        self.kvm.close()


def implementation() -> str:
    """Which KVM this host has: hardware (VT-x / SVM) or a software one (PVM)."""
    import os
    for module, name in (("kvm_pvm", "PVM (software virtualization, no VMX/SVM)"),
                         ("kvm_intel", "hardware: Intel VT-x"), ("kvm_amd", "hardware: AMD SVM")):
        if os.path.isdir(f"/sys/module/{module}"):
            return name
    return "unknown"


