#!/usr/bin/env python3
"""The reliability model of monolithic vs microkernel-style hypervisors, simulated and
measured.

The model (the article's): a system of N drivers, each failing with probability p
in an hour, and a core failing with probability q.  In a monolithic hypervisor any
failure is an outage of the whole machine: about N·p + q per hour.  With drivers in
domains that are restarted, only the core's failure is: q.  With N = 10, p = 1e-4 and
q = 1e-6, 1e-3 against 1e-6, a thousandfold.

* **Monte Carlo**: each component's failures as a Bernoulli process in hours,
  simulated event by event (the hours between two failures drawn from the geometric
  distribution), over REPLICATIONS runs of HOURS hours; the outage rate of each
  architecture with a 95 % confidence interval (normal, over the replications), next
  to the closed form.
* **Measured**: a campaign of runs of popek, each our guest OS writing and reading
  its disk (self-test, 512 KiB written, 256 reads) through a driver that crashes at
  a random request (``--inject-fault disk0:crash@rand:SEED``, seeds 1..RUNS), under
  each placement; the fraction of runs that lost the host (the VMM went down), lost
  the guest (it failed or its disk's bytes are wrong), or recovered.

    python bench/bench_reliability.py [--runs 200] [--hours 1e8]
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from popek.console import ScriptedConsole                      # noqa: E402
from popek.devices.options import DeviceSpec                   # noqa: E402
from popek.vmm.drivers.faults import parse_inject_fault        # noqa: E402
from popek.vmm.hypervisor import Hypervisor                    # noqa: E402
from popek.vmm.vm import VmConfig                               # noqa: E402

DRIVERS, P_DRIVER, Q_CORE = 10, 1e-4, 1e-6
REPLICATIONS = 20
INTEGRITY_SECTOR, INTEGRITY_SECTORS = 2048, 16                 # guests/user/main.c


def failure_hours(rng: random.Random, p: float, hours: int) -> set[int]:
    """The hours in which a component failing with probability ``p`` an hour fails,
    within ``hours``: geometric gaps between failures."""
    out, t, log1p = set(), 0, math.log1p(-p)
    while True:
        t += int(math.log(1.0 - rng.random()) / log1p) + 1
        if t > hours:
            return out
        out.add(t)


def simulate(hours: int, seed: int) -> tuple[float, float]:
    """One replication: (monolithic, microkernel) outage hours per hour."""
    rng = random.Random(seed)
    core = failure_hours(rng, Q_CORE, hours)
    drivers = set().union(*(failure_hours(rng, P_DRIVER, hours) for _ in range(DRIVERS)))
    return len(core | drivers) / hours, len(core) / hours


def monte_carlo(hours: int) -> None:
    runs = [simulate(hours, seed) for seed in range(1, REPLICATIONS + 1)]
    exact = {"monolithic": 1 - (1 - P_DRIVER) ** DRIVERS * (1 - Q_CORE), "domains": Q_CORE}
    print(f"Monte Carlo: N = {DRIVERS} drivers at p = {P_DRIVER:g}/h, core q = {Q_CORE:g}/h; "
          f"{REPLICATIONS} replications of {hours:.0e} hours\n")
    print("| architecture | outages per hour (simulated) | 95 % CI | closed form |")
    print("|---|---:|---|---:|")
    means = {}
    for i, arch in enumerate(("monolithic", "domains")):
        rates = [r[i] for r in runs]
        mean = means[arch] = statistics.fmean(rates)
        half = 1.96 * statistics.stdev(rates) / math.sqrt(len(rates))
        print(f"| {arch} | {mean:.3e} | {mean - half:.3e} to {mean + half:.3e} | "
              f"{exact[arch]:.3e} |")
    print(f"\nratio monolithic / domains: {means['monolithic'] / means['domains']:,.0f}× "
          f"(closed form {exact['monolithic'] / exact['domains']:,.0f}×)\n")


def integrity_pattern() -> bytes:
    return bytes(((INTEGRITY_SECTOR + s) * 31 + i * 7 + 0x5A) & 0xFF
                 for s in range(INTEGRITY_SECTORS) for i in range(512))


def one_run(drivers: str, seed: int, image: Path) -> tuple[str, int]:
    """(outcome, the request the driver crashed in) of one run."""
    image.write_bytes(bytes(4 << 20))
    plan = parse_inject_fault(f"disk0:crash@rand:{seed}")
    con = ScriptedConsole()
    hv = Hypervisor([VmConfig(kernel=str(ROOT / "guests" / "build" / "kernel.elf"),
                              name="guest", append="selftest bench=blk_seq_write,blk_4k_read",
                              disks=["disk0"])], con, drivers=drivers,
                    faults={"disk0": plan.after}, max_instructions=2_000_000_000,
                    host_devices=[DeviceSpec("nvme", {"id": "disk0", "drive": str(image)})])
    code = hv.run()
    hv.close()
    if hv.crash is not None:
        return "lost the host", plan.after
    data = image.read_bytes()
    start = INTEGRITY_SECTOR * 512
    ok = code == 0 and "SELFTEST PASS 9/9" in con.text() and "BENCH DONE" in con.text() \
        and data[start:start + INTEGRITY_SECTORS * 512] == integrity_pattern() \
        and data[4096 * 512:4096 * 512 + 256] == bytes(range(256))
    return ("recovered" if ok else "lost the guest"), plan.after


def campaign(runs: int) -> None:
    print(f"Measured: {runs} runs a placement, each crashing its disk's driver at a random "
          "request (seeds 1..runs)\n")
    print("| drivers | runs | lost the host | lost the guest | recovered |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "disk.img"
        for drivers in ("monolithic", "domains"):
            outcomes = {"lost the host": 0, "lost the guest": 0, "recovered": 0}
            for seed in range(1, runs + 1):
                outcome, _ = one_run(drivers, seed, image)
                outcomes[outcome] += 1
                print(f"  {drivers} run {seed}/{runs}: {outcome}", file=sys.stderr, end="\r")
            print(f"| {drivers} | {runs} | " + " | ".join(
                f"{n} ({n / runs:.0%})" for n in outcomes.values()) + " |")
    print()


def main():
    logging.getLogger("popek").setLevel(logging.ERROR)     # (a restart a run: expected)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200, help="runs of popek a placement")
    ap.add_argument("--hours", type=float, default=1e8, help="simulated hours a replication")
    args = ap.parse_args()
    monte_carlo(int(args.hours))
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    campaign(args.runs)


if __name__ == "__main__":
    main()
