#!/usr/bin/env python3
"""The article's timer loop: what a read of the time costs a guest, by technique.

Our guest OS's `rdtime_loop` benchmark reads the time CSR 20,000 times in a user
process.  Run bare (OpenSBI + the kernel), under trap-and-emulate (every read traps and
is emulated), and under hardware assist with the reads trapped (hcounteren.TM clear: a
VM exit each, like a trapped RDTSC on VT-x) and not trapped (they run in the hardware,
offset by htimedelta).  Printed: modelled cycles per read, and the slowdown against bare
metal; the article's shape is a slowdown of 25x or more when trapped (a trapped RDTSC
~1,700 cycles against ~25 natively) and about 1x when not.

Time follows instructions strictly here (`icount_sleep` off): a loop that reads the
time is what popek's polling-loop skip looks for, and skipping its "waits" would give
it timer ticks it does not see in the microseconds it really lasts.

    python bench/bench_timer.py [--cost-profile FILE]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from popek.console import ScriptedConsole                  # noqa: E402
from popek.costmodel import CostModel                       # noqa: E402
from popek.riscv.board import BoardConfig, VirtBoard        # noqa: E402
from popek.vmm.hypervisor import Hypervisor                 # noqa: E402
from popek.vmm.vm import VmConfig                            # noqa: E402

KERNEL = ROOT / "guests" / "build" / "kernel.elf"
OPENSBI = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"
LINE = re.compile(r"BENCH rdtime_loop iters=(\d+) cycles=(\d+)")
APPEND = "bench=rdtime_loop"


def _per_read(text: str) -> float:
    m = LINE.search(text)
    assert m, text[-2000:]
    return int(m.group(2)) / int(m.group(1))


def bare(costs: CostModel) -> float:
    con = ScriptedConsole()
    board = VirtBoard(BoardConfig(bios=OPENSBI, kernel=str(KERNEL), append=APPEND,
                                  icount_sleep=False, costs=costs), console=con)
    board.run()
    board.close()
    return _per_read(con.text())


def guest(costs: CostModel, cpu: str, trap_time: bool = False) -> tuple[float, int]:
    """Cycles per read, and the VM's exits."""
    con = ScriptedConsole()
    cfg = VmConfig(kernel=str(KERNEL), append=APPEND, cpu=cpu, trap_time=trap_time,
                   paging="nested" if cpu == "hw" else "shadow")
    hv = Hypervisor([cfg], con, icount_sleep=False, costs=costs)
    hv.run()
    hv.close()
    return _per_read(con.text()), hv.vms[0].ledger.total()[0]


def measure(costs: CostModel) -> dict:
    """{configuration: (cycles per read, slowdown against bare)}."""
    base = bare(costs)
    out = {"bare": (base, 1.0)}
    for name, cpu, trapped in (("trap-and-emulate", "trap-emulate", False),
                               ("hw, time trapped", "hw", True),
                               ("hw, time not trapped", "hw", False)):
        per, _ = guest(costs, cpu, trapped)
        out[name] = (per, per / base)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cost-profile", metavar="FILE", help="a profile from `popek calibrate`")
    args = ap.parse_args()
    costs = CostModel.load(args.cost_profile) if args.cost_profile else CostModel()
    print(f"timer loop: modelled cycles per read of the time (costs: {costs.source})")
    print(f"{'configuration':<24} {'cycles/read':>12} {'slowdown':>9}")
    for name, (per, ratio) in measure(costs).items():
        print(f"{name:<24} {per:12,.1f} {ratio:8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
