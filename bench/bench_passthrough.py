#!/usr/bin/env python3
"""Emulated vs paravirtual vs passthrough: the same network workload through the three
I/O paths.

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

    python bench/bench_passthrough.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from snapshots import LineSnapshots                             # noqa: E402
from popek.devices.options import DeviceSpec, NetdevSpec        # noqa: E402
from popek.vmm.hypervisor import Hypervisor                     # noqa: E402
from popek.vmm.vm import VmConfig                                # noqa: E402

BENCH = re.compile(r"BENCH net_(pingpong|bulk)_net0 iters=(\d+) cycles=(\d+) time_ns=(\d+)")
FULL, SMALL, WINDOW = 1514, 64, 16
PATHS = ("emulated e1000", "virtio-net", "passthrough e1000")
NIC_EXITS = ("passthrough_irq", "passthrough_map")


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


def _nic_exits(vm) -> int:
    """Exits the VM's NIC caused: MMIO exits on its registers, routed interrupts, BAR
    pages mapped."""
    return sum(n for (reason, detail), n in vm.ledger.details.items()
               if (reason.startswith("mmio") and detail.startswith(("e1000", "virtio-net")))
               or reason in NIC_EXITS)


def run(path: str, cpu: str, paging: str) -> list[dict]:
    con = LineSnapshots()
    host = {}
    if path == "passthrough e1000":
        host = {"host_devices": [DeviceSpec("e1000", {"id": f"{n}-nic", "netdev": n})
                                 for n in ("client", "echo")],
                "netdevs": [NetdevSpec("switch", n) for n in ("client", "echo")]}
    hv = Hypervisor([_config(path, "client", "netbench", cpu, paging),
                     _config(path, "echo", "netecho", cpu, paging)], con, **host)
    con.snapshot = lambda: (sum(_nic_exits(vm) for vm in hv.vms),
                            sum(vm.ledger.total()[0] for vm in hv.vms),
                            dict(hv.host.iommu.stats) if hv.host.iommu else {})
    code = hv.run()
    hv.close()
    assert code == 0 and "BENCH DONE" in con.text(), con.text()[-2000:]
    rows, prev = [], None
    for line, (nic, exits, iommu) in con.lines:
        m = BENCH.search(line)
        if m and prev is not None:
            kind, iters, cycles, ns = m.group(1), *map(int, m.groups()[1:])
            if kind == "pingpong":
                frames, ops, payload = 2 * iters, iters, 2 * iters * SMALL
            else:
                frames, ops, payload = iters // FULL + iters // FULL // WINDOW, iters // FULL, \
                    iters
            delta = {k: v - prev[3].get(k, 0) for k, v in iommu.items()}
            rows.append({"workload": kind, "frames": frames, "cycles_per_op": cycles / ops,
                         "mib_s": payload / (ns / 1e9) / (1 << 20) if ns else 0.0,
                         "nic_exits": (nic - prev[1]) / frames,
                         "exits": (exits - prev[2]) / frames,
                         "translations": delta.get("translations", 0) / frames,
                         "misses": delta.get("iotlb_misses", 0) / frames,
                         "iommu_cycles": delta.get("modelled_cycles", 0) / frames})
        if m or "init:" in line:
            prev = (line, nic, exits, iommu)
    return rows


def main():
    subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"], check=True)
    print(__doc__.split("\n\n")[0].replace("\n", " "), "\n")
    for label, cpu, paging in (("trap-and-emulate", "trap-emulate", "shadow"),
                               ("hardware assist", "hw", "nested")):
        print(f"## {label}\n")
        print("| workload | path | NIC exits/frame | all exits/frame | modelled cycles/op "
              "| throughput (guest) | DMAs translated/frame | IOTLB misses/frame "
              "| IOMMU cycles/frame |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        results = {path: run(path, cpu, paging) for path in PATHS}
        for workload in ("pingpong", "bulk"):
            for path in PATHS:
                r = next(r for r in results[path] if r["workload"] == workload)
                iommu = (f"{r['translations']:.1f} | {r['misses']:.3f} | "
                         f"{r['iommu_cycles']:.0f}") if path.startswith("pass") else "- | - | -"
                print(f"| {workload} | {path} | {r['nic_exits']:.2f} | {r['exits']:.1f} | "
                      f"{r['cycles_per_op']:,.0f} | {r['mib_s']:.1f} MiB/s | {iommu} |")
        print()


if __name__ == "__main__":
    main()
