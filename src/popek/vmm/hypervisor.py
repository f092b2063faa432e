"""The VMM on the simulated machine: its VMs, their scheduling on the one hart,
and the dispatch of their exits.

The simulated hart does not know about the VMM.  The VMM stands where M-mode
software would (``Hart.m_trap_hook``): a trap that reaches M-mode is an exit of
the running VM, which its CPU strategy turns into a typed exit
(vmm/exits.py) and the VM's table hands to the strategy that owns that kind
(vmm/builder.py assembles each VM from a CPU, a paging and an I/O strategy).
What each technique does lives in its strategy's module, not here.

Host memory (the simulated machine's RAM, at 0x8000_0000):

    [ VM 0 RAM ][ VM 0 paging pool ][ VM 1 RAM ][ VM 1 paging pool ] ... [ VMM region ]

A VM's devices are its own (riscv/platform.py), emulated, except the host's
physical devices it is given (vmm/host.py, vmm/io/passthrough.py); the VMM region
holds the IOMMU's tables and queues (vmm/iommu.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from popek import gcpolicy
from popek.clock import (DEFAULT_IPS, HostClock, InstructionClock, MachineTime, idle_waits,
                         slice_limit)
from popek.costmodel import CostModel
from popek.devices.bus import Bus
from popek.devices.memory import GuestMemory
from popek.devices.options import Network
from popek.errors import ConfigError
from popek.riscv import isa
from popek.riscv.codecache import CodeCache
from popek.riscv.compiler import background_compiler
from popek.riscv.hart import Hart
from popek.riscv.hart.privileged import SLICE_TRAPS
from popek.vmm import builder
from popek.vmm import drivers as placement
from popek.vmm.drivers.faults import plans
from popek.vmm.exits import Exit
from popek.vmm.host import HostHardware, check_passthrough
from popek.vmm.iommu import region_pages
from popek.vmm.vm import VirtualMachine, VmConfig

log = logging.getLogger(__name__)

HOST_RAM_BASE = 0x80000000
DRIVER_CRASH_CODE = 3               # the exit code when the VMM's own driver crashed
SLICE = 20_000                      # instructions a vCPU runs before the VMM looks around
M64 = (1 << 64) - 1


MEGA = 2 << 20


def _round_up(n: int, align: int) -> int:
    return -(-n // align) * align


def _isas(cpu: str, needs_h: bool) -> tuple:
    """The hart's ISA and the one its guests see: with hardware assist the hart has
    the H extension (``cpu`` plus H); the guests never do (no nested virtualization)."""
    variant = isa.variant(cpu)
    base = variant.name.removesuffix("h")
    if not needs_h:
        return variant, isa.variant(base)
    try:
        return isa.variant(base + "h"), isa.variant(base)
    except KeyError:
        raise ConfigError(f"--vmm hw needs a hart with the H extension, which --cpu {cpu} "
                          f"cannot have (use rv64gc)") from None


def _timers_to_come(vm: VirtualMachine, now: int) -> list[int]:
    """The SBI timer deadlines of ``vm``'s started vCPUs still in the future."""
    return [v.timer for v in vm.vcpus if v.started and now < v.timer != M64]


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
                 code_cache: str | None = None, compile_workers: int | None = None,
                 costs: CostModel | None = None, cpu: str = isa.DEFAULT_VARIANT,
                 ips: int | None = None, icount_sleep: bool = True,
                 icount_idle: str = "auto", netdevs=(),
                 host_devices=(), iommu: bool = True, on_iommu_fault: str = "report",
                 drivers: str = "monolithic", faults: dict | None = None,
                 domain_kernel: str | None = None, domain_append: str = "",
                 domain_watchdog_ms: int | None = None):
        """``netdevs``: backends beside the VMs' own (for ``host_devices``, the
        --host-device specs: physical devices, vmm/host.py); ``iommu``: whether their
        DMA goes through the IOMMU; ``on_iommu_fault``: report, or stop the VM;
        ``drivers``: where the drivers of the disks VMs use (``disk=``) run
        (vmm/drivers/), ``faults`` the faults to inject into them (device id → a
        FaultPlan, or the requests first served before a crash), ``domain_kernel``
        the driver domains' kernel, ``domain_append`` more of its command line and
        ``domain_watchdog_ms`` how long one may leave a request unanswered (None: the
        default)."""
        if not vm_configs:
            raise ConfigError("no virtual machine to run")
        for c in vm_configs:
            c.check()
        faults = plans(faults)
        disks = placement.check(drivers, vm_configs, host_devices, iommu, faults)
        if drivers == "domains":
            kernel = placement.domain_kernel(domain_kernel)
            made = [placement.domain_config(ident, kernel, vm_configs[0], faults.get(ident),
                                            domain_append) for ident in disks]
            for c in made:
                c.check()
            vm_configs = list(vm_configs) + made
        # One network for the run: the VMs' NICs meet on its switches.
        self.network = Network([n for c in vm_configs for n in c.netdevs] + list(netdevs))
        check_passthrough(vm_configs, host_devices, self.network)
        self.network.check_all([c.devices for c in vm_configs] + [list(host_devices)])
        self.console = console
        self.max_instructions = max_instructions
        self.costs = costs or CostModel()
        # Each VM's RAM starts 2 MiB aligned in host memory (its pool is rounded up), so
        # nested paging can map it with megapages whatever the sizes of the VMs before.
        pools = [_round_up(c.memory + builder.pool_pages(c.paging) * 4096, MEGA) - c.memory
                 for c in vm_configs]
        total = sum(c.memory for c in vm_configs) + sum(pools)
        # The VMM's own region after them, with host devices: the IOMMU's tables and
        # queues (vmm/iommu.py; kept with --iommu off too, as host memory no VM owns).
        region = drivers_base = None
        if host_devices:
            domains = sum(c.domain for c in vm_configs)
            region = (HOST_RAM_BASE + total,
                      region_pages([c.memory for c in vm_configs if c.passthrough], domains,
                                   placement.WINDOW_BYTES))
            total += region[1] * 4096
            drivers_base = HOST_RAM_BASE + total       # (the VMM's own drivers' pages)
            if drivers == "monolithic":
                total += len(disks) * placement.MONOLITHIC_PAGES * 4096
        self.ram = GuestMemory(HOST_RAM_BASE, total)
        self.bus = Bus()                          # the host's devices (vmm/host.py), if any
        self.clock = HostClock() if clock == "host" else \
            InstructionClock(ips or DEFAULT_IPS, sleep=icount_sleep,
                             idle_waits=idle_waits(icount_idle, console))
        self.rtc_base_ns = time.time_ns()
        hart_isa, self.guest_isa = _isas(cpu, any(c.cpu in builder.NEEDS_H for c in vm_configs))
        self.hart = Hart(self, isa_variant=hart_isa, costs=self.costs)
        self.hart.translate_blocks = engine == "translate"
        self.code_cache = CodeCache(code_cache) if self.hart.translate_blocks else None
        self.hart.code_cache = self.code_cache
        self.hart.compiler = background_compiler(engine, compile_workers)
        self.host = HostHardware(self, host_devices, self.network, region, iommu,
                                 on_iommu_fault)
        self.placement = placement.Placement(
            self, drivers, faults, domain_append, placement.DEFAULT_WATCHDOG_MS
            if domain_watchdog_ms is None else domain_watchdog_ms)
        self.placement.start(disks, drivers_base)
        self.vms: list[VirtualMachine] = []
        host = HOST_RAM_BASE
        several = len(vm_configs) > 1
        self.current: VirtualMachine | None = None
        self.crash: str | None = None             # why a driver of the VMM brought it down
        for cfg, pool in zip(vm_configs, pools):
            out = PrefixedConsole(console, f"[{cfg.name}] " if several else "")
            self.vms.append(VirtualMachine(self, cfg, self.ram, host, host + cfg.memory, out))
            host += cfg.memory + pool
        for domain in self.placement.domains:
            domain.vm = next(vm for vm in self.vms if vm.cfg.passthrough == [domain.id]
                             and vm.cfg.domain)
            domain.vm.domain = domain
        self.wall = 0.0
        self.exits = 0                            # all VMs, for the budget
        self.switches = 0                         # world switches between VMs
        self.stuck_skips = 0                      # slices that retired nothing (_stuck_slice)
        self.idle_for_ever = False                # every VM waits; nothing can wake one

    # -- what the hart calls (and mtime/rtc_ns from MachineTime) ---------------
    def charge_cycles(self, cycles: int) -> None:
        self.hart.cycle_extra += cycles

    def next_wake(self) -> int | None:
        """What can wake a vCPU, in mtime ticks: a timer still to come (one already
        past with its interrupt masked wakes nobody: waiting for it spun for ever), an
        RTC alarm (clock.MachineTime), a driver domain's watchdog (one asleep while it
        owes a request)."""
        now = self.mtime()
        alive = [vm for vm in self.vms if vm.exit_code is None]
        wakes = [t for vm in alive for t in _timers_to_come(vm, now)]
        wakes += [t for vm in alive
                  if (t := self.rtc_alarm_ticks(vm.platform.rtc)) is not None and t > now]
        wakes += [t for d in self.placement.domains if (t := d.deadline()) is not None]
        return min(wakes, default=None)

    def others_asleep(self) -> bool:
        """Whether every started vCPU but the running one waits in wfi with nothing
        pending (clock.MachineTime.guest_time skips a poll's wait only then)."""
        return all(v.waiting and not v.pending_enabled()
                   for vm in self.vms if vm.exit_code is None
                   for v in vm.vcpus if v.started and v is not self.current.vcpu)

    # -- scheduling ------------------------------------------------------------
    def switch_to(self, vm: VirtualMachine, vcpu=None) -> None:
        """Put ``vm``'s ``vcpu`` (default: its current one) on the hart: its registers,
        pc and translation.  Every such world switch, between VMs or between the vCPUs
        of one, is counted."""
        h = self.hart
        vcpu = vcpu or vm.vcpu
        if self.current is vm and vm.vcpu is vcpu:
            return
        if self.current is not None:
            self._save(self.current)
            self.switches += 1
            # The hart is one, the vCPUs many: an LR's reservation must not outlive its
            # vCPU's turn, or another vCPU's store could let its SC succeed.
            h.reservation = None
        self.current = vm
        vm.vcpu = vcpu
        if h.rewrite_name != vm.cpu.REWRITE:     # (binary translation: another flavour of code)
            h.set_rewrite(vm.cpu.REWRITE)
        vcpu.load_onto(h)
        vm.cpu.activate()
        vm.memory.activate()

    def _save(self, vm: VirtualMachine) -> None:
        vm.cpu.deactivate()
        vm.vcpu.save_from(self.hart)

    def vm_stopped(self, vm: VirtualMachine) -> None:
        if vm is self.current:
            self.hart.limit = 0

    def run(self, until=None) -> int | None:
        """Run every VM until all have powered off; returns the exit code (or None
        if the instruction budget ran out, or ``until()`` became true first)."""
        with gcpolicy.guest_running():
            return self._run(until)

    def _runnable(self) -> list:
        """The (VM, vCPU) pairs that can run now: started, and not waiting for an
        interrupt (one pending wakes it)."""
        out = []
        for vm in self.vms:
            if vm.exit_code is not None:
                continue
            for v in vm.vcpus:
                if v.started:
                    if v.waiting and v.pending_enabled():
                        v.waiting = False
                    if not v.waiting:
                        out.append((vm, v))
        return out

    def _run(self, until) -> int | None:
        h, clock = self.hart, self.clock
        start = time.perf_counter()
        rr = 0
        try:
            # (Driver domains serve the others: the run is over when the others are.)
            while any(vm.exit_code is None for vm in self.vms if vm.domain is None):
                if until is not None and until():
                    return None
                # The budget counts guest instructions and VMM exits: both are work, and a
                # guest stuck faulting retires no instructions at all.
                if self.max_instructions is not None and \
                        h.instret + self.exits >= self.max_instructions:
                    return None
                self._service()
                runnable = self._runnable()
                if not runnable:
                    wake = self.next_wake()
                    if wake is None and not self.console.input_possible():
                        # (A deadline that passed since _runnable looked, host time running
                        # on, has made its vCPU runnable: look once more before giving up.)
                        if self._runnable():
                            continue
                        self.idle_for_ever = True       # nothing can wake any of them
                        return None
                    clock.idle_until(h.instret, wake, self.console.wait)
                    continue
                vm, vcpu = runnable[rr % len(runnable)]
                rr += 1
                self.switch_to(vm, vcpu)
                vm.cpu.deliver_interrupts()
                budget = self.max_instructions
                # The slice ends when a timer of this VM's vCPUs is due, so it is
                # delivered at the same instruction every run.
                due = min(_timers_to_come(vm, self.mtime()), default=None)
                h.limit = slice_limit(clock, h.instret, SLICE, due,
                                      None if budget is None else budget - self.exits)
                before = h.instret
                h.run()
                vm.retired += h.instret - before
                if h.instret == before and h.slice_traps >= SLICE_TRAPS and clock.deterministic:
                    self._stuck_slice()
            return self._exit_code()
        except placement.DriverCrash as e:
            # The VMM's own driver failed: the VMM cannot go on, nor can any VM.
            self.crash = str(e)
            for vm in self.vms:
                vm.shutdown(DRIVER_CRASH_CODE, f"the VMM went down: {e}")
            return DRIVER_CRASH_CODE
        finally:
            if self.current is not None:
                self._save(self.current)
                self.current = None     # (a later run() switches to it afresh: activate())
            self.wall += time.perf_counter() - start
            self.console.close()

    def _stuck_slice(self) -> None:
        """A slice that retired no instruction in SLICE_TRAPS traps: its vCPU traps in a
        loop (a guest whose trap handler faults too).  Time follows retired
        instructions, so it would stop for every VM; instead it moves on by what those
        traps cost (their entries and returns, in modelled cycles: one cycle, one
        instruction's time), at most to the next timer deadline, so a VM waiting for its
        timer is not starved, nor are the others' clocks run fast."""
        h, costs = self.hart, self.costs
        wake = self.next_wake()
        if wake is not None:
            spent = self.clock.mtime(h.instret + SLICE_TRAPS * (costs.TRAP_ENTRY
                                                                + costs.TRAP_RETURN))
            self.stuck_skips += 1
            self.clock.idle_until(h.instret, min(wake, spent), self.console.wait, idle=False)

    def _exit_code(self) -> int:
        codes = [vm.exit_code or 0 for vm in self.vms if vm.domain is None]
        return next((c for c in codes if c), 0)

    def _service(self) -> None:
        """Between slices: host input to the first VM still running (the console is
        polled whatever the VMs do, so Ctrl-A x always works), RTC alarms, device work
        a notify left over."""
        alive = [vm for vm in self.vms if vm.exit_code is None]
        if alive:
            alive[0].platform.poll_input(self.console)
        self.network.poll()
        self.host.poll()
        for domain in self.placement.domains:
            domain.check()                        # (a dead one is restarted)
        for vm in self.vms:
            vm.platform.poll_devices()

    def restart_vm(self, old: VirtualMachine, append: str | None = None) -> VirtualMachine:
        """Build ``old`` anew in its place: its RAM and paging pool wiped, its kernel
        loaded again, fresh vCPUs and devices (a driver domain after its crash)."""
        if self.current is old:
            self._save(old)                       # (off the hart: hw's mode, bt's hook)
            self.current = None
        self.host.release(old)
        old.close()
        cfg = old.cfg if append is None else replace(old.cfg, append=append)
        end = next((vm.host_base for vm in self.vms if vm.host_base > old.host_base),
                   self.ram.end if self.host.region is None else self.host.region[0])
        self.ram.write(old.host_base, bytes(end - old.host_base))     # RAM and pool
        new = VirtualMachine(self, cfg, self.ram, old.host_base, old.pool_base, old.console)
        self.vms[self.vms.index(old)] = new
        return new

    # -- exits -------------------------------------------------------------------
    def on_trap(self, cause: int, tval: int, epc: int, interrupt: bool) -> None:
        """Every trap that reaches M-mode (the hart's hook): an exit of the current VM."""
        self.exits += 1             # (a slice ends after SLICE_TRAPS of them: hart/privileged.py)
        vm = self.current
        self.handle_exit(vm, vm.cpu.exit_from_trap(cause, tval, epc, interrupt))

    def handle_exit(self, vm: VirtualMachine, e: Exit) -> None:
        """Handle one exit of ``vm`` (the running VM) through its table, then resume it."""
        vm.handlers[type(e)](vm, e)
        vm.cpu.resume(e)

    # -- reporting ----------------------------------------------------------------
    def stats(self) -> dict:
        h = self.hart
        out = {"instructions": h.instret, "wall_seconds": self.wall,
               "mips": h.instret / self.wall / 1e6 if self.wall else 0.0,
               "vm_switches": self.switches,
               **({"stuck_slice_skips": self.stuck_skips} if self.stuck_skips else {}),
               **self.clock_stats(),
               "page_walks": h.walk_stats.walks, "pte_reads": h.walk_stats.pte_reads,
               **({"two_stage_walks": h.stats["two_stage_walks"],
                   "two_stage_pte_reads": h.stats["two_stage_pte_reads"]} if h.has_h else {}),
               "blocks_translated": h.tstats.translated,
               **h.cache_stats(),
               **(self.code_cache.stats() if self.code_cache else {}),
               **(self.hart.compiler.stats() if self.hart.compiler else {})}
        for vm in self.vms:
            n, cyc = vm.ledger.total()
            out[f"{vm.name}_exits"] = n
            out[f"{vm.name}_exit_cycles"] = cyc
            for strategy in (vm.cpu, vm.memory, vm.io):
                for key, value in strategy.stats().items():
                    out[f"{vm.name}_{key}"] = value
            for i, disk in enumerate(vm.platform.disk_stats()):
                out[f"{vm.name}_disk{i}"] = ", ".join(f"{k}={v}" for k, v in disk.items())
            for what, counts in vm.platform.device_stats().items():
                out[f"{vm.name} {what}"] = counts
        out.update(self.network.stats())
        out.update(self.host.stats())
        out.update(self.placement.stats())
        return out

    def ledger_report(self) -> str:
        return "\n".join(vm.ledger.report(f"exit ledger for {vm.name}") for vm in self.vms)

    def close(self) -> None:
        for vm in self.vms:
            vm.close()
        self.host.close()
        self.network.close()
        self.hart.stop_translating()
