"""The trap-and-emulate VMM: guests run deprivileged, every sensitive thing they
do traps here, and is emulated against their virtual CPU.

The simulated hart does not know about the VMM.  It runs each guest in its real
U-mode, its MMU walking the VMM's shadow tables, its privilege checks on; the
VMM stands where M-mode software would (``Hart.m_trap_hook``) and sees exactly
the traps that reach M-mode.  ``medeleg``/``mideleg`` are 0 and ``mcounteren``
is 0, so that is every privileged instruction, every CSR access, every counter
read, every ecall and every page fault.

Host memory (the simulated machine's RAM, at 0x8000_0000):

    [ VM 0 RAM ][ VM 0 shadow pool ][ VM 1 RAM ][ VM 1 shadow pool ] ...

A VM's devices are its own (riscv/platform.py): its loads and stores to them fault
(nothing is mapped there) and are emulated by decoding the instruction.
"""

from __future__ import annotations

import logging
import time

from popek import gcpolicy
from popek.clock import HostClock, InstructionClock, MachineTime
from popek.devices.bus import Bus
from popek.devices.memory import GuestMemory
from popek.errors import ConfigError, GuestMemoryError
from popek.riscv import isa, traps
from popek.riscv.codecache import CodeCache
from popek.riscv.compiler import background_compiler
from popek.riscv.hart import Hart
from popek.riscv.mmu import FETCH, LOAD, STORE
from popek.vmm import sbi
from popek.vmm.exits import ECALL, ILLEGAL, INTERRUPT, PAGE_FAULT, Exit
from popek.vmm.shadow import GuestPageFault, ShadowPool, guest_walk
from popek.vmm.vcpu import COUNTERS, GuestIllegal, S, U
from popek.vmm.vm import VirtualMachine, VmConfig

log = logging.getLogger(__name__)

HOST_RAM_BASE = 0x80000000
SHADOW_POOL_PAGES = 2048            # 8 MiB of shadow tables per VM
SLICE = 20_000                      # instructions a vCPU runs before the VMM looks around
# Exits a vCPU may take in one slice.  A guest that wedges itself in a trap loop
# (a garbage satp, say) retires no instructions; this hands control back anyway.
SLICE_EXITS = 2_000
M64 = (1 << 64) - 1
ACCESS = {traps.INSN_PAGE_FAULT: FETCH, traps.LOAD_PAGE_FAULT: LOAD,
          traps.STORE_PAGE_FAULT: STORE}
ACCESS_FAULT = {FETCH: traps.INSN_ACCESS_FAULT, LOAD: traps.LOAD_ACCESS_FAULT,
                STORE: traps.STORE_ACCESS_FAULT}


class PrefixedConsole:
    """One VM's output on a shared console, each line prefixed with its name."""

    def __init__(self, console, prefix: str):
        self.console, self.prefix, self.at_line_start = console, prefix.encode(), True

    def write(self, data: bytes) -> None:
        out = bytearray()
        for b in data:
            if self.at_line_start and self.prefix:
                out += self.prefix
            out.append(b)
            self.at_line_start = b == 10
        self.console.write(bytes(out))


class Hypervisor(MachineTime):
    def __init__(self, vm_configs: list[VmConfig], console, clock: str = "icount",
                 engine: str = "translate", max_instructions: int | None = None,
                 code_cache: str | None = None, compile_workers: int | None = None):
        if not vm_configs:
            raise ConfigError("no virtual machine to run")
        self.console = console
        self.max_instructions = max_instructions
        pool_bytes = SHADOW_POOL_PAGES * 4096
        total = sum(c.memory + pool_bytes for c in vm_configs)
        self.ram = GuestMemory(HOST_RAM_BASE, total)
        self.bus = Bus()                          # nothing: every VM device is emulated
        self.clock = HostClock() if clock == "host" else InstructionClock()
        self.rtc_base_ns = time.time_ns()
        self.hart = Hart(self)
        self.hart.translate_blocks = engine == "translate"
        self.code_cache = CodeCache(code_cache) if self.hart.translate_blocks else None
        self.hart.code_cache = self.code_cache
        self.hart.compiler = background_compiler(engine, compile_workers)
        self.hart.m_trap_hook = self.on_trap
        self.hart.set_priv(U)                     # guests only ever run in U-mode
        self.vms: list[VirtualMachine] = []
        host = HOST_RAM_BASE
        several = len(vm_configs) > 1
        for cfg in vm_configs:
            pool = ShadowPool(self.ram, host + cfg.memory, SHADOW_POOL_PAGES)
            out = PrefixedConsole(console, f"[{cfg.name}] " if several else "")
            self.vms.append(VirtualMachine(self, cfg, self.ram, host, pool, out))
            host += cfg.memory + pool_bytes
        self.current: VirtualMachine | None = None
        self.wall = 0.0
        self.exits = 0                            # all VMs, for the budget
        self.slice_exits = 0

    # -- what the hart calls (and mtime/rtc_ns from MachineTime) ---------------
    def charge_cycles(self, cycles: int) -> None:
        self.hart.cycle_extra += cycles

    # -- scheduling ------------------------------------------------------------
    def switch_to(self, vm: VirtualMachine) -> None:
        """Put ``vm`` on the hart (its registers, pc and shadow tables)."""
        h = self.hart
        if self.current is vm:
            return
        if self.current is not None:
            self._save(self.current)
        self.current = vm
        v = vm.vcpu
        h.x[:] = v.x                              # the list object stays: closures hold it
        h.pc = v.pc
        self._load_shadow(vm)

    def _save(self, vm: VirtualMachine) -> None:
        vm.vcpu.x[:] = self.hart.x
        vm.vcpu.pc = self.hart.pc

    def _shadow_key(self, vm: VirtualMachine) -> tuple:
        v = vm.vcpu
        return (v.satp, v.priv, bool(v.sstatus & (1 << 18)), bool(v.sstatus & (1 << 19)))

    def _load_shadow(self, vm: VirtualMachine) -> None:
        self.hart.set_satp(vm.shadow.satp_for(self._shadow_key(vm)))

    def vm_stopped(self, vm: VirtualMachine) -> None:
        if vm is self.current:
            self.hart.limit = 0

    def run(self, until=None) -> int | None:
        """Run every VM until all have powered off; returns the exit code (or None
        if the instruction budget ran out, or ``until()`` became true first)."""
        with gcpolicy.guest_running():
            return self._run(until)

    def _run(self, until) -> int | None:
        h, clock = self.hart, self.clock
        start = time.perf_counter()
        rr = 0
        try:
            while True:
                alive = [vm for vm in self.vms if vm.exit_code is None]
                if not alive:
                    break
                if until is not None and until():
                    return None
                # The budget counts guest instructions and VMM exits: both are work, and a
                # guest stuck faulting retires no instructions at all.
                if self.max_instructions is not None and \
                        h.instret + self.exits >= self.max_instructions:
                    return None
                self._service()
                now = self.mtime()
                for vm in alive:
                    if vm.vcpu.waiting and vm.vcpu.pending_enabled(now):
                        vm.vcpu.waiting = False
                runnable = [vm for vm in alive if not vm.vcpu.waiting]
                if not runnable:
                    deadlines = [vm.vcpu.timer for vm in alive if vm.vcpu.timer != M64]
                    clock.idle_until(h.instret, min(deadlines) if deadlines else None,
                                     self.console.wait)
                    continue
                vm = runnable[rr % len(runnable)]
                rr += 1
                self.switch_to(vm)
                self._deliver_interrupts(vm)
                limit = h.instret + SLICE
                if vm.vcpu.timer != M64 and vm.vcpu.timer > now:
                    at = clock.instret_at(vm.vcpu.timer)
                    if at is not None:
                        limit = min(limit, max(at, h.instret + 1))
                if self.max_instructions is not None:
                    limit = min(limit, max(self.max_instructions - self.exits, h.instret + 1))
                h.limit = limit
                self.slice_exits = 0
                h.run()
            return self._exit_code()
        finally:
            if self.current is not None:
                self._save(self.current)
            self.wall += time.perf_counter() - start
            self.console.close()

    def _exit_code(self) -> int:
        codes = [vm.exit_code or 0 for vm in self.vms]
        return next((c for c in codes if c), 0)

    def _service(self) -> None:
        """Host input goes to the first VM's UART; RTC alarms; nothing else is timed."""
        vm = self.vms[0]
        if vm.exit_code is None and vm.uart.wants_input():
            data = self.console.poll()
            if data:
                vm.uart.push_input(data)
        for vm in self.vms:
            vm.platform.rtc.poll()

    def _deliver_interrupts(self, vm: VirtualMachine) -> None:
        v = vm.vcpu
        irq = v.deliverable(self.mtime())
        if irq is not None:
            old_priv = v.priv
            self.hart.pc = v.enter_trap(irq, 0, self.hart.pc, True)
            vm.ledger.record("interrupt", {9: "external", 1: "software", 5: "timer"}[irq])
            if old_priv != v.priv:
                self._load_shadow(vm)

    # -- exits -------------------------------------------------------------------
    def on_trap(self, cause: int, tval: int, epc: int, interrupt: bool) -> None:
        """Every trap that reaches M-mode (the hart's hook): an exit of the current VM."""
        h = self.hart
        self.exits += 1
        self.slice_exits += 1
        if self.slice_exits >= SLICE_EXITS:
            h.limit = 0
        self.handle_exit(self.current, Exit.from_trap(cause, tval, epc, interrupt))

    def handle_exit(self, vm: VirtualMachine, e: Exit) -> None:
        """Emulate or reflect one exit of ``vm`` (the running VM), then resume it."""
        h = self.hart
        if e.kind == INTERRUPT:                     # the host has no interrupt sources
            h.pc = e.pc
            return
        try:
            if e.kind == ILLEGAL:
                self._privileged(vm, e.tval, e.pc)
            elif e.kind == ECALL:
                if vm.vcpu.priv == S:
                    ext = sbi.handle(self, vm, h.x)
                    vm.ledger.record("sbi", ext)
                    h.pc = e.pc + 4
                else:
                    self._reflect(vm, traps.ECALL_FROM_U, 0, e.pc, "ecall_user")
            elif e.kind == PAGE_FAULT:
                self._page_fault(vm, ACCESS[e.cause], e.tval, e.pc)
            else:
                self._reflect(vm, e.cause, e.tval, e.pc, "exception_reflected")
        except GuestIllegal:
            self._reflect(vm, traps.ILLEGAL_INSN, e.tval, e.pc, "exception_reflected")
        h.x[0] = 0
        if vm.exit_code is None:
            self._deliver_interrupts(vm)

    def _reflect(self, vm, cause, tval, epc, reason) -> None:
        v = vm.vcpu
        old = v.priv
        self.hart.pc = v.enter_trap(cause, tval, epc, False)
        vm.ledger.record(reason, traps.EXCEPTION_NAMES.get(cause, str(cause)))
        if old != v.priv:
            self._load_shadow(vm)

    def _privileged(self, vm, bits: int, epc: int) -> None:
        """An illegal-instruction trap: a privileged instruction to emulate, or a
        genuinely illegal one for the guest."""
        h, v = self.hart, vm.vcpu
        d = isa.decode(bits)
        name = d.insn.name
        if name.startswith("csrr"):
            csr = d.csr
            if v.priv == U:
                # User code may read counters the guest kernel allows; nothing else.
                allowed = csr in COUNTERS and v.scounteren >> (csr & 31) & 1 \
                    and (name in ("csrrs", "csrrc", "csrrsi", "csrrci") and d.rs1 == 0)
                if not allowed:
                    raise GuestIllegal(name)
            self._csr(vm, d)
            vm.ledger.record("counter" if csr in COUNTERS else "csr",
                             COUNTERS.get(csr, f"{csr:#x}"))
            h.pc = epc + d.length
        elif v.priv == U:
            raise GuestIllegal(name)
        elif name == "sret":
            h.pc = v.sret()
            vm.ledger.record("sret")
            if v.priv != S:
                self._load_shadow(vm)
        elif name == "wfi":
            h.pc = epc + d.length
            vm.ledger.record("wfi")
            if not v.pending_enabled(self.mtime()):
                v.waiting = True
                h.limit = 0
        elif name == "sfence.vma":
            h.pc = epc + d.length
            vm.ledger.record("sfence_vma")
            self.guest_sfence(vm)
        else:
            raise GuestIllegal(name)

    def _csr(self, vm, d) -> None:
        """csrrw/csrrs/csrrc(i) against the virtual CSR file."""
        h, v = self.hart, vm.vcpu
        name = d.insn.name
        imm = name.endswith("i")
        src = d.imm if imm else h.x[d.rs1]
        op = name[4]                                  # csrr[w|s|c](i)
        writes = op == "w" or (d.imm if imm else d.rs1) != 0
        old = v.csr_read(d.csr, self.mtime(), h.read_cycle() if d.csr == 0xC00 else h.instret)
        if writes:
            new = src if op == "w" else (old | src if op == "s" else old & ~src)
            changed = v.csr_write(d.csr, new & M64)
            if changed in ("satp", "sstatus"):
                self._load_shadow(vm)                 # SUM/MXR or the root changed
        if d.rd:
            h.x[d.rd] = old

    def guest_sfence(self, vm) -> None:
        vm.shadow.flush()
        if vm is self.current:
            self._load_shadow(vm)

    def guest_set_satp(self, vm, value: int) -> None:
        vm.vcpu.csr_write(0x180, value)
        if vm is self.current:
            self._load_shadow(vm)

    def _page_fault(self, vm, access: int, va: int, epc: int) -> None:
        h, v = self.hart, vm.vcpu
        sum_, mxr = bool(v.sstatus & (1 << 18)), bool(v.sstatus & (1 << 19))
        try:
            gpa, r, w, x = guest_walk(vm.ram, v.satp, va, access, v.priv == U, sum_, mxr)
        except GuestPageFault as f:
            self._reflect(vm, f.cause, va, epc, "page_fault_guest")
            return
        host = vm.shadow.host_page(gpa & ~0xFFF)
        if host is not None:
            if not vm.shadow.fill(self._shadow_key(vm), va, host, r, w, x):
                self._load_shadow(vm)                 # evicted: new root, flushed TLB
                vm.shadow.fill(self._shadow_key(vm), va, host, r, w, x)
            vm.ledger.record("page_fault_shadow")
            h.pc = epc                                # retry the access
            return
        if access == FETCH:
            self._reflect(vm, traps.INSN_ACCESS_FAULT, va, epc, "exception_reflected")
            return
        self._mmio(vm, access, va, (gpa & ~0xFFF) | (va & 0xFFF), epc)

    def _mmio(self, vm, access: int, va: int, gpa: int, epc: int) -> None:
        """A load or store to a device: decode the instruction, do it on the VM's bus."""
        h = self.hart
        d = self._fetch_insn(vm, epc)
        m = vm.bus.find(gpa)
        if d is None or d.insn.mem is None or m is None:
            self._reflect(vm, ACCESS_FAULT[access], va, epc, "exception_reflected")
            return
        size = d.insn.mem[1]
        if gpa + size > m.end or gpa % size:
            self._reflect(vm, ACCESS_FAULT[access], va, epc, "exception_reflected")
            return
        if d.insn.kind == isa.LOAD:
            raw = m.device.read(gpa - m.base, size) & ((1 << (8 * size)) - 1)
            if d.rd:
                h.x[d.rd] = _load_result(d.insn, raw)
            vm.ledger.record("mmio_read", m.name)
        else:
            m.device.write(gpa - m.base, size, h.x[d.rs2] & ((1 << (8 * size)) - 1))
            vm.ledger.record("mmio_write", m.name)
        h.pc = epc + d.length

    def _fetch_insn(self, vm, pc: int):
        v = vm.vcpu
        try:
            gpa, *_ = guest_walk(vm.ram, v.satp, pc, FETCH, v.priv == U, False, False)
            gpa |= pc & 0xFFF
            word = vm.ram.read_int(gpa, 2)
            if word & 3 == 3:
                word = vm.ram.read_int(gpa, 4)
        except (GuestPageFault, GuestMemoryError):
            return None
        return isa.decode(word)

    # -- reporting ----------------------------------------------------------------
    def stats(self) -> dict:
        h = self.hart
        out = {"instructions": h.instret, "wall_seconds": self.wall,
               "mips": h.instret / self.wall / 1e6 if self.wall else 0.0,
               "blocks_translated": h.tstats.translated,
               **(self.code_cache.stats() if self.code_cache else {}),
               **(self.hart.compiler.stats() if self.hart.compiler else {})}
        for vm in self.vms:
            n, cyc = vm.ledger.total()
            out[f"{vm.name}_exits"] = n
            out[f"{vm.name}_exit_cycles"] = cyc
            out[f"{vm.name}_shadow_pages"] = vm.shadow.pool.used
            out[f"{vm.name}_shadow_fills"] = vm.shadow.fills
            out[f"{vm.name}_shadow_flushes"] = vm.shadow.flushes
        return out

    def ledger_report(self) -> str:
        return "\n".join(vm.ledger.report(f"exit ledger for {vm.name}") for vm in self.vms)

    def close(self) -> None:
        for vm in self.vms:
            vm.close()
        self.hart.stop_translating()


_LOAD_RESULT = {}


def _load_result(insn, raw: int) -> int:
    """The value a load instruction writes to rd, from the raw bytes (its snippet)."""
    fn = _LOAD_RESULT.get(insn.name)
    if fn is None:
        expr = insn.body.split("=", 1)[1].strip()          # "x[rd] = <expr of v>"
        fn = _LOAD_RESULT[insn.name] = eval(f"lambda v: {expr}", dict(isa.SEMANTICS_GLOBALS))
    return fn(raw)
