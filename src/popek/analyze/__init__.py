"""``popek analyze``: questions about machines answered by running them.

    virtualizable.py   the Popek–Goldberg checker (``popek analyze virtualizable``)
    x86.py             Robin and Irvine's instructions in an x86-64 binary (``popek analyze x86``)
"""

from __future__ import annotations

import sys


def _progress(what: str):
    """A percentage on stderr while it runs, if stderr is a terminal."""
    tty = sys.stderr.isatty()
    last = [-1]

    def progress(done: int, total: int) -> None:
        pct = 100 * done // total
        if tty and pct != last[0]:
            last[0] = pct
            print(f"\rpopek: {what}: {pct}%", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)
    return progress


def command(args) -> int:
    if args.analysis == "x86":
        return _x86(args)
    return _virtualizable(args)


def _x86(args) -> int:
    import os

    from popek.analyze import x86
    from popek.riscv.loader import read_file

    data = read_file(args.file)
    system_map = args.system_map
    if not data.startswith(b"\x7fELF"):          # a bzImage: its vmlinux
        from popek.kvm.linux import extract_vmlinux
        data = extract_vmlinux(args.file, data)
        name = os.path.basename(args.file)
        beside = os.path.join(os.path.dirname(args.file),
                              "System.map-" + name.split("-", 1)[1]) if "-" in name else None
        if system_map is None and beside and os.access(beside, os.R_OK):
            system_map = beside                   # Debian's, beside its vmlinuz
    report = x86.analyze(args.file, data, system_map, _progress("disassembling"))
    print(x86.format_report(report, args.top))
    return 0


def _virtualizable(args) -> int:
    from popek.errors import ConfigError
    from popek.riscv import isa
    from popek.analyze import virtualizable

    try:
        variant = isa.variant(args.cpu)
    except KeyError:
        raise ConfigError(f"--cpu {args.cpu}: unknown ISA variant") from None
    report = virtualizable.analyze(variant, _progress("running every instruction form"))
    print(virtualizable.format_report(report))
    return 0 if report.virtualizable else 3
