"""``popek analyze``: questions about machines answered by running them.

    virtualizable.py   the Popek–Goldberg checker (``popek analyze virtualizable``)
"""

from __future__ import annotations

import sys


def command(args) -> int:
    from popek.errors import ConfigError
    from popek.riscv import isa
    from popek.analyze import virtualizable

    try:
        variant = isa.variant(args.cpu)
    except KeyError:
        raise ConfigError(f"--cpu {args.cpu}: unknown ISA variant") from None
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty and (done % 2000 == 0 or done == total):
            end = "\n" if done == total else ""
            print(f"\rpopek: running {total:,} instruction forms: {100 * done // total}%",
                  end=end, file=sys.stderr, flush=True)

    report = virtualizable.analyze(variant, progress)
    print(virtualizable.format_report(report))
    return 0 if report.virtualizable else 3
