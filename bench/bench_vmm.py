#!/usr/bin/env python3
"""What virtualization costs, per benchmark of our guest OS (guests/, `bench` mode):

    bare   OpenSBI + the native kernel on the simulated machine
    t&e    the native kernel under popek's trap-and-emulate VMM (shadow paging)
    pv     the paravirtual kernel under the same VMM (hypercalls, batched PTE stores)

For each BENCH line: modelled cycles per iteration (the guest's rdcycle: one per
instruction plus the cost model's charges for traps, walks and exits) and the
host wall time of the benchmark (between its console line and the previous one).
Ratios are against bare metal, measured in the same run.

    python bench/bench_vmm.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from popek.console import ScriptedConsole                      # noqa: E402
from popek.riscv.board import BoardConfig, DriveSpec, VirtBoard  # noqa: E402
from popek.vmm.hypervisor import Hypervisor                     # noqa: E402
from popek.vmm.vm import VmConfig                                # noqa: E402

OPENSBI = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"
BENCH = re.compile(r"BENCH (\w+) iters=(\d+) cycles=(\d+) time_ns=(\d+)")


class TimedConsole(ScriptedConsole):
    """Remembers when each output line arrived (host time)."""

    def __init__(self):
        super().__init__()
        self.lines: list[tuple[float, str]] = []
        self._partial = b""

    def write(self, data: bytes) -> None:
        super().write(data)
        self._partial += data
        while b"\n" in self._partial:
            line, self._partial = self._partial.split(b"\n", 1)
            self.lines.append((time.perf_counter(), line.decode(errors="replace").strip()))


def results(console) -> dict:
    out, prev = {}, None
    for t, line in console.lines:
        m = BENCH.search(line)
        if m and prev is not None:
            name, iters, cycles = m.group(1), int(m.group(2)), int(m.group(3))
            out[name] = (iters, cycles, t - prev)
        if line.startswith(("BENCH", "init:")):
            prev = t
    return out


def run_bare(kernel, disk):
    con = TimedConsole()
    b = VirtBoard(BoardConfig(bios=OPENSBI, kernel=str(kernel), append="bench",
                              drives=[DriveSpec(str(disk))]), console=con)
    assert b.run() == 0, con.text()[-1000:]
    b.close()
    return results(con), None


def run_vmm(kernel, disk, engine="translate"):
    con = TimedConsole()
    hv = Hypervisor([VmConfig(kernel=str(kernel), append="bench", drives=[DriveSpec(str(disk))])],
                    con, engine=engine)
    assert hv.run() == 0, con.text()[-1000:]
    hv.close()
    return results(con), hv.vms[0].ledger


def main():
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    build = ROOT / "guests" / "build"
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, fn, kernel in (("bare", run_bare, build / "kernel.elf"),
                                  ("t&e", run_vmm, build / "kernel.elf"),
                                  ("pv", run_vmm, build / "kernel-pv.elf")):
            disk = Path(tmp) / f"{label.replace('&', '')}.img"
            disk.write_bytes(bytes(4 << 20))
            runs[label] = fn(kernel, disk)
        disk = Path(tmp) / "interp.img"
        disk.write_bytes(bytes(4 << 20))
        interp = run_vmm(build / "kernel.elf", disk, engine="interpret")[0]
    names = list(runs["bare"][0])
    print(f"{'benchmark':16s} | {'modelled cycles per iteration':^41s} | "
          f"{'host wall ms':^30s}")
    print(f"{'':16s} | {'bare':>9s} {'t&e':>9s} {'pv':>9s} {'t&e/b':>6s} {'pv/b':>5s} | "
          f"{'bare':>7s} {'t&e':>7s} {'pv':>7s} {'t&e/b':>6s}")
    for name in names:
        row = [runs[k][0].get(name) for k in ("bare", "t&e", "pv")]
        if None in row:
            continue
        cpi = [c / i for i, c, _ in row]
        wall = [w * 1000 for _, _, w in row]
        print(f"{name:16s} | {cpi[0]:9.1f} {cpi[1]:9.1f} {cpi[2]:9.1f} {cpi[1] / cpi[0]:5.1f}x "
              f"{cpi[2] / cpi[0]:4.1f}x | {wall[0]:7.1f} {wall[1]:7.1f} {wall[2]:7.1f} "
              f"{wall[1] / wall[0]:5.1f}x")
    for label in ("t&e", "pv"):
        print()
        print(runs[label][1].report(f"exit ledger, {label}"))
    c = [runs[k][0]["compute_loop"][2] for k in ("bare", "t&e")]
    print(f"\nVMM wall-time overhead on compute_loop (no privileged operations): "
          f"{c[1] / c[0]:.2f}x")
    print("\nThe translator under the VMM (guest user and kernel code run in U-mode), "
          "host wall ms:")
    for name in ("compute_loop", "memory_touch", "null_syscall"):
        t, i = runs["t&e"][0][name][2], interp[name][2]
        print(f"  {name:16s} interpret {i * 1000:8.1f}  translate {t * 1000:8.1f}  "
              f"speedup {i / t:5.2f}x")


if __name__ == "__main__":
    main()
