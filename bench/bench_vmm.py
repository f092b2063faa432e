#!/usr/bin/env python3
"""What virtualization costs, per benchmark of our guest OS (guests/, `bench` mode):

    bare   OpenSBI + the native kernel on the simulated machine
    t&e    the native kernel under popek's trap-and-emulate VMM (shadow paging)
    hw     the native kernel under hardware assist (the H extension, nested paging)
    pv     the paravirtual kernel under trap-and-emulate (hypercalls, batched PTE stores)

For each BENCH line: modelled cycles per iteration (the guest's rdcycle: one per
instruction plus the cost model's charges for traps, walks and exits), the VM's exits
per iteration (the console's own putchar calls left out), and the host wall time of the
benchmark (between its console line and the previous one).  Ratios are against bare
metal, measured in the same run.  Time strictly follows instructions (icount sleep
off), so rdtime_loop measures reads of the time, not timer ticks.

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
    """Remembers when each output line arrived (host time), and the VM's exits then."""

    def __init__(self):
        super().__init__()
        self.lines: list[tuple[float, str, int]] = []
        self._partial = b""
        self.vm = None

    def write(self, data: bytes) -> None:
        super().write(data)
        self._partial += data
        while b"\n" in self._partial:
            line, self._partial = self._partial.split(b"\n", 1)
            exits = 0
            if self.vm is not None:
                led = self.vm.ledger
                exits = led.total()[0] - led.details.get(("sbi", "legacy_putchar"), 0)
            self.lines.append((time.perf_counter(), line.decode(errors="replace").strip(), exits))


def results(console) -> dict:
    """{benchmark: (iterations, cycles, wall seconds, exits)}."""
    out, prev = {}, None
    for t, line, exits in console.lines:
        m = BENCH.search(line)
        if m and prev is not None:
            name, iters, cycles = m.group(1), int(m.group(2)), int(m.group(3))
            out[name] = (iters, cycles, t - prev[0], exits - prev[1])
        if line.startswith(("BENCH", "init:")):
            prev = (t, exits)
    return out


def run_bare(kernel, disk):
    con = TimedConsole()
    b = VirtBoard(BoardConfig(bios=OPENSBI, kernel=str(kernel), append="bench",
                              drives=[DriveSpec(str(disk))], icount_sleep=False), console=con)
    assert b.run() == 0, con.text()[-1000:]
    b.close()
    return results(con), None


def run_vmm(kernel, disk, engine="translate", cpu="trap-emulate"):
    con = TimedConsole()
    hv = Hypervisor([VmConfig(kernel=str(kernel), append="bench", drives=[DriveSpec(str(disk))],
                              cpu=cpu, paging="nested" if cpu == "hw" else "shadow")],
                    con, engine=engine, icount_sleep=False)
    con.vm = hv.vms[0]
    assert hv.run() == 0, con.text()[-1000:]
    hv.close()
    return results(con), hv.vms[0].ledger


LABELS = ("bare", "t&e", "hw", "pv")


def main():
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    build = ROOT / "guests" / "build"
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, fn, kernel, kw in (("bare", run_bare, build / "kernel.elf", {}),
                                      ("t&e", run_vmm, build / "kernel.elf", {}),
                                      ("hw", run_vmm, build / "kernel.elf", {"cpu": "hw"}),
                                      ("pv", run_vmm, build / "kernel-pv.elf", {})):
            disk = Path(tmp) / f"{label.replace('&', '')}.img"
            disk.write_bytes(bytes(4 << 20))
            runs[label] = fn(kernel, disk, **kw)
        disk = Path(tmp) / "interp.img"
        disk.write_bytes(bytes(4 << 20))
        interp = run_vmm(build / "kernel.elf", disk, engine="interpret")[0]
    names = list(runs["bare"][0])
    print(f"{'benchmark':15s}| {'modelled cycles per iteration (x bare)':^60s}| "
          f"{'exits per iteration':^26s}| {'host wall ms':^31s}")
    print(f"{'':15s}| {'bare':>8s} " + " ".join(f"{k:>16s}" for k in LABELS[1:])
          + " | " + " ".join(f"{k:>8s}" for k in LABELS[1:])
          + " | " + " ".join(f"{k:>7s}" for k in LABELS))
    for name in names:
        row = [runs[k][0].get(name) for k in LABELS]
        if None in row:
            continue
        cpi = [c / i for i, c, _, _ in row]
        epi = [e / i for i, _, _, e in row]
        wall = [w * 1000 for _, _, w, _ in row]
        print(f"{name:15s}| {cpi[0]:8.1f} "
              + " ".join(f"{c:9.1f} ({c / cpi[0]:4.1f}x)" for c in cpi[1:])
              + " | " + " ".join(f"{e:8.2f}" for e in epi[1:])
              + " | " + " ".join(f"{w:7.1f}" for w in wall))
    for label in LABELS[1:]:
        print()
        print(runs[label][1].report(f"exit ledger, {label}"))
    c = [runs[k][0]["compute_loop"][2] for k in ("bare", "t&e", "hw")]
    print(f"\nVMM wall-time overhead on compute_loop (no privileged operations): "
          f"t&e {c[1] / c[0]:.2f}x, hw {c[2] / c[0]:.2f}x")
    print("\nThe translator under the VMM (guest user and kernel code run in U-mode), "
          "host wall ms:")
    for name in ("compute_loop", "memory_touch", "null_syscall"):
        t, i = runs["t&e"][0][name][2], interp[name][2]
        print(f"  {name:16s} interpret {i * 1000:8.1f}  translate {t * 1000:8.1f}  "
              f"speedup {i / t:5.2f}x")


if __name__ == "__main__":
    main()
