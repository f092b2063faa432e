"""The KVM backend's commands: ``run --backend kvm``, ``kvm-check``, ``calibrate``
and ``extract-vmlinux``."""

from __future__ import annotations

import sys

from popek.cli import devices_from_options, exit_code
from popek.errors import ConfigError, ImageError
from popek.files import write_atomically

KVM_DEFAULT_MEMORY = 64 << 20           # the tiny guests
LINUX_DEFAULT_MEMORY = 512 << 20        # Debian's kernel and an initramfs


def cmd_run_kvm(args) -> int:
    from popek.cli import _faults, check_memory
    from popek.console import StdioConsole
    from popek.kvm import layout, linux
    from popek.kvm.machine import X86Machine

    if args.kernel is None:
        raise ConfigError("--backend kvm needs --kernel (a bzImage, a vmlinux, or a 64-bit ELF)")
    if args.vmm != "none" or args.vm or args.bios not in (None, "none") or args.cost_profile:
        raise ConfigError("--backend kvm takes no --bios, --vmm, --vm or --cost-profile")
    memory = args.memory
    if memory is None:
        is_linux = linux.file_is_bzimage(args.kernel) or args.initrd
        memory = LINUX_DEFAULT_MEMORY if is_linux else KVM_DEFAULT_MEMORY
    # At most what the x86 layout holds below its MMIO hole and what the host has, before
    # KVM is opened (the minimum is X86Machine's).
    check_memory(memory, "-m", layout.MMIO_BASE, "a KVM guest")
    console = StdioConsole()
    m = None
    try:
        m = X86Machine(args.kernel, memory=memory, console=console, initrd=args.initrd,
                       append=args.append, drives=args.drive, smp=args.smp,
                       unpack=args.unpack, ioeventfd=args.ioeventfd != "off",
                       drivers=args.drivers or "monolithic", faults=_faults(args),
                       domain_watchdog_ms=args.domain_watchdog, **devices_from_options(args))
        console.on_quit = lambda: m.stop(0, "quit (Ctrl-A x)")
        code = m.run(max_exits=args.max_instructions, timeout=args.timeout)
    finally:
        console.close()
        if m is not None:
            m.close()
    if args.stats:
        print(f"\nboot: {m.boot.kind}, entry {m.boot.entry:#x}", file=sys.stderr)
        print(m.ledger.report("KVM exits"), file=sys.stderr)
        if m.ioevents is not None:
            print("  in KVM, no exit: " + ", ".join(
                f"{k} {v:,}" for k, v in m.ioevents.stats().items()), file=sys.stderr)
        for dev in m.vhost:
            print(f"  {dev.describe()}: " + ", ".join(
                f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:,.1f}"
                for k, v in dev.stats.items()), file=sys.stderr)
        print(f"  wall {m.wall:.3f} s", file=sys.stderr)
    if m.failed and code:
        print(f"popek: the guest stopped: {m.exit_reason}", file=sys.stderr)
    return exit_code(code, f"({m.budget_spent or '--timeout'})")


def cmd_kvm_check(args) -> int:
    from popek.kvm.check import report
    print(report())
    return 0


def cmd_calibrate(args) -> int:
    from popek.kvm.calibrate import calibrate
    print(calibrate(args.output))
    return 0


def cmd_extract_vmlinux(args) -> int:
    from popek.kvm import linux
    from popek.riscv.loader import read_file
    data = linux.extract_vmlinux(args.bzimage, read_file(args.bzimage))
    if linux.pvh_entry(args.bzimage, data) is None:
        raise ImageError(f"{args.bzimage}: the kernel has no PVH entry (CONFIG_PVH)")
    write_atomically(args.output, data)
    print(f"popek: wrote {args.output} ({len(data) >> 20} MiB vmlinux with a PVH entry)",
          file=sys.stderr)
    return 0


COMMANDS = {"kvm-check": cmd_kvm_check, "calibrate": cmd_calibrate,
            "extract-vmlinux": cmd_extract_vmlinux}
