#!/usr/bin/env python3
"""Monolithic vs driver domains: the price of isolating a driver.

Our guest OS in a VM with a virtio-blk disk (``disk=``) whose physical NVMe is driven
either by the VMM itself (``--drivers monolithic``) or by a driver domain
(``--drivers domains``: a VM of its own, reached through a ring, an event per batch
of requests and a grant map per request, its device passed through).  The same
workloads, as the guest's block benchmarks run them: 256 scattered 4 KiB reads, each
its own request (``blk_4k_read``), and 512 KiB written in 64 KiB requests and a flush
(``blk_seq_write``).

Per request: the guest's modelled cycles (its ``rdcycle``: everything the hart did
meanwhile, the domain's work included), the guest's exits, the domain's exits, world
switches between VMs, the domain's hypercalls, and host wall time.  Under
trap-and-emulate and under hardware assist.

    python bench/bench_drivers.py
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

from snapshots import LineSnapshots                             # noqa: E402
from popek.devices.options import DeviceSpec                    # noqa: E402
from popek.vmm.hypervisor import Hypervisor                     # noqa: E402
from popek.vmm.vm import VmConfig                                # noqa: E402

BENCH = re.compile(r"BENCH (blk_4k_read|blk_seq_write) iters=(\d+) cycles=(\d+) "
                   r"time_ns=(\d+)")
PLACEMENTS = ("monolithic", "domains")


def _requests(kind: str, iters: int) -> int:
    return iters if kind == "blk_4k_read" else iters // 65536 + 1


def run(drivers: str, cpu: str, paging: str, image: str) -> dict:
    with open(image, "wb") as f:
        f.truncate(4 << 20)
    cfg = VmConfig(kernel=str(ROOT / "guests" / "build" / "kernel.elf"), name="guest",
                   append="bench=blk_4k_read,blk_seq_write", cpu=cpu, paging=paging,
                   disks=["disk0"])
    con = LineSnapshots()
    hv = Hypervisor([cfg], con, drivers=drivers,
                    host_devices=[DeviceSpec("nvme", {"id": "disk0", "drive": image})])

    def snapshot():
        guest, *domain = hv.vms
        hypercalls = sum(n for (r, d), n in domain[0].ledger.details.items()
                         if (r, d) == ("sbi", "popek")) if domain else 0
        return (guest.ledger.total()[0], domain[0].ledger.total()[0] if domain else 0,
                hv.switches, hypercalls, time.perf_counter())
    con.snapshot = snapshot
    code = hv.run()
    hv.close()
    assert code == 0 and "BENCH DONE" in con.text(), con.text()[-2000:]
    rows, prev = {}, None
    for (line, after), before in zip(con.lines, con.starts):
        m = BENCH.search(line)
        if m and prev is not None:
            kind, iters, cycles = m.group(1), int(m.group(2)), int(m.group(3))
            n = _requests(kind, iters)
            rows[kind] = {"cycles": cycles / n,
                          **{k: (b - a) / n for k, b, a in
                             zip(("guest_exits", "domain_exits", "switches", "hypercalls",
                                  "wall"), before, prev)}}
        if m or "init:" in line:
            prev = after
    return rows


def main():
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    print(__doc__.split("\n\n")[0].replace("\n", " "), "\n")
    print("| CPU | workload | drivers | modelled cycles/request | guest exits/request "
          "| domain exits/request | VM switches/request | domain hypercalls/request "
          "| wall µs/request |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, cpu, paging in (("trap-and-emulate", "trap-emulate", "shadow"),
                                   ("hardware assist", "hw", "nested")):
            results = {d: run(d, cpu, paging, str(Path(tmp) / "disk.img")) for d in PLACEMENTS}
            for workload in ("blk_4k_read", "blk_seq_write"):
                base = results["monolithic"][workload]["cycles"]
                for drivers in PLACEMENTS:
                    r = results[drivers][workload]
                    ratio = f" ({r['cycles'] / base:.2f}×)" if drivers == "domains" else ""
                    print(f"| {label} | {workload} | {drivers} | {r['cycles']:,.0f}{ratio} | "
                          f"{r['guest_exits']:.1f} | {r['domain_exits']:.1f} | "
                          f"{r['switches']:.1f} | {r['hypercalls']:.1f} | "
                          f"{r['wall'] * 1e6:,.0f} |")
    print()


if __name__ == "__main__":
    main()
