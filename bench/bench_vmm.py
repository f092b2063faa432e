#!/usr/bin/env python3
"""What virtualization costs, per benchmark of our guest OS (guests/, `bench` mode):

    bare   OpenSBI + the native kernel on the simulated machine
    t&e    the native kernel under popek's trap-and-emulate VMM (shadow paging)
    bt     the native kernel under binary translation (its sensitive instructions
           rewritten into callouts of the VMM, shadow paging)
    pv     the paravirtual kernel under trap-and-emulate (hypercalls, batched PTE
           stores, its supervisor registers in the vCPU page)
    hw     the native kernel under hardware assist (the H extension, nested paging)

For each BENCH line: modelled cycles per iteration (the guest's rdcycle: one per
instruction plus the cost model's charges for traps, walks, exits and callouts), the
VM's exits and callouts per iteration (the console's own putchar calls left out), the
callouts coalesced into the one before (exits avoided beyond the callouts' own), and
the host wall time of the benchmark (between its console line and the previous one).
Ratios are against bare metal, measured in the same run.  Time strictly follows
instructions (icount sleep off), so rdtime_loop measures reads of the time, not
timer ticks.  Last, the CPUs with a virtualization hole: which VMM runs the guest
OS's self-tests there.

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


def _counts(vm) -> tuple:
    """The VM's exits (less the console's putchar calls), callouts and coalesced ones."""
    led = vm.ledger
    putchar = led.details.get(("sbi", "legacy_putchar"), 0)
    callouts = led.callout_total()[0]
    return (led.total()[0] - (0 if callouts else putchar), callouts - (putchar if callouts else 0),
            led.coalesced)


class TimedConsole(ScriptedConsole):
    """Remembers when each output line arrived (host time), and the VM's counts then."""

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
            counts = _counts(self.vm) if self.vm is not None else (0, 0, 0)
            self.lines.append((time.perf_counter(), line.decode(errors="replace").strip(), counts))


def results(console) -> dict:
    """{benchmark: (iterations, cycles, wall seconds, (exits, callouts, coalesced))}."""
    out, prev = {}, None
    for t, line, counts in console.lines:
        m = BENCH.search(line)
        if m and prev is not None:
            name, iters, cycles = m.group(1), int(m.group(2)), int(m.group(3))
            out[name] = (iters, cycles, t - prev[0], tuple(a - b for a, b in zip(counts, prev[1])))
        if line.startswith(("BENCH", "init:")):
            prev = (t, counts)
    return out


def run_bare(kernel, disk):
    con = TimedConsole()
    b = VirtBoard(BoardConfig(bios=OPENSBI, kernel=str(kernel), append="bench",
                              drives=[DriveSpec(str(disk))], icount_sleep=False), console=con)
    assert b.run() == 0, con.text()[-1000:]
    b.close()
    return results(con), None


def run_vmm(kernel, disk, engine="translate", cpu="trap-emulate", append="bench",
            variant="rv64gc", check=True):
    con = TimedConsole()
    hv = Hypervisor([VmConfig(kernel=str(kernel), append=append, drives=[DriveSpec(str(disk))],
                              cpu=cpu, paging="nested" if cpu == "hw" else "shadow")],
                    con, engine=engine, icount_sleep=append == "selftest", cpu=variant)
    con.vm = hv.vms[0]
    code = hv.run()
    hv.close()
    if check:
        assert code == 0, con.text()[-1000:]
        return results(con), hv.vms[0].ledger
    return code, con.text()


LABELS = ("bare", "t&e", "bt", "pv", "hw")


def main():
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    build = ROOT / "guests" / "build"
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, fn, kernel, kw in (("bare", run_bare, build / "kernel.elf", {}),
                                      ("t&e", run_vmm, build / "kernel.elf", {}),
                                      ("bt", run_vmm, build / "kernel.elf", {"cpu": "bt"}),
                                      ("pv", run_vmm, build / "kernel-pv.elf", {}),
                                      ("hw", run_vmm, build / "kernel.elf", {"cpu": "hw"})):
            disk = Path(tmp) / f"{label.replace('&', '')}.img"
            disk.write_bytes(bytes(4 << 20))
            runs[label] = fn(kernel, disk, **kw)
        disk = Path(tmp) / "interp.img"
        disk.write_bytes(bytes(4 << 20))
        interp = run_vmm(build / "kernel.elf", disk, engine="interpret")[0]
        holes = {}
        for variant in ("rv64gc-readhole", "rv64gc-writehole"):
            for label, kernel, cpu in (("t&e", "kernel.elf", "trap-emulate"),
                                       ("bt", "kernel.elf", "bt"),
                                       ("pv", "kernel-pv.elf", "trap-emulate")):
                code, text = run_vmm(build / kernel, disk, cpu=cpu, append="selftest",
                                     variant=variant, check=False)
                panic = [ln for ln in text.splitlines() if "panic" in ln]
                holes[(variant, label)] = "SELFTEST PASS 9/9" if "SELFTEST PASS 9/9" in text \
                    else (panic[0].strip() if panic else f"exit code {code}")
    names = list(runs["bare"][0])
    vmms = LABELS[1:]
    print(f"{'benchmark':15s}| {'modelled cycles per iteration (x bare)':^74s}| "
          f"{'exits per iteration':^35s}| {'callouts (coalesced)':^15s}| {'host wall ms':^39s}")
    print(f"{'':15s}| {'bare':>8s} " + " ".join(f"{k:>15s}" for k in vmms)
          + " | " + " ".join(f"{k:>8s}" for k in vmms)
          + " | " + f"{'bt':>14s}"
          + " | " + " ".join(f"{k:>7s}" for k in LABELS))
    for name in names:
        row = [runs[k][0].get(name) for k in LABELS]
        if None in row:
            continue
        cpi = [c / i for i, c, _, _ in row]
        epi = [n[0] / i for i, _, _, n in row]
        i_bt, _, _, n_bt = runs["bt"][0][name]
        wall = [w * 1000 for _, _, w, _ in row]
        print(f"{name:15s}| {cpi[0]:8.1f} "
              + " ".join(f"{c:8.1f} ({c / cpi[0]:4.1f}x)" for c in cpi[1:])
              + " | " + " ".join(f"{e:8.2f}" for e in epi[1:])
              + f" | {n_bt[1] / i_bt:6.2f} ({n_bt[2] / i_bt:5.2f})"
              + " | " + " ".join(f"{w:7.1f}" for w in wall))
    for label in vmms:
        print()
        print(runs[label][1].report(f"exit ledger, {label}"))
    c = [runs[k][0]["compute_loop"][2] for k in LABELS]
    print("\nVMM wall-time overhead on compute_loop (no privileged operations): "
          + ", ".join(f"{k} {w / c[0]:.2f}x" for k, w in zip(vmms, c[1:])))
    print("\nOn the CPUs with a virtualization hole (our guest OS's self-tests):")
    for (variant, label), outcome in holes.items():
        print(f"  {variant:17s} {label:4s} {outcome}")
    print("\nThe translator under the VMM (guest user and kernel code run in U-mode), "
          "host wall ms:")
    for name in ("compute_loop", "memory_touch", "null_syscall"):
        t, i = runs["t&e"][0][name][2], interp[name][2]
        print(f"  {name:16s} interpret {i * 1000:8.1f}  translate {t * 1000:8.1f}  "
              f"speedup {i / t:5.2f}x")


if __name__ == "__main__":
    main()
