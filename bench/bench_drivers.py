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

Then Debian's Linux (a guest of ``--vmm hw``) does the same through ext4, with
busybox's ``dd``: 1 MiB written in 64 KiB blocks with ``conv=fsync``, then read back
in 4 KiB blocks with ``iflag=direct`` (each read its own request).  Per request of
the guest's disk, as Linux's block layer made them (the file system's own included):
the machine's modelled cycles between the lines the guest prints around each ``dd``,
and the same counts.

    python bench/bench_drivers.py [--no-linux]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from snapshots import LineSnapshots                             # noqa: E402
from popek.devices.options import DeviceSpec                    # noqa: E402
from popek.vmm.hypervisor import Hypervisor                     # noqa: E402
from popek.vmm.vm import VmConfig                                # noqa: E402
from popek.devices.options import parse_host_device             # noqa: E402

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


def _cells(r: dict, base: float, drivers: str) -> str:
    """A row's figures per request: cycles (against ``base``, monolithic's) ... wall."""
    ratio = f" ({r['cycles'] / base:.2f}×)" if drivers == "domains" else ""
    return (f"{r['cycles']:,.0f}{ratio} | {r['guest_exits']:.1f} | {r['domain_exits']:.1f} | "
            f"{r['switches']:.1f} | {r['hypercalls']:.1f} | {r['wall'] * 1e6:,.0f}")


def _counts(hv) -> tuple:
    """What the Linux rows count: requests of the guest's disk, modelled cycles,
    the guest's and the domain's exits, VM switches, the domain's hypercalls, wall."""
    guest, *domain = hv.vms
    fe = hv.placement.frontends["disk0"].stats
    hypercalls = sum(n for (r, d), n in domain[0].ledger.details.items()
                     if (r, d) == ("sbi", "popek")) if domain else 0
    return (fe["reads"] + fe["writes"] + fe["flushes"], fe["bytes_read"] + fe["bytes_written"],
            hv.hart.read_cycle(), guest.ledger.total()[0],
            domain[0].ledger.total()[0] if domain else 0, hv.switches, hypercalls,
            time.perf_counter())


# (each marker line is printed by the shell; the typed command shows $((..)) instead)
LINUX_WORK = [
    "echo DD-$((0+1)) && dd if=/dev/zero of=/mnt/f bs=64k count=16 conv=fsync "
    "&& echo DD-$((1+1))",
    "echo 3 > /proc/sys/vm/drop_caches && echo DD-$((1+2)) && "
    "dd if=/mnt/f of=/dev/null bs=4k count=256 iflag=direct && echo DD-$((2+2))"]
LINUX_ROWS = (("dd write 64 KiB, fsync", 1, 2), ("dd read 4 KiB, direct", 3, 4))


def linux_run(drivers: str, initrd: Path, tmp: Path) -> dict:
    """Linux under hw with its ext4 disk behind ``drivers``: the rows of LINUX_ROWS."""
    from tests import linux_riscv as L
    image = L.make_ext4(tmp / f"ext4-{drivers}.img", 32)
    marks = {}
    watches = [(rf"\n(\[vm0\] )?DD-{i}\r?\n",          # ([vm0]: beside a domain)
                (lambda i: lambda hv: marks.update({i: _counts(hv)}))(i)) for i in range(1, 5)]
    host = {"host_devices": [parse_host_device(f"nvme,id=disk0,drive={image}")],
            "drivers": drivers}
    s = L.run_vmm(initrd, None, LINUX_WORK, cpu="hw", append=L.APPEND + " cryptomgr.notests",
                  disks=["disk0"], host=host, machine_watches=watches)
    assert s.exit_code == 0 and len(marks) == 4, s.output[-3000:]
    assert "popek-initramfs: /dev/vda mounted on /mnt" in s.output, s.output[-3000:]
    rows = {}
    for name, a, b in LINUX_ROWS:
        n, nbytes, *rest = (y - x for x, y in zip(marks[a], marks[b]))
        rows[name] = {"requests": n, "kib": nbytes / n / 1024,
                      **{k: v / n for k, v in zip(("cycles", "guest_exits", "domain_exits",
                                                     "switches", "hypercalls", "wall"), rest)}}
    return rows


def linux_table() -> None:
    from popek.files import write_atomically
    from popek.linux import initramfs
    from tests import linux_riscv as L
    k = L.kernel()
    print("Debian's Linux under hardware assist, through ext4 (busybox dd):\n")
    print("| workload | drivers | requests | KiB/request | modelled cycles/request "
          "| guest exits/request | domain exits/request | VM switches/request "
          "| domain hypercalls/request | wall µs/request |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        data, _ = initramfs.build(k.modules, busybox=k.busybox, arch="riscv64",
                                  modules=["virtio_mmio", "virtio_blk", "crc32c_generic",
                                           "ext4"])
        initrd = Path(tmp) / "initrd.cpio"
        write_atomically(str(initrd), data)
        results = {d: linux_run(d, initrd, Path(tmp)) for d in PLACEMENTS}
    for name, _, _ in LINUX_ROWS:
        base = results["monolithic"][name]["cycles"]
        for drivers in PLACEMENTS:
            r = results[drivers][name]
            print(f"| {name} | {drivers} | {r['requests']} | {r['kib']:.1f} | "
                  f"{_cells(r, base, drivers)} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-linux", action="store_true", help="our guest OS's workloads only")
    ap.add_argument("--linux-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.linux_only:
        our_os_table()
    if not args.no_linux:
        linux_table()


def our_os_table():
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
                    print(f"| {label} | {workload} | {drivers} | "
                          f"{_cells(results[drivers][workload], base, drivers)} |")
    print()


if __name__ == "__main__":
    main()
