"""The ``virt`` board: QEMU's RISC-V virt machine, in the parts popek implements.

Physical memory map (as QEMU's hw/riscv/virt.c):

    0x0000_1000 +0x0000_f000   reset ROM   (jumps to firmware: a0=hartid, a1=dtb)
    0x0010_0000 +0x0000_1000   test/syscon (power off, reboot)
    0x0010_1000 +0x0000_1000   goldfish RTC                 IRQ 11
    0x0200_0000 +0x0001_0000   CLINT       (msip, mtimecmp, mtime)
    0x0c00_0000 +0x0060_0000   PLIC
    0x1000_0000 +0x0000_0100   16550 UART                   IRQ 10
    0x1000_1000 +0x0000_1000   virtio-mmio slot 0 .. 7      IRQ 1 .. 8
    0x8000_0000 +RAM size      RAM         (firmware at the base, kernel at +2 MiB,
                                            device tree at the top, 2 MiB aligned)

Boot: the reset ROM at 0x1000 runs first, exactly like QEMU's, so firmware sees
the same registers (a0 = hart id, a1 = device tree, a2 = fw_dynamic info).
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass, field

from popek import gcpolicy
from popek.clock import (DEFAULT_IPS, HostClock, InstructionClock, MachineTime, idle_waits,
                         slice_limit)
from popek.console import StdioConsole
from popek.costmodel import CostModel
from popek.devices.bus import Bus
from popek.devices.memory import GuestMemory
from popek.devices.options import Network
from popek.errors import ConfigError, ImageError
from popek.riscv import devicetree, isa
from popek.riscv.clint import Clint
from popek.riscv.codecache import CodeCache
from popek.riscv.compiler import background_compiler
from popek.riscv.hart import Hart
from popek.riscv.htif import Htif
from popek.riscv.loader import load_blob, load_image
from popek.riscv.platform import Platform, VirtLayout
from popek.riscv.smp import MAX_HARTS, QUANTUM, HartScheduler
from popek.symbols import Symbols, of_images

log = logging.getLogger(__name__)

MiB = 1 << 20
SLICE = 20_000              # instructions between looks at host input and devices
FW_DYNAMIC_MAGIC = 0x4942534F
MIN_RAM = 1 * MiB
MAX_RAM = 16 << 30          # the most RAM popek gives a simulated machine or VM (docs/errors.md)


@dataclass
class DriveSpec:
    path: str
    readonly: bool = False
    interface: str = "virtio"     # virtio (the machine's usual transport), virtio-mmio,
    #                               virtio-pci, nvme
    ident: str = ""               # its id= (--inject-fault names it; default drive<N>)


@dataclass
class BoardConfig:
    bios: str | None = None           # path, or None for "no firmware" (--bios none)
    kernel: str | None = None
    append: str = ""
    drives: list[DriveSpec] = field(default_factory=list)
    memory: int = 128 * MiB
    clock: str = "icount"             # icount | host
    ips: int = 0                      # nominal instructions/second of the icount clock
    icount_sleep: bool = True         # skip polling loops' waits (clock.MachineTime.guest_time)
    icount_idle: str = "auto"         # idle: wait in real time or skip (clock.idle_waits)
    max_instructions: int | None = None
    engine: str = "translate"         # translate | interpret
    profile: bool = False
    profile_symbols: list = field(default_factory=list)   # files naming guest functions
    code_cache: str | None = None     # directory keeping compiled translations (codecache.py)
    compile_workers: int | None = None  # processes compiling translations; None: as the host allows
    costs: CostModel | None = None    # modelled cycle costs (costmodel.py); None: the defaults
    cpu: str = isa.DEFAULT_VARIANT    # the ISA variant (isa.variant): rv64imafdc (rv64gc), rv64imac
    initrd: str | None = None         # an initial ramdisk for Linux (/chosen linux,initrd-*)
    smp: int = 1                      # harts (smp.py: a deterministic round robin)
    devices: list = field(default_factory=list)   # --device (devices/options.py): NICs, RNGs
    netdevs: list = field(default_factory=list)   # --netdev: the NICs' backends


class ResetRom:
    """The mask ROM at 0x1000: QEMU's reset vector followed by its data words."""
    SIZE = 0xF000

    def __init__(self, start: int, dtb_addr: int, next_addr: int):
        code = [
            0x00000297,     # auipc t0, 0
            0x02828613,     # addi  a2, t0, 40     (a2 = &fw_dynamic_info)
            0xF1402573,     # csrr  a0, mhartid
            0x0202B583,     # ld    a1, 32(t0)     (device tree)
            0x0182B283,     # ld    t0, 24(t0)     (firmware entry)
            0x00028067,     # jr    t0
        ]
        blob = b"".join(struct.pack("<I", w) for w in code)
        blob += struct.pack("<QQ", start, dtb_addr)
        # struct fw_dynamic_info: magic, version, next_addr, next_mode (1 = S), options, boot_hart
        blob += struct.pack("<QQQQQQ", FW_DYNAMIC_MAGIC, 2, next_addr, 1, 0, 0)
        self.data = blob + bytes(self.SIZE - len(blob))

    def read(self, off, size):
        return int.from_bytes(self.data[off:off + size], "little")

    def write(self, off, size, value):
        pass

    def fetch(self, off, size):
        return self.read(off, size)


class VirtBoard(VirtLayout, MachineTime):
    def __init__(self, config: BoardConfig, console=None):
        if config.memory < MIN_RAM or config.memory % 4096:
            raise ConfigError(f"memory size must be a multiple of 4 KiB and at least "
                              f"{MIN_RAM // MiB} MiB (got {config.memory} bytes)")
        if config.memory > MAX_RAM:
            raise ConfigError(f"memory size must be at most {MAX_RAM >> 30} GiB "
                              f"(got {config.memory} bytes)")
        if config.bios is None and config.kernel is None:
            raise ConfigError("nothing to run: give --bios or --kernel")
        if sum(d.interface != "virtio-pci" for d in config.drives) > self.VIRTIO_SLOTS:
            raise ConfigError(f"at most {self.VIRTIO_SLOTS} virtio-mmio drives (the board's "
                              "slots; if=virtio-pci puts a disk on PCIe)")
        if not 1 <= config.smp <= MAX_HARTS:
            raise ConfigError(f"--smp takes 1 to {MAX_HARTS} harts on the simulated machine "
                              f"(got {config.smp})")
        self.config = config
        self.bootargs = config.append
        self.symbols = None             # --profile names functions (symbols.py): read once
        if config.profile:
            self.symbols = of_images(p for p in (config.bios, config.kernel) if p)
            for path in config.profile_symbols:
                self.symbols.merge(Symbols.from_file(path))
        self.console = console or StdioConsole(on_quit=lambda: self.shutdown(0, "quit from console"))
        self.exit_code: int | None = None
        self.exit_reason = ""
        self.reset_requested = False
        # The guest waits for an interrupt with no timer set and no input to come:
        # nothing can ever wake it, so the run ends (as a budget does) instead of
        # waiting for ever.
        self.idle_for_ever = False
        # Instructions and exceptions of the machine before its last reset (a reset
        # builds a new hart): the budget counts them too, or a guest resetting in a
        # loop would never reach it.
        self.retired_before_reset = self.traps_before_reset = 0
        self.wall_start = self.wall_end = None
        self.platform = None
        self.network = Network(config.netdevs)   # kept across a reset (a TAP stays open)
        self.network.check(config.devices)
        self.trace = None                 # write(pc, text) for --trace, kept across a reset
        # Compiled translations; kept across a reset (the same code compiles the same).
        self.code_cache = CodeCache(config.code_cache) if config.engine == "translate" else None
        self.compiler = background_compiler(config.engine, config.compile_workers)
        self._power_on()

    # --------------------------------------------------------- assembly
    def _power_on(self) -> None:
        """Build RAM, devices and the hart, and load the images (again, on reset)."""
        cfg = self.config
        if self.platform is not None:
            self.platform.close()
        self.ram = GuestMemory(self.RAM_BASE, cfg.memory)
        self.bus = Bus()
        if cfg.clock == "host":
            self.clock = HostClock()
        elif cfg.clock == "icount":
            self.clock = InstructionClock(cfg.ips or DEFAULT_IPS, sleep=cfg.icount_sleep,
                                          idle_waits=idle_waits(cfg.icount_idle, self.console))
        else:
            raise ConfigError(f"unknown clock {cfg.clock!r} (use icount or host)")
        if cfg.engine not in ("translate", "interpret"):
            raise ConfigError(f"unknown engine {cfg.engine!r} (use translate or interpret)")
        variant = isa.variant(cfg.cpu)
        profile = {}
        self.harts = [Hart(self, hartid=i, isa_variant=variant, costs=cfg.costs)
                      for i in range(cfg.smp)]
        for h in self.harts:
            h.translate_blocks = cfg.engine == "translate"
            h.code_cache = self.code_cache
            h.compiler = self.compiler
            h.peers = self.harts            # they share the compiler: its replies go to all
            if cfg.profile:
                h.profile = profile         # one for all harts: blocks by pc
            if self.trace is not None:
                h.start_tracing(self._trace_for(h))
        # ``hart`` is the one running now (or last); the others' instructions count
        # for the clock too (smp.py).
        self.hart = self.harts[0]
        self.isa = self.hart.isa
        self.scheduler = HartScheduler(self.harts)
        self.instret_others = 0
        self.rtc_base_ns = time.time_ns()
        p = self.platform = Platform(self, self.ram, self.console.write, cfg.drives, self.harts,
                                     self.bus, cfg.devices, self.network)
        self.plic, self.uart, self.rtc = p.plic, p.uart, p.rtc
        self.drives, self.virtio = p.drives, p.virtio
        self.clint = Clint(self, self.harts)

        images = self._load_images()
        self.rom = ResetRom(self.entry, self.dtb_addr, self.kernel_entry)
        self.bus.add(self.ROM_BASE, ResetRom.SIZE, self.rom, "rom")
        self.bus.add(self.CLINT_BASE, 0x10000, self.clint, "clint")

        # A bare test program that names tohost talks HTIF.
        self.htif = None
        for img in images:
            if "tohost" in img.symbols:
                self.htif = Htif(self, img.symbols["tohost"], img.symbols.get("fromhost"))
        for h in self.harts:                # every hart starts in the reset ROM, as on QEMU
            h.reset(self.ROM_BASE)
        self.clint.update()

    def _load_images(self):
        cfg, ram = self.config, self.ram
        images = []
        if cfg.bios is not None:
            fw = load_image(cfg.bios, ram, self.RAM_BASE)
            images.append(fw)
            self.entry = fw.entry
            # The kernel goes at the first 2 MiB boundary after the firmware (QEMU's rule).
            kernel_addr = (max(fw.high, self.RAM_BASE) + 2 * MiB - 1) & ~(2 * MiB - 1)
            self.kernel_entry = kernel_addr
            if cfg.kernel is not None:
                k = load_image(cfg.kernel, ram, kernel_addr)
                images.append(k)
                self.kernel_entry = k.entry
        else:
            k = load_image(cfg.kernel, ram, self.RAM_BASE)
            images.append(k)
            self.entry = self.kernel_entry = k.entry
        self.initrd_range = None
        if cfg.initrd is not None:
            images.append(self._load_initrd(cfg.initrd, images))
        self.dtb = devicetree.build(self)
        # QEMU's placement: the top of RAM (below 3 GiB), aligned down to 2 MiB.
        top = min(ram.end, self.RAM_BASE + 3072 * MiB)
        self.dtb_addr = (top - len(self.dtb)) & ~(2 * MiB - 1)
        for img in images:
            if img.low < self.dtb_addr + len(self.dtb) and self.dtb_addr < img.high:
                raise ImageError(f"{img.path}: overlaps the device tree at {self.dtb_addr:#x} "
                                 f"(give more memory with -m)")
        if self.dtb_addr < ram.base:
            raise ImageError("RAM too small for the device tree (give more memory with -m)")
        ram.write(self.dtb_addr, self.dtb)
        return images

    def _load_initrd(self, path: str, images):
        """QEMU's placement (hw/riscv/boot.c): far enough above the kernel that the
        kernel does not overwrite it, low enough to be reached: kernel + min(RAM / 2,
        128 MiB)."""
        start = self.kernel_entry + min(self.config.memory // 2, 128 * MiB)
        img = load_blob(path, self.ram, start, "initrd")
        for other in images:
            if other.low < img.high and img.low < other.high:
                raise ImageError(f"{path}: the initrd at {start:#x} overlaps {other.path}")
        self.initrd_range = (img.low, img.high)
        return img

    # --------------------------------------------------------- control
    def shutdown(self, code: int, reason: str) -> None:
        """Power off: the run loop returns ``code`` at the next block boundary."""
        self.exit_code = code
        self.exit_reason = reason
        self.hart.limit = 0

    def trace_to(self, write) -> None:
        """``--trace``: ``write(pc, text)`` for every instruction that runs and every trap."""
        self.trace = write
        for h in self.harts:
            h.start_tracing(self._trace_for(h))

    def _trace_for(self, hart):
        """The trace writer of ``hart``: with several harts each line names its hart."""
        if self.config.smp == 1:
            return self.trace
        write, tag = self.trace, f"[hart {hart.hartid}] "
        return lambda pc, text: write(pc, tag + text)

    def request_reset(self) -> None:
        self.reset_requested = True
        self.hart.limit = 0

    def _wait_input(self, timeout):
        self.console.wait(timeout)

    def _service(self) -> None:
        """Between slices: host input into the UART, timers, the RTC alarm."""
        self.platform.poll_input(self.console)
        self.clint.update()
        self.network.poll()
        self.platform.poll_devices()

    def run(self) -> int | None:
        """Run until the guest powers off (returns its exit code) or the budget ends (None)."""
        with gcpolicy.guest_running():
            return self._run()

    def next_wake(self) -> int | None:
        """The next timer or RTC alarm deadline, in mtime ticks (clock.MachineTime)."""
        now = self.mtime()
        wakes = [t for t in (self.clint.next_deadline(), self.rtc_alarm_ticks(self.rtc))
                 if t is not None and t > now]
        return min(wakes, default=None)

    def others_asleep(self) -> bool:
        """Whether every hart but the running one sleeps in wfi with nothing pending
        (clock.MachineTime.guest_time skips a poll's wait only then)."""
        return all(h.waiting and not h.mip & h.mie for h in self.harts if h is not self.hart)

    def retired(self) -> int:
        """Instructions retired by all harts since power-on: what the clock counts."""
        return self.instret_others + self.hart.instret

    def traps(self) -> int:
        """Exceptions taken by all harts since power-on."""
        return sum(h.stats["traps"] for h in self.harts)

    def work_done(self) -> tuple[int, int]:
        """Instructions and exceptions since the first power-on (a reset builds new
        harts): what the budget counts, as both are work, and a guest stuck trapping
        retires no instructions at all."""
        return self.retired_before_reset + self.retired(), self.traps_before_reset + self.traps()

    def _run(self) -> int | None:
        clock = self.clock
        budget = self.config.max_instructions
        quantum = SLICE if len(self.harts) == 1 else QUANTUM
        self.wall_start = time.perf_counter()
        try:
            while self.exit_code is None:
                if self.reset_requested:
                    self.reset_requested = False
                    self.retired_before_reset += self.retired()
                    self.traps_before_reset += self.traps()
                    self._power_on()
                    clock = self.clock
                self._service()
                hart = self.scheduler.pick()
                total = self.retired()
                if hart is None:            # every hart sleeps in wfi
                    wake = self.next_wake()
                    if wake is not None or self.console.input_possible():
                        clock.idle_until(total, wake, self._wait_input)
                        continue
                    # A deadline may have passed since the devices were serviced (host
                    # time runs on meanwhile): service them once more before giving up.
                    self._service()
                    hart = self.scheduler.pick()
                    if hart is None:
                        self.idle_for_ever = True       # nothing can wake it: stop
                        return None
                self.hart = hart
                self.instret_others = total - hart.instret
                done = sum(self.work_done())
                if budget is not None and done >= budget:
                    return None
                # The slice ends after a quantum, at the instruction where a timer is
                # due (counted over all harts), or at the budget.
                end = slice_limit(clock, total, quantum, self.clint.next_deadline(),
                                  None if budget is None else total + budget - done)
                hart.limit = hart.instret + end - total
                if hart.profile is None:
                    hart.run()          # (traced too: a traced hart's ops write the trace)
                else:
                    hart.run_profiled()
        finally:
            self.wall_end = time.perf_counter()
            self.console.close()
        return self.exit_code

    def close(self) -> None:
        self.platform.close()
        self.network.close()
        self.hart.stop_translating()

    # --------------------------------------------------------- reporting
    def _hart_counts(self) -> dict:
        """The harts' event counters, summed over all harts."""
        out = {}
        for h in self.harts:
            for k, v in h.stats.items():
                out[k] = out.get(k, 0) + v
            for obj in (h.tstats, h.walk_stats):
                for k in type(obj).__slots__:
                    out[k] = out.get(k, 0) + getattr(obj, k)
        return out

    def profile_report(self, top: int = 15) -> str:
        """--profile: where the guest's time went, by block."""
        prof = self.hart.profile or {}
        c = self._hart_counts()
        st = self.stats()
        total = sum(e[2] for e in prof.values()) or 1e-9
        dispatches = sum(e[0] for e in prof.values())
        lines = ["", "popek profile:",
                 f"  {st['instructions']:,} instructions in {st['wall_seconds']:.2f} s "
                 f"({st['mips']:.2f} MIPS; timing every block slows popek down)",
                 f"  block dispatches {dispatches:,}: cache hits "
                 f"{dispatches - c['block_misses']:,}, misses {c['block_misses']:,}",
                 f"  blocks built {c['blocks_built']:,}, translated {c['translated']:,} "
                 f"({c['self_loops']:,} self-loops), invalidated "
                 f"{c['code_invalidations']:,}"]
        if self.code_cache is not None:
            cc = self.code_cache
            lines.append(f"  code cache ({cc.path or 'in memory'}): {cc.hits:,} translations "
                         f"found compiled, {cc.compiled:,} compiled")
        if self.compiler is not None:
            c = self.compiler
            lines.append(f"  compiled in the background by {c.started} worker(s): {c.requested:,} "
                         f"asked, {c.received:,} done, {c.failed:,} failed")
        lines += self._functions_report(prof, total, top)
        lines += [f"  top {top} blocks by time:",
                 f"  {'block pc':>18s} {'runs':>9s} {'insns':>12s} {'time s':>8s} {'share':>6s}  "
                 f"engine     first instruction"]
        for pc, (runs, insns, secs, blk) in sorted(prof.items(), key=lambda kv: -kv[1][2])[:top]:
            first = isa.disassemble(blk.insns[0][1], pc) if blk and blk.insns else "(trap entry)"
            name = self.symbols.function(pc) if self.symbols else None
            if name:
                first += f"  <{name}>"
            engine = "translated" if blk and blk.fn is not None else "interp"
            lines.append(f"  {pc:#18x} {runs:9,d} {insns:12,d} {secs:8.3f} {secs / total:6.1%}  "
                         f"{engine:10s} {first}")
        return "\n".join(lines)

    def _functions_report(self, prof: dict, total: float, top: int) -> list[str]:
        """--profile's table of guest functions by time: the blocks summed by the
        function their first instruction is in (symbols.py: the ELF images' own, and
        --profile-symbols)."""
        symbols = self.symbols
        if not symbols:
            return ["  (no symbols: give --profile-symbols FILE, e.g. the guest's "
                    "/proc/kallsyms, to see functions)"]
        by_fn: dict[str, list] = {}
        for pc, (runs, insns, secs, _) in prof.items():
            entry = by_fn.setdefault(symbols.function(pc) or "(no symbol)", [0, 0, 0.0])
            entry[0] += runs
            entry[1] += insns
            entry[2] += secs
        lines = [f"  top {top} functions by time ({len(symbols):,} symbols):",
                 f"  {'function':40s} {'runs':>9s} {'insns':>12s} {'time s':>8s} {'share':>6s}"]
        for name, (runs, insns, secs) in sorted(by_fn.items(), key=lambda kv: -kv[1][2])[:top]:
            lines.append(f"  {name[:40]:40s} {runs:9,d} {insns:12,d} {secs:8.3f} "
                         f"{secs / total:6.1%}")
        return lines

    def stats(self) -> dict:
        c = self._hart_counts()
        instret = self.retired()
        wall = (self.wall_end or time.perf_counter()) - (self.wall_start or time.perf_counter())
        caches = self.hart.cache_stats(self.harts)
        out = {
            "instructions": instret,
            "wall_seconds": wall,
            "mips": instret / wall / 1e6 if wall > 0 else 0.0,
            "guest_seconds": self.clock.ns(instret) / 1e9,
            **self.clock_stats(),
            "exceptions": c["traps"],
            "interrupts": c["interrupts"],
            "blocks_cached": caches["blocks_cached"],
            "blocks_built": c["blocks_built"],
            "interpreter_ops_cached": caches["interpreter_ops_cached"],
            "blocks_translated": c["translated"],
            "translated_self_loops": c["self_loops"],
            "translated_source_lines": c["source_lines"],
            **(self.code_cache.stats() if self.code_cache else {}),
            **(self.compiler.stats() if self.compiler else {}),
            "block_lookup_misses": c["block_misses"],
            "block_aliases": c["block_aliases"],
            "dispatch_cache_entries": caches["dispatch_cache_entries"],
            "code_invalidations": c["code_invalidations"],
            "tlb_entries": caches["tlb_entries"],
            "tlb_superpages": caches["tlb_superpages"],
            "tlb_flushes": c["tlb_flushes"],
            "tlb_page_flushes": c["tlb_page_flushes"],
            "page_walks": c["walks"],
            "pte_reads": c["pte_reads"],
            **({"two_stage_walks": c["two_stage_walks"],
                "two_stage_pte_reads": c["two_stage_pte_reads"]} if self.hart.has_h else {}),
            "uart_tx_bytes": self.uart.tx_bytes,
            "disk": self.platform.disk_stats(),
            **self.platform.device_stats(),
            **self.network.stats(),
        }
        if len(self.harts) > 1:
            out["harts"] = ", ".join(f"{h.hartid}: {h.instret:,} instructions"
                                     for h in self.harts)
            out["hart_switches"] = self.scheduler.switches
        return out
