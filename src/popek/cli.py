"""The ``popek`` command line.  Options are named like QEMU's where QEMU has one.

    popek run [--bios FILE|none] [--kernel FILE] [--append ARGS] [--drive SPEC]...
              [-m SIZE] [--clock icount|host] [--stats] [--dtb-out FILE]
    popek run --backend kvm --kernel FILE [--initrd FILE] [--append ARGS] [--smp N] ...
    popek kvm-check | calibrate -o FILE | initramfs -o FILE | extract-vmlinux BZIMAGE -o FILE

A user mistake (missing image, bad option) is one line on stderr and a non-zero
exit; guest exit codes (syscon, HTIF) become popek's exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

from popek import __version__
from popek.clock import DEFAULT_IPS, IDLE_MODES
from popek.errors import ConfigError, PopekError

# What --cpu accepts: riscv/isa.py's variants and aliases (riscv/fd.py, hext.py, holes.py).
CPU_CHOICES = ("rv64gc", "rv64imafdc", "rv64gch", "rv64imafdch", "rv64imac",
               "rv64gc-readhole", "rv64gc-writehole")

# fw_dynamic, as QEMU boots: it takes the kernel's address and mode from the reset ROM's
# fw_dynamic_info and leaves the device tree where the board put it (fw_jump moves it
# to a fixed 0x82200000, which a 31 MB Linux Image overwrites).
DEBIAN_OPENSBI = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.elf"
EXIT_BUDGET = 124          # like timeout(1): the instruction budget ran out
DEFAULT_MEMORY = 128 << 20     # the simulated machine and its VMs, as QEMU's virt
MAX_ICOUNT_IPS = 10 ** 9       # QEMU's fastest icount (shift=0): an instruction a nanosecond
MAX_TIMEOUT = 10 ** 9          # seconds (about 31 years; threading's own limit is near 9e9)

log = logging.getLogger("popek")


def parse_size(text: str) -> int:
    """QEMU-style sizes: a bare number is MiB; K/M/G/T suffixes (with or without 'iB').
    Only the form is checked here: what a machine takes is checked against it
    (check_memory, and the machines' own minimums)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE | re.ASCII)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text[:40]!r} (try 128M or 1G)")
    if len(m.group(1).lstrip("0")) > 24:
        raise argparse.ArgumentTypeError(f"bad size {m.group(1)[:12]}...: too large")
    n, unit = int(m.group(1)), (m.group(2) or "M").upper()
    return n << {"K": 10, "M": 20, "G": 30, "T": 40}[unit]


def format_size(n: int) -> str:
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def host_memory() -> int | None:
    """The host's physical memory in bytes, or None if it will not say."""
    try:
        n = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return n if n > 0 else None


def check_memory(size: int, what: str, limit: int, machine: str) -> None:
    """``size`` bytes of guest RAM asked for by ``what`` (an option): at most ``limit``
    (what ``machine`` takes) and at most what the host has; checked before anything
    is allocated.  The minimums are the machines' own (board.py, vm.py, kvm/machine.py)."""
    if size > limit:
        raise ConfigError(f"{what} {format_size(size)}: {machine} takes at most "
                          f"{format_size(limit)}")
    host = host_memory()
    if host is not None and size > host:
        raise ConfigError(f"{what} {format_size(size)}: more than this host's "
                          f"{format_size(host >> 20 << 20)} of RAM")


def check_bootargs(text: str, option: str, ascii_only: bool = True) -> None:
    """A kernel command line popek can hand on: no NUL, valid text (bytes that were not
    UTF-8 on the command line arrive as unencodable surrogates) and, for the device tree
    (``ascii_only``), one line of printable ASCII (tabs allowed)."""
    if "\0" in text:
        raise ConfigError(f"{option}: the command line holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{option}: the command line is not valid UTF-8") from None
    if ascii_only:
        bad = next((c for c in text if not (" " <= c <= "~" or c == "\t")), None)
        if bad is not None:
            raise ConfigError(f"{option}: character {bad!r} is not printable ASCII "
                              "(the device tree's bootargs is an ASCII string)")


def check_output_file(path: str, option: str) -> None:
    """A file popek will write (--dtb-out, --trace): its directory exists and is
    writable, and it is not itself a directory; checked before the machine is built."""
    if not path or "\0" in path:
        raise ConfigError(f"{option} needs a file name")
    if os.path.isdir(path):
        raise ConfigError(f"{option} {path}: is a directory")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise ConfigError(f"{option} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ConfigError(f"{option} {path}: permission denied")


def open_output_file(path: str, option: str, mode: str):
    try:
        return open(path, mode)
    except OSError as e:
        raise ConfigError(f"{option} {path}: {e.strerror}") from None


def parse_drive(text: str):
    """``PATH`` or QEMU-style ``file=PATH[,format=raw][,if=virtio][,readonly=on][,id=ID]``."""
    from popek.riscv.board import DriveSpec

    if "=" not in text.split(",")[0]:
        return DriveSpec(text)
    opts = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"bad --drive option {part!r} (expected key=value)")
        opts[key.strip()] = value.strip()
    if "file" not in opts:
        raise argparse.ArgumentTypeError("--drive needs file=PATH")
    if opts.get("format", "raw") != "raw":
        raise argparse.ArgumentTypeError(f"drive format {opts['format']!r}: only raw is supported")
    interface = opts.get("if", "virtio")
    if interface not in ("virtio", "virtio-mmio", "virtio-pci", "nvme"):
        raise argparse.ArgumentTypeError(f"drive interface {interface[:40]!r}: virtio, "
                                         "virtio-mmio, virtio-pci or nvme")
    ro = opts.get("readonly", "off")
    if ro not in ("on", "off"):
        raise argparse.ArgumentTypeError("readonly= takes on or off")
    unknown = set(opts) - {"file", "format", "if", "readonly", "id"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown --drive option(s): {', '.join(sorted(unknown))}")
    ident = opts.get("id", "")
    if "id" in opts and not (ident[:1].isalpha() and all(c.isalnum() or c in "-_." for c in ident)
                             and len(ident) <= 32):
        raise argparse.ArgumentTypeError(f"--drive id={ident[:40]!r}: an id is a letter, then "
                                         "letters, digits, '-', '_' or '.' (32 at most)")
    return DriveSpec(opts["file"], ro == "on", interface, ident)


def one_line(message: str) -> str:
    """``message`` with anything unprintable (a newline in a file name, say) escaped,
    so an error is always one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (as popek's own errors), exit code 2."""

    def error(self, message):
        self.exit(2, f"popek: error: {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="popek", description="popek: a hypervisor lab in Python")
    p.add_argument("--version", action="version", version=f"popek {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="boot a guest (simulated RISC-V, or x86-64 on KVM)",
                         description="Boot firmware and/or a kernel on the simulated RV64 virt "
                                     "board, or (--backend kvm) an x86-64 kernel on /dev/kvm. "
                                     "The guest's console is this terminal (Ctrl-A x quits).")
    run.add_argument("--bios", metavar="FILE",
                     help="M-mode firmware (ELF or raw); 'none' starts --kernel in M-mode; "
                          f"default: Debian's OpenSBI fw_dynamic ({DEBIAN_OPENSBI})")
    run.add_argument("--kernel", metavar="FILE", help="kernel or bare program (ELF or raw)")
    run.add_argument("--append", metavar="ARGS", default="", help="kernel command line (bootargs)")
    run.add_argument("--drive", metavar="SPEC", action="append", type=parse_drive, default=[],
                     help="a disk: PATH or file=PATH[,format=raw][,readonly=on]"
                          "[,if=virtio|virtio-mmio|virtio-pci|nvme] (a virtio-blk; if=virtio: "
                          "mmio on riscv, pci on kvm; if=nvme: an NVMe controller on PCI, "
                          "QEMU's -device nvme)")
    run.add_argument("--device", metavar="DRIVER[,OPT=V...]", action="append", default=[],
                     help="a device, as QEMU names it: virtio-net-pci,netdev=ID[,mac=MAC]"
                          "[,addr=SLOT], virtio-net-device (virtio-mmio), e1000, "
                          "virtio-rng-pci, virtio-rng-device, virtio-serial-pci, "
                          "virtio-serial-device (a virtio console: hvc0) (repeatable)")
    run.add_argument("--netdev", metavar="TYPE,id=ID[,OPT=V...]", action="append", default=[],
                     help="a NIC's network: switch,id=ID[,switch=NAME] (popek's learning "
                          "switch: the VMs of a run meet on it), tap,id=ID,ifname=NAME (a host "
                          "TAP interface), socket,id=ID,listen=[HOST]:PORT|connect=HOST:PORT "
                          "(a TCP link to another popek or QEMU), loopback,id=ID (frames come "
                          "back) (repeatable)")
    run.add_argument("--nic", metavar="TYPE[,model=M][,OPT=V...]", action="append", default=[],
                     help="a netdev and a NIC on it at once, as QEMU's -nic: e.g. "
                          "switch,model=e1000 (model default virtio-net-pci)")
    run.add_argument("--host-device", metavar="DRIVER,id=ID[,OPT=V...]", action="append",
                     default=[],
                     help="with --vmm: a physical device of the simulated host (e1000,id=ID,"
                          "netdev=NET), which a VM is given with --vm ...,passthrough=ID")
    run.add_argument("--drivers", choices=("monolithic", "domains"), default=None,
                     help="with --vmm: where the driver of a physical disk a VM uses "
                          "(--vm ...,disk=ID) runs: monolithic (in the VMM: the default) or "
                          "domains (each in a driver domain, a VM of its own)")
    run.add_argument("--inject-fault", metavar="DEVICE:crash@N", action="append", default=[],
                     help="make the driver of host device DEVICE crash in its request N+1 "
                          "(crash@rand:SEED: N from SEED; hang@N: hang there, alive); "
                          "repeatable")
    run.add_argument("--domain-watchdog", metavar="MS", type=int, default=None,
                     help="how long a driver domain may leave a request unanswered before "
                          "it is taken for hung and restarted: ms of the domain's own time "
                          "(its instructions at 1 GHz, and its sleep; default 100), on "
                          "--backend kvm of wall time (default 30000); 0: never")
    run.add_argument("--domain-kernel", metavar="FILE",
                     help="the driver domains' kernel (default: guests/build/kernel.elf)")
    run.add_argument("--domain-append", metavar="ARGS", default=None,
                     help="more of the driver domains' command line (after blkback; e.g. "
                          "evil: a malicious domain, guests/kernel/blkback.c)")
    run.add_argument("--iommu", choices=("on", "off"), default=None,
                     help="with --host-device: whether the devices' DMA goes through the "
                          "host's IOMMU (default on; off shows what a device's DMA can reach)")
    run.add_argument("--on-iommu-fault", choices=("report", "stop"), default=None,
                     help="when the IOMMU blocks a passed-through device's DMA: count and log "
                          "it (default), or also stop the VM that owns the device")
    run.add_argument("--ioeventfd", choices=("on", "off"), default=None,
                     help="--backend kvm: virtio-pci notifies handled inside KVM and served "
                          "by a popek thread, interrupts raised through irqfds (default on, "
                          "where KVM can), or each notify an exit to popek (off)")
    run.add_argument("--initrd", metavar="FILE",
                     help="initial ramdisk for Linux (placed as QEMU places it; see "
                          "`popek initramfs`)")
    run.add_argument("--unpack", choices=("auto", "guest", "vmm"), default="auto",
                     help="--backend kvm, bzImage: who decompresses the kernel: the kernel "
                          "itself (guest), popek, entering the kernel's own 64-bit entry (vmm), "
                          "or auto: vmm on a software KVM (PVM), guest elsewhere")
    run.add_argument("--smp", metavar="N", type=int, default=1,
                     help="number of harts (simulated machine, 1 to 8, run in a deterministic "
                          "round robin), of the VM's vCPUs (--vmm, started by SBI HSM), or "
                          "of vCPUs (--backend kvm, listed in an MP table); default 1")
    run.add_argument("-m", "--memory", metavar="SIZE", type=parse_size, default=None,
                     help="guest RAM (default 128M; with --backend kvm 64M, or 512M for Linux; "
                          "a bare number means MiB)")
    run.add_argument("--clock", choices=("icount", "host"), default="icount",
                     help="icount: deterministic, time from retired instructions (default); "
                          "host: the host's real time")
    run.add_argument("--icount-ips", metavar="N", type=int,
                     help="nominal guest instructions per second of the icount clock "
                          f"(1 to {MAX_ICOUNT_IPS:,}; default {DEFAULT_IPS:,}: a 1 GHz hart)")
    run.add_argument("--icount-sleep", choices=("on", "off"), default=None,
                     help="on (default): a polling loop's wait for the time is skipped, as if "
                          "the hart slept between its reads; off: time strictly follows "
                          "instructions (what a benchmark of reading the time needs)")
    run.add_argument("--icount-idle", choices=IDLE_MODES, default=None,
                     help="while every hart waits for a timer: sleep: wait for it in real time "
                          "(the guest's clock keeps to the wall clock at an idle prompt, and "
                          "the host's CPU rests; QEMU's -icount sleep=on); skip: jump to it "
                          "(runs repeat exactly); auto (default): sleep when the console is a "
                          "terminal, else skip")
    run.add_argument("--backend", choices=("riscv", "kvm"), default="riscv",
                     help="riscv: the simulated RV64 machine (default); kvm: real x86-64 "
                          "hardware through /dev/kvm (--kernel: a bzImage, a vmlinux, or a "
                          "64-bit ELF)")
    run.add_argument("--vmm", choices=("none", "trap-emulate", "bt", "hw"), default="none",
                     help="none: bare metal (default); trap-emulate: run the kernel as a guest "
                          "of popek's VMM (deprivileged, shadow page tables, SBI by the VMM); "
                          "bt: the same, its sensitive instructions rewritten into calls of "
                          "the VMM (binary translation: no traps for them); "
                          "hw: as a guest in the H extension's VS-mode (hardware assist, "
                          "nested paging; the hart gets H)")
    run.add_argument("--paging", metavar="STRATEGY", default=None,
                     help="with --vmm: how guest memory is virtualized: shadow (shadow page "
                          "tables filled from the guest's own; trap-emulate's default) or "
                          "nested (the H extension's G-stage; hw's)")
    run.add_argument("--io", metavar="STRATEGY", default=None,
                     help="with --vmm: where device accesses go: emulated (default; device "
                          "models inside the VMM)")
    run.add_argument("--vm", metavar="SPEC", action="append", default=[],
                     help="with --vmm: another VM, kernel=FILE[,initrd=FILE][,drive=FILE]"
                          "[,append=ARGS][,memory=SIZE][,name=NAME][,smp=N][,nic=MODEL]"
                          "[,device=DRIVER][,passthrough=ID][,disk=ID] (repeatable; nic=: "
                          "a NIC on the run's switch, where the --kernel VM's --nic switch "
                          "NICs are too; disk=: a virtio-blk served by the driver of host "
                          "NVMe ID, see --drivers)")
    run.add_argument("--cpu", choices=CPU_CHOICES, default=None,
                     help="the simulated hart's ISA: rv64gc (default; the same as rv64imafdc: "
                          "with the F and D extensions, as QEMU's virt board), rv64gch "
                          "(= rv64imafdch: and the H extension, hypervisor support), "
                          "rv64imac (without F and D), or RV64GC with a virtualization "
                          "hole: rv64gc-readhole (sstatus readable from U-mode), "
                          "rv64gc-writehole (sstatus writes from U-mode dropped)")
    run.add_argument("--engine", choices=("translate", "interpret"), default="translate",
                     help="translate: hot blocks become Python functions (default); "
                          "interpret: decoded closures only (the reference)")
    run.add_argument("--code-cache", metavar="DIR",
                     help="keep compiled translations here for the next run, or 'none' "
                          "(default: $POPEK_CODE_CACHE, else $XDG_CACHE_HOME/popek or "
                          "~/.cache/popek)")
    run.add_argument("--compile-workers", metavar="N", type=int,
                     help="processes compiling hot blocks in the background while the guest "
                          "runs on (default: 1 if the host has a core to spare, else 0: "
                          "compile in-process)")
    run.add_argument("--profile", action="store_true",
                     help="time every block; print MIPS, cache hits/misses and the top guest "
                          "functions and blocks")
    run.add_argument("--profile-symbols", metavar="FILE", action="append", default=[],
                     help="with --profile: name guest functions from FILE, an ELF image or a "
                          "symbol map (System.map, or the guest's /proc/kallsyms: Linux's "
                          "functions and its modules'); the --bios and --kernel ELF images' "
                          "own are read anyway (repeatable)")
    run.add_argument("--dtb-out", metavar="FILE", help="write the generated device tree and exit")
    run.add_argument("--stats", action="store_true", help="print run statistics at exit")
    run.add_argument("--max-instructions", metavar="N", type=int,
                     help=f"stop after N guest instructions (exit code {EXIT_BUDGET}), each "
                          "exception or VMM exit counting as one too; with --backend kvm, "
                          "after N exits")
    run.add_argument("--timeout", metavar="SECONDS", type=float,
                     help=f"--backend kvm: stop after this much wall time (exit code "
                          f"{EXIT_BUDGET})")
    run.add_argument("--cost-profile", metavar="FILE",
                     help="cycle costs for the VMM's ledger, as written by `popek calibrate` "
                          "(default: the documented built-in profile)")
    run.add_argument("--trace", metavar="FILE", help="write every executed instruction to FILE")
    run.add_argument("-v", "--verbose", action="count", default=0, help="more log output")

    sub.add_parser("kvm-check", help="what this host's KVM offers, with measured exit costs",
                   description="Report /dev/kvm's API version, implementation (hardware or "
                               "software such as PVM), capabilities, and measured per-operation "
                               "costs of exits from a probe guest.")
    cal = sub.add_parser("calibrate", help="measure this host's KVM exit costs into a cost profile",
                         description="Measure exit costs on /dev/kvm (as kvm-check does) and "
                                     "write them, in cycles of the TSC, as a cost profile that "
                                     "`popek run --cost-profile` loads.")
    cal.add_argument("-o", "--output", metavar="FILE", required=True, help="profile to write (JSON)")
    ird = sub.add_parser("initramfs", help="build an initramfs for Debian's kernel",
                         description="Pack busybox-static, the virtio kernel modules (with their "
                                     "dependencies) and an /init script into a newc cpio archive.")
    ird.add_argument("-o", "--output", metavar="FILE", required=True, help="archive to write")
    ird.add_argument("--arch", choices=("x86_64", "riscv64"), default="x86_64",
                     help="x86_64 (default: for --backend kvm) or riscv64 (for the simulated "
                          "RISC-V machine: Debian 13's kernel and busybox, fetched by "
                          "scripts/setup.sh)")
    ird.add_argument("--modules-dir", metavar="DIR",
                     help="the kernel's module tree (default: that of the Debian kernel popek "
                          "finds in its cache, or for x86_64 in /boot)")
    ird.add_argument("--module", metavar="NAME", action="append",
                     help="a module to include with its dependencies (repeatable; default: "
                          "virtio_pci virtio_blk virtio_mmio; riscv64: virtio_mmio virtio_blk "
                          "crc32c_generic ext4 virtio_net virtio_rng e1000)")
    ird.add_argument("--module-signatures", action="store_true",
                     help="keep the modules' signatures (by default they are dropped: the "
                          "kernel would hash every module it loads, which with the self-test "
                          "it sets off is over half of a riscv64 boot's instructions on "
                          "popek, and Debian's does not require them; an unsigned module "
                          "taints it with 'E')")
    ird.add_argument("--busybox", metavar="FILE",
                     help="a static busybox of that architecture (default: Debian's "
                          "busybox-static: the host's for x86_64, the fetched one for riscv64)")
    ana = sub.add_parser("analyze", help="analyze a machine: is it virtualizable?",
                         description="Questions about machines, answered by running them.")
    ana_sub = ana.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    vz = ana_sub.add_parser("virtualizable",
                            help="Popek–Goldberg: run every instruction form in S- and U-mode "
                                 "and decide whether trap-and-emulate can work",
                            description="Run every instruction form of the ISA variant (the "
                                        "CSR instructions for every CSR number) on the "
                                        "simulated hart in S- and U-mode from two states, "
                                        "classify each (privileged, control-sensitive, "
                                        "behaviour-sensitive), and give Popek and Goldberg's "
                                        "verdicts (Theorems 1 and 3). Exit status 3 when the "
                                        "variant is not virtualizable.")
    vz.add_argument("--cpu", choices=CPU_CHOICES, default="rv64gc",
                    help="the ISA variant to analyze (default rv64gc)")
    x86 = ana_sub.add_parser("x86", help="count Robin and Irvine's sensitive, unprivileged "
                                         "instructions in an x86-64 ELF (e.g. a vmlinux)",
                             description="Disassemble every executable section of an x86-64 "
                                         "ELF (capstone) and count the instructions that made "
                                         "x86 unvirtualizable before VT-x (Robin & Irvine "
                                         "2000), by kind, section and function.")
    x86.add_argument("file", metavar="FILE", help="an x86-64 ELF, or a bzImage (its vmlinux "
                                                  "is unpacked)")
    x86.add_argument("--system-map", metavar="MAP",
                     help="function names from this System.map (default: the ELF's own "
                          "symbols, or the System.map-RELEASE beside a vmlinuz-RELEASE)")
    x86.add_argument("--top", metavar="N", type=int, default=15,
                     help="functions to list (default 15)")
    ext = sub.add_parser("extract-vmlinux", help="unpack the vmlinux ELF inside a bzImage",
                         description="Decompress a bzImage's payload: the uncompressed vmlinux, "
                                     "which boots through its PVH entry.")
    ext.add_argument("bzimage", metavar="BZIMAGE")
    ext.add_argument("-o", "--output", metavar="FILE", required=True)
    vub = sub.add_parser("vhost-user-blk", help="serve a disk to a vhost-user frontend (a "
                         "driver domain as a process)",
                         description="popek's virtio-blk as a vhost-user backend: listens on "
                                     "SOCKET for a frontend (popek --backend kvm, or QEMU's "
                                     "vhost-user-blk-pci) and serves FILE from the guest "
                                     "memory it shares; waits for the next frontend when one "
                                     "goes.  Run as root, it becomes nobody once its disk "
                                     "and socket are open.")
    vub.add_argument("--socket", metavar="PATH", required=True, help="the UNIX socket to "
                     "listen on (an old one at PATH is replaced)")
    vub.add_argument("--drive", metavar="FILE", required=True, help="a raw disk image")
    vub.add_argument("--readonly", action="store_true", help="serve it read-only")
    vub.add_argument("--crash-after", metavar="N", type=int, default=None,
                     help="kill itself with SIGKILL in request N+1 (fault injection)")
    vub.add_argument("--hang-after", metavar="N", type=int, default=None,
                     help="stop serving in request N+1, alive (fault injection)")
    return p


def _board_config(args):
    from popek.riscv import isa
    from popek.riscv.board import BoardConfig

    bios = args.bios
    if bios is None:
        if not os.path.exists(DEBIAN_OPENSBI):
            raise ConfigError(f"no firmware: {DEBIAN_OPENSBI} is not installed "
                              "(apt-get install opensbi, or give --bios)")
        bios = DEBIAN_OPENSBI
    elif bios == "none":
        bios = None
        if args.kernel is None:
            raise ConfigError("--bios none needs --kernel")
    memory = DEFAULT_MEMORY if args.memory is None else args.memory
    return BoardConfig(bios=bios, kernel=args.kernel, append=args.append, drives=args.drive,
                       memory=memory, clock=args.clock, ips=args.icount_ips or 0,
                       icount_sleep=args.icount_sleep != "off",
                       icount_idle=args.icount_idle or "auto",
                       max_instructions=args.max_instructions, engine=args.engine,
                       profile=args.profile, profile_symbols=args.profile_symbols,
                       code_cache=_code_cache_dir(args),
                       compile_workers=_compile_workers(args),
                       cpu=args.cpu or isa.DEFAULT_VARIANT, initrd=args.initrd,
                       smp=args.smp, **devices_from_options(args))


def devices_from_options(args) -> dict:
    """--device, --netdev and --nic, parsed (devices/options.py), as config fields."""
    from popek.devices import options
    devices = [options.parse_device(d) for d in args.device]
    netdevs = [options.parse_netdev(n) for n in args.netdev]
    for i, text in enumerate(args.nic):
        netdev, device = options.parse_nic(text, i)
        netdevs.append(netdev)
        devices.append(device)
    options.Network(netdevs).check(devices)          # one clear line before anything opens
    return {"devices": devices, "netdevs": netdevs}


def _compile_workers(args) -> int | None:
    if args.compile_workers is not None and not 0 <= args.compile_workers <= 64:
        raise ConfigError("--compile-workers must be between 0 and 64")
    return args.compile_workers


def _code_cache_dir(args) -> str | None:
    from popek.riscv.codecache import default_directory
    if args.code_cache == "none":
        return None
    return args.code_cache or default_directory()


def format_stats(stats: dict) -> str:
    lines = ["", "popek statistics:"]
    for key, value in stats.items():
        if key == "disk":
            for i, d in enumerate(value):
                lines.append(f"  disk{i}: " + ", ".join(f"{k}={v}" for k, v in d.items()))
        elif isinstance(value, dict):              # a device's or a backend's counts
            lines.append(f"  {key}: " + ", ".join(
                f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in value.items()))
        elif isinstance(value, float):
            lines.append(f"  {key:24s} {value:,.3f}")
        elif isinstance(value, str):
            lines.append(f"  {key:24s} {value}")
        else:
            lines.append(f"  {key:24s} {value:,}")
    return "\n".join(lines)


def parse_vm(text: str, index: int, strategies: dict | None = None):
    """``kernel=FILE[,initrd=FILE][,drive=FILE][,append=ARGS][,memory=SIZE][,name=NAME]
    [,smp=N][,nic=MODEL][,device=DRIVER][,passthrough=ID][,disk=ID]``."""
    from popek.riscv.board import DriveSpec
    from popek.vmm.vm import VmConfig

    opts: dict[str, list[str]] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"bad --vm option {part!r} (expected key=value)")
        opts.setdefault(key.strip(), []).append(value.strip())
    unknown = set(opts) - {"kernel", "initrd", "drive", "append", "memory", "name", "smp",
                           "nic", "device", "passthrough", "disk"}
    if unknown:
        raise ConfigError(f"unknown --vm option(s): {', '.join(sorted(unknown))}")
    if "kernel" not in opts:
        raise ConfigError("--vm needs kernel=FILE")
    try:
        memory = parse_size(opts["memory"][0]) if "memory" in opts else DEFAULT_MEMORY
    except argparse.ArgumentTypeError as e:
        raise ConfigError(f"--vm memory=: {e}") from None
    name = opts.get("name", [f"vm{index}"])[0]
    if not 1 <= len(name) <= 32 or not name.isprintable() or not name.isascii():
        raise ConfigError(f"--vm name={name[:40]!r}: a name is 1 to 32 printable ASCII "
                          "characters")
    append = opts.get("append", [""])[0]
    check_bootargs(append, f"--vm {name}: append")
    smp = opts.get("smp", ["1"])[0]
    if not (smp.isascii() and smp.isdigit()):
        raise ConfigError(f"--vm {name}: smp={smp[:20]!r}: give a number of vCPUs")
    if len(smp) > 3:                        # (VmConfig.check says the range of the rest)
        from popek.riscv.smp import MAX_HARTS
        raise ConfigError(f"{name}: smp takes 1 to {MAX_HARTS} vCPUs (got {smp[:20]})")
    return VmConfig(kernel=opts["kernel"][0], name=name, memory=memory, smp=int(smp),
                    initrd=opts.get("initrd", [None])[0],
                    drives=[DriveSpec(d) for d in opts.get("drive", [])],
                    append=append, passthrough=opts.get("passthrough", []),
                    disks=opts.get("disk", []),
                    **vm_devices(name, opts), **(strategies or {}))


def vm_devices(name: str, opts: dict) -> dict:
    """A --vm's ``nic=MODEL`` (each a NIC on the run's switch0) and ``device=DRIVER``
    (a device without options: virtio-rng-pci, virtio-serial-pci, their -device forms)."""
    from popek.devices import options
    devices, netdevs = [], []
    for i, model in enumerate(opts.get("nic", [])):
        if model not in options.NIC_MODELS:
            raise ConfigError(f"--vm {name}: nic={model[:40]}: popek has "
                              f"{', '.join(options.NIC_MODELS)}")
        ident = f"{name}.nic{i}"
        netdevs.append(options.NetdevSpec("switch", ident))
        devices.append(options.DeviceSpec(model, {"netdev": ident}))
    for driver in opts.get("device", []):
        if driver in options.NIC_MODELS:
            raise ConfigError(f"--vm {name}: device={driver}: a NIC is nic={driver}")
        devices.append(options.parse_device(driver))
    return {"devices": devices, "netdevs": netdevs}


def _strategies(args) -> dict:
    """The VM strategies the options chose (vmm/builder.py), checked."""
    from popek.vmm import builder
    chosen = {"cpu": args.vmm, "paging": args.paging or builder.DEFAULT_PAGING.get(args.vmm),
              "io": args.io or "emulated"}
    builder.check(**chosen)
    return chosen


def cmd_run_vmm(args, costs) -> int:
    from popek.console import StdioConsole
    from popek.riscv import isa
    from popek.riscv.board import MAX_RAM
    from popek.vmm.hypervisor import Hypervisor
    from popek.vmm.vm import VmConfig

    if args.bios not in (None, "none"):
        raise ConfigError("--vmm runs S-mode kernels and provides SBI itself: drop --bios")
    strategies = _strategies(args)
    configs = []
    if args.kernel:
        configs.append(VmConfig(kernel=args.kernel, name="vm0",
                                memory=DEFAULT_MEMORY if args.memory is None else args.memory,
                                drives=args.drive, append=args.append, initrd=args.initrd,
                                smp=args.smp, **devices_from_options(args), **strategies))
    from_vm = [parse_vm(spec, len(configs) + i, strategies) for i, spec in enumerate(args.vm)]
    if not configs + from_vm:
        raise ConfigError("--vmm needs --kernel (or --vm kernel=...)")
    if args.smp != 1 and not args.kernel:
        raise ConfigError("--smp gives the VM of --kernel its vCPUs: give each --vm its own "
                          "smp=N")
    if (args.device or args.nic or (args.netdev and not args.host_device)) and not args.kernel:
        raise ConfigError("--device, --netdev and --nic are for the VM of --kernel: give each "
                          "--vm its own nic=MODEL or device=DRIVER")
    from popek.devices import options
    host_devices = [options.parse_host_device(t) for t in args.host_device]
    ids = [d.options["id"] for d in host_devices]
    if len(set(ids)) != len(ids):
        raise ConfigError("--host-device: two devices with one id")
    # (With --kernel, its VM's config carries the --netdevs; else the run has them.)
    netdevs = [] if args.kernel else [options.parse_netdev(n) for n in args.netdev]
    for c in from_vm:
        check_memory(c.memory, f"{c.name}: memory", MAX_RAM, "a VM")
    configs += from_vm
    total, host = sum(c.memory for c in configs), host_memory()
    if len(configs) > 1 and host is not None and total > host:
        raise ConfigError(f"the VMs' memory, {format_size(total)} in all, is more than this "
                          f"host's {format_size(host >> 20 << 20)} of RAM")
    console = StdioConsole()
    hv = Hypervisor(configs, console, clock=args.clock, engine=args.engine,
                    cpu=args.cpu or isa.DEFAULT_VARIANT, ips=args.icount_ips,
                    icount_sleep=args.icount_sleep != "off",
                    icount_idle=args.icount_idle or "auto",
                    max_instructions=args.max_instructions, code_cache=_code_cache_dir(args),
                    compile_workers=_compile_workers(args), costs=costs, netdevs=netdevs,
                    host_devices=host_devices, iommu=args.iommu != "off",
                    on_iommu_fault=args.on_iommu_fault or "report",
                    drivers=args.drivers or "monolithic", faults=_faults(args),
                    domain_kernel=args.domain_kernel, domain_append=args.domain_append or "",
                    domain_watchdog_ms=args.domain_watchdog)
    console.on_quit = lambda: [vm.shutdown(0, "quit from console") for vm in hv.vms]
    try:
        code = hv.run()
    finally:
        hv.close()
    if args.stats:
        print(format_stats(hv.stats()), file=sys.stderr)
        print(hv.ledger_report(), file=sys.stderr)
        print(f"  costs from {hv.costs.source}", file=sys.stderr)
    if hv.crash is not None:
        print(f"popek: {hv.crash}: every VM stopped with it (--drivers monolithic)",
              file=sys.stderr)
    return exit_code(code, _cut_short(hv, hv.hart.instret, hv.exits, "exits"))


def _faults(args) -> dict:
    """--inject-fault's plans: device id → its FaultPlan."""
    from popek.vmm.drivers.faults import parse_inject_fault
    plans = [parse_inject_fault(t) for t in args.inject_fault]
    out = {p.device: p for p in plans}
    if len(out) != len(plans):
        raise ConfigError("--inject-fault: one fault per device")
    return out


def _cut_short(machine, instret: int, other: int, what: str) -> str:
    """Why a run ended without the guest stopping: nothing can ever wake it, or the
    budget (instructions, plus the exits or exceptions that count with them)."""
    if machine.idle_for_ever:
        return ("with the guest waiting for an interrupt nothing can raise (none enabled, "
                "no timer set, no input to come)")
    extra = f" and {other:,} {what}" if other else ""
    return f"after {instret:,} instructions{extra} (--max-instructions)"


def exit_code(code: int | None, cut_short: str) -> int:
    """The guest's exit code, or the budget's when the run was cut short (saying
    which budget ran out: ``cut_short``)."""
    if code is None:
        print(f"popek: stopped {cut_short}", file=sys.stderr)
        return EXIT_BUDGET
    return code


def check_run_options(args) -> None:
    """What `popek run` was given, checked before anything is loaded or built: each
    number in its range, each file popek writes writable, the command line one the
    machine can hold, the memory one it takes, and no option that would be ignored."""
    kvm, vmm = args.backend == "kvm", args.vmm != "none"
    if args.max_instructions is not None and args.max_instructions < 1:
        raise ConfigError("--max-instructions must be at least 1")
    if args.timeout is not None and not 0 < args.timeout <= MAX_TIMEOUT:
        raise ConfigError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT:,} seconds")
    if args.icount_ips is not None:
        if not 1 <= args.icount_ips <= MAX_ICOUNT_IPS:
            raise ConfigError(f"--icount-ips must be between 1 and {MAX_ICOUNT_IPS:,}")
        if kvm:
            raise ConfigError("--icount-ips is not supported with --backend kvm (a KVM guest "
                              "runs on the host's clock)")
        if args.clock != "icount":
            raise ConfigError("--icount-ips sets the speed of --clock icount, not --clock host")
    for name in ("icount_sleep", "icount_idle"):
        if getattr(args, name) is not None and (kvm or args.clock != "icount"):
            raise ConfigError(f"--{name.replace('_', '-')} is for --clock icount on the "
                              "simulated machine")
    _compile_workers(args)
    if args.cpu is not None and kvm:
        raise ConfigError("--cpu is for the simulated RISC-V machine, not --backend kvm "
                          "(a KVM guest has the host's CPU)")
    if args.profile and (kvm or vmm):
        raise ConfigError(f"--profile is not supported with {'--backend kvm' if kvm else '--vmm'} "
                          "(only on the bare simulated machine)")
    if args.profile_symbols and not args.profile:
        raise ConfigError("--profile-symbols names the functions of --profile's report: "
                          "give --profile too")
    if kvm and (args.engine != "translate" or args.code_cache or args.compile_workers is not None):
        raise ConfigError("--engine, --code-cache and --compile-workers are for the simulated "
                          "machine, not --backend kvm")
    for option, path in (("--dtb-out", args.dtb_out), ("--trace", args.trace)):
        if path is None:
            continue
        if kvm or vmm:
            raise ConfigError(f"{option} is not supported with "
                              f"{'--backend kvm' if kvm else '--vmm'} (only on the bare "
                              "simulated machine)")
        check_output_file(path, option)
    if args.host_device and not vmm:
        raise ConfigError("--host-device is a device of the host below --vmm, for a VM's "
                          "passthrough= (without --vmm, give the machine a --device)")
    for option, value in (("--iommu", args.iommu), ("--on-iommu-fault", args.on_iommu_fault)):
        if value is not None and not args.host_device:
            raise ConfigError(f"{option} is about the DMA of --host-device devices: there "
                              "are none")
    for option, value in (("--drivers", args.drivers), ("--inject-fault", args.inject_fault),
                          ("--domain-kernel", args.domain_kernel)):
        if value and not args.host_device and not (kvm and option != "--domain-kernel"):
            raise ConfigError(f"{option} is about the drivers of --host-device disks "
                              "(--vm ...,disk=ID): there are none")
    if kvm and args.inject_fault and args.drivers != "domains":
        raise ConfigError("--inject-fault on --backend kvm crashes a driver domain's backend "
                          "process: give --drivers domains")
    for option, value in (("--domain-kernel", args.domain_kernel),
                          ("--domain-append", args.domain_append),
                          ("--domain-watchdog", args.domain_watchdog)):
        if value is not None and args.drivers != "domains":
            raise ConfigError(f"{option} is for driver domains: give --drivers domains")
    if args.domain_append is not None:
        check_bootargs(args.domain_append, "--domain-append")
    if args.domain_watchdog is not None and not 0 <= args.domain_watchdog <= 3_600_000:
        raise ConfigError(f"--domain-watchdog {args.domain_watchdog}: give 0 (none) to "
                          "3600000 ms")
    if args.iommu == "off" and args.on_iommu_fault is not None:
        raise ConfigError("--on-iommu-fault: with --iommu off nothing checks a DMA, so "
                          "nothing faults")
    if args.ioeventfd is not None and not kvm:
        raise ConfigError("--ioeventfd is for --backend kvm (the simulated machine's VMM "
                          "counts every notify as an exit)")
    check_bootargs(args.append, "--append", ascii_only=not kvm)
    if args.memory is not None and not kvm:          # kvm: kvm/commands.py
        from popek.riscv.board import MAX_RAM
        check_memory(args.memory, "-m", MAX_RAM, "a VM" if vmm else "the simulated machine")


def cmd_run(args) -> int:
    from popek.riscv.board import VirtBoard

    check_run_options(args)
    if args.backend == "kvm":
        from popek.kvm.commands import cmd_run_kvm
        return cmd_run_kvm(args)
    if args.timeout is not None:
        raise ConfigError("--timeout is for --backend kvm")
    from popek.costmodel import CostModel
    costs = CostModel.load(args.cost_profile) if args.cost_profile else CostModel()
    if args.vmm != "none":
        return cmd_run_vmm(args, costs)
    if args.vm:
        raise ConfigError("--vm needs --vmm (trap-emulate or hw)")
    if args.paging or args.io:
        raise ConfigError("--paging and --io choose how the VMM virtualizes a guest: they "
                          "need --vmm")
    cfg = _board_config(args)
    cfg.costs = costs
    board = VirtBoard(cfg)
    trace_file = None
    try:
        if args.dtb_out:
            with open_output_file(args.dtb_out, "--dtb-out", "wb") as f:
                f.write(board.dtb)
            board.console.close()
            print(f"popek: wrote device tree ({len(board.dtb)} bytes) to {args.dtb_out}",
                  file=sys.stderr)
            return 0
        if args.trace:
            trace_file = open_output_file(args.trace, "--trace", "w")
            board.trace_to(lambda pc, text: trace_file.write(f"{pc:016x}  {text}\n"))
        code = board.run()
    finally:
        board.close()
        if trace_file is not None:
            trace_file.close()
    if args.stats:
        print(format_stats(board.stats()), file=sys.stderr)
    if args.profile:
        print(board.profile_report(), file=sys.stderr)
    return exit_code(code, _cut_short(board, *board.work_done(), "exceptions"))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * args.verbose if hasattr(args, "verbose") else
                        logging.WARNING, format="popek: %(levelname)s: %(message)s")
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "analyze":
            from popek import analyze
            return analyze.command(args)
        if args.command == "initramfs":
            from popek.linux import initramfs
            return initramfs.command(args)
        if args.command == "vhost-user-blk":
            from popek.vhost import backend
            return backend.main(args.socket, args.drive, args.readonly, args.crash_after,
                                args.hang_after)
        if args.command in ("kvm-check", "calibrate", "extract-vmlinux"):
            from popek.kvm import commands
            return commands.COMMANDS[args.command](args)
    except PopekError as e:
        print(f"popek: error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("popek: interrupted", file=sys.stderr)
        return 130
    return 2
