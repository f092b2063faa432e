#!/usr/bin/env python3
"""Emulated vs paravirtual vs passthrough: the same network and disk workloads through
the three I/O paths.

Two VMs of our guest OS, one running the benchmark client (``netbench``: round trips of
64-byte frames, then a bulk transfer of 1514-byte frames), the other the responder
(``netecho``), each with one NIC on popek's switch, the same path in both:

* emulated: an e1000 modelled in the VMM, every register access an exit;
* virtio: a virtio-net, its queues shared with the VMM, an exit per notify;
* passthrough: a physical e1000 of the simulated host given to each VM
  (``--host-device``, ``passthrough=``), registers reached without exits, interrupts
  routed by the VMM, DMA translated by the IOMMU.

Per workload: the exits the NIC caused per frame (its register accesses, and for
passthrough its routed interrupts and page mappings), all exits per frame, the client's
modelled cycles per operation, guest-time throughput, and for passthrough the IOMMU's
work per frame (translations, IOTLB misses, its modelled cycles: latency each DMA
waits, `costmodel.py` IOTLB_HIT and IOMMU_WALK_REF).  Under trap-and-emulate and under
hardware assist.

The disk: one VM of our guest OS reading 256 scattered 4 KiB blocks (each its own
request) and writing 512 KiB sequentially in 64 KiB requests, then a flush, through

* emulated: an NVMe controller modelled in the VMM (``--drive if=nvme``), its two
  doorbell writes per command exits;
* virtio: a virtio-blk on virtio-mmio, an exit per notify (and, our polling driver's
  habit, an interrupt-status read and acknowledgement per request);
* passthrough: a physical NVMe of the simulated host (``--host-device nvme``).

Per workload: disk exits and all exits per request, modelled cycles per request as
the guest counts them (exits charged), the throughput those cycles make at 1 GHz (guest
time, an instruction count, leaves the exits' cost out), and the IOMMU's work per
request.

    python bench/bench_passthrough.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from snapshots import LineSnapshots                             # noqa: E402
from popek.devices.options import DeviceSpec, NetdevSpec        # noqa: E402
from popek.riscv.board import DriveSpec                         # noqa: E402
from popek.vmm.hypervisor import Hypervisor                     # noqa: E402
from popek.vmm.vm import VmConfig                                # noqa: E402

BENCH = re.compile(r"BENCH net_(pingpong|bulk)_net0 iters=(\d+) cycles=(\d+) time_ns=(\d+)")
FULL, SMALL, WINDOW = 1514, 64, 16
PATHS = ("emulated e1000", "virtio-net", "passthrough e1000")
PASSTHROUGH_EXITS = ("passthrough_irq", "passthrough_map")
CLOCK_HZ = 1e9          # the modelled cycles as time: guest time (icount) leaves exits out


def _config(path: str, name: str, append: str, cpu: str, paging: str) -> VmConfig:
    cfg = VmConfig(kernel=str(ROOT / "guests" / "build" / "kernel.elf"), name=name,
                   append=append, cpu=cpu, paging=paging)
    if path == "passthrough e1000":
        cfg.passthrough = [f"{name}-nic"]
    else:
        model = "e1000" if path == "emulated e1000" else "virtio-net-pci"
        cfg.devices = [DeviceSpec(model, {"netdev": name})]
        cfg.netdevs = [NetdevSpec("switch", name)]
    return cfg


def _device_exits(vms, prefixes: tuple) -> int:
    """Exits a device caused: MMIO exits on its registers (the ledger names them by
    ``prefixes``), routed interrupts and BAR pages mapped (a passed-through one's)."""
    return sum(n for vm in vms for (reason, detail), n in vm.ledger.details.items()
               if (reason.startswith("mmio") and detail.startswith(prefixes))
               or reason in PASSTHROUGH_EXITS)


def _measure(configs, host: dict, prefixes: tuple, pattern, units) -> list[dict]:
    """Run ``configs``; for each of the guest's lines ``pattern`` matches (BENCH KIND
    iters cycles time_ns), what happened since its previous line, per unit:
    ``units(kind, iters)`` is (units, operations, payload bytes)."""
    con = LineSnapshots()
    hv = Hypervisor(configs, con, **host)
    con.snapshot = lambda: (_device_exits(hv.vms, prefixes),
                            sum(vm.ledger.total()[0] for vm in hv.vms),
                            dict(hv.host.iommu.stats) if hv.host.iommu else {})
    code = hv.run()
    hv.close()
    assert code == 0 and "BENCH DONE" in con.text(), con.text()[-2000:]
    rows, prev = [], None
    for (line, after), before in zip(con.lines, con.starts):
        m = pattern.search(line)
        if m and prev is not None:
            device, exits, iommu = before         # (the work done: not the printing)
            kind, iters, cycles, ns = m.group(1), *map(int, m.groups()[1:])
            per, ops, payload = units(kind, iters)
            delta = {k: v - prev[2].get(k, 0) for k, v in iommu.items()}
            rows.append({"workload": kind, "cycles_per_op": cycles / ops,
                         "guest_mib_s": payload / (ns / 1e9) / (1 << 20) if ns else 0.0,
                         "cycles_mib_s": payload / (cycles / CLOCK_HZ) / (1 << 20),
                         "device_exits": (device - prev[0]) / per,
                         "exits": (exits - prev[1]) / per,
                         "translations": delta.get("translations", 0) / per,
                         "misses": delta.get("iotlb_misses", 0) / per,
                         "iommu_cycles": delta.get("modelled_cycles", 0) / per})
        if m or "init:" in line:
            prev = after
    return rows


def _frames(kind: str, iters: int) -> tuple:
    """Frames, operations and payload of a network benchmark."""
    if kind == "pingpong":
        return 2 * iters, iters, 2 * iters * SMALL
    return iters // FULL + iters // FULL // WINDOW, iters // FULL, iters


def run(path: str, cpu: str, paging: str) -> list[dict]:
    host = {}
    if path == "passthrough e1000":
        host = {"host_devices": [DeviceSpec("e1000", {"id": f"{n}-nic", "netdev": n})
                                 for n in ("client", "echo")],
                "netdevs": [NetdevSpec("switch", n) for n in ("client", "echo")]}
    return _measure([_config(path, "client", "netbench", cpu, paging),
                     _config(path, "echo", "netecho", cpu, paging)], host,
                    ("e1000", "virtio-net"), BENCH, _frames)


DISK_PATHS = ("emulated NVMe", "virtio-blk", "passthrough NVMe")
DISK_BENCH = re.compile(r"BENCH (blk_4k_read|blk_seq_write) iters=(\d+) cycles=(\d+) "
                        r"time_ns=(\d+)")
DISK_MiB = 4


def _requests(kind: str, iters: int) -> tuple:
    """Requests (twice) and payload of a disk benchmark: 4 KiB reads, or 64 KiB writes
    and the flush after them."""
    n, payload = (iters, iters * 4096) if kind == "blk_4k_read" else (iters // 65536 + 1, iters)
    return n, n, payload


def run_disk(path: str, cpu: str, paging: str, image: str) -> list[dict]:
    with open(image, "wb") as f:
        f.truncate(DISK_MiB << 20)
    cfg = VmConfig(kernel=str(ROOT / "guests" / "build" / "kernel.elf"), name="disk",
                   append="bench=blk_4k_read,blk_seq_write", cpu=cpu, paging=paging)
    host = {}
    if path == "passthrough NVMe":
        cfg.passthrough = ["pdisk"]
        host = {"host_devices": [DeviceSpec("nvme", {"id": "pdisk", "drive": image})]}
    else:
        cfg.drives = [DriveSpec(image, interface="nvme" if path.startswith("emu") else "virtio")]
    return _measure([cfg], host, ("nvme", "virtio-blk"), DISK_BENCH, _requests)


def table(device: str, unit: str, throughput: str, workloads, results: dict) -> None:
    """One Markdown table: per workload, a row per path."""
    print(f"| workload | path | {device} exits/{unit} | all exits/{unit} | modelled cycles/op "
          f"| throughput ({throughput}) | DMAs translated/{unit} | IOTLB misses/{unit} "
          f"| IOMMU cycles/{unit} |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    mib_s = "guest_mib_s" if throughput == "guest time" else "cycles_mib_s"
    for workload in workloads:
        for path, rows in results.items():
            r = next(r for r in rows if r["workload"] == workload)
            iommu = (f"{r['translations']:.1f} | {r['misses']:.3f} | "
                     f"{r['iommu_cycles']:.0f}") if path.startswith("pass") else "- | - | -"
            print(f"| {workload} | {path} | {r['device_exits']:.2f} | {r['exits']:.1f} | "
                  f"{r['cycles_per_op']:,.0f} | {r[mib_s]:.1f} MiB/s | {iommu} |")
    print()


def main():
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    print(__doc__.split("\n\n")[0].replace("\n", " "), "\n")
    for label, cpu, paging in (("trap-and-emulate", "trap-emulate", "shadow"),
                               ("hardware assist", "hw", "nested")):
        print(f"## {label}\n")
        table("NIC", "frame", "guest time", ("pingpong", "bulk"),
              {path: run(path, cpu, paging) for path in PATHS})
        with tempfile.TemporaryDirectory() as tmp:
            image = os.path.join(tmp, "disk.img")
            table("disk", "request", "cycles at 1 GHz", ("blk_4k_read", "blk_seq_write"),
                  {path: run_disk(path, cpu, paging, image) for path in DISK_PATHS})


if __name__ == "__main__":
    main()
