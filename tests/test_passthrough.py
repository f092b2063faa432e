"""Passthrough: a physical e1000 of the simulated host given to one VM, driven by our
guest OS's own driver with no exit per register; the IOMMU stopping a malicious
guest's DMA (into the VMM's tables, another VM's RAM, host RAM, and a read of another
VM), and what the same attack does with ``--iommu off``."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from popek.devices.options import DeviceSpec, NetdevSpec
from popek.riscv.board import DriveSpec
from popek.vmm.host import FAULT_STOP_CODE
from tests.test_guest import INTEGRITY_SECTOR, integrity_pattern
from tests.test_vmm import MiB, run_vms
from popek.vmm.vm import VmConfig

PATTERN = b"POPEK-DMA-ATTACK"


def _host_nic(netdev: str = "switch") -> dict:
    return {"host_devices": [DeviceSpec("e1000", {"id": "pnic", "netdev": "p0"})],
            "netdevs": [NetdevSpec(netdev, "p0")]}


@pytest.mark.parametrize("cpu, paging", [("trap-emulate", "shadow"), ("bt", "shadow"),
                                        ("hw", "nested")])
def test_our_os_drives_a_passed_through_e1000(guest_build, cpu, paging):
    """netbench on an emulated e1000 against netecho on a passed-through one: the
    echo VM's driver touches its NIC's registers without a single exit (the device's
    pages mapped once), its interrupts are routed, its DMA translated by the IOMMU."""
    kernel = str(guest_build / "kernel.elf")
    code, out, hv = run_vms(
        [VmConfig(kernel=kernel, name="client", append="netbench", cpu=cpu, paging=paging,
                  devices=[DeviceSpec("e1000", {"netdev": "c0"})],
                  netdevs=[NetdevSpec("switch", "c0")]),
         VmConfig(kernel=kernel, name="echo", append="netecho", cpu=cpu, paging=paging,
                  passthrough=["pnic"])],
        max_instructions=400_000_000, **_host_nic())
    assert code == 0, out[-2000:]
    assert "[client] BENCH net_pingpong_net0 iters=200" in out
    assert "[client] BENCH net_bulk_net0" in out and "[echo] netecho: done" in out
    client, echo = hv.vms
    assert echo.io.name == "passthrough" and client.io.name == "emulated"
    e1000_exits = lambda vm: sum(n for (reason, detail), n in vm.ledger.details.items()
                                 if reason.startswith("mmio") and detail.startswith("e1000"))
    assert e1000_exits(client) > 1000                  # TDT, RDT, ICR: each an exit
    assert e1000_exits(echo) == 0                      # the same driver: none
    stats = hv.stats()
    nic = stats["host pnic"]
    assert nic["owner"] == "echo" and nic["rx_packets"] > 700 and nic["tx_packets"] > 200
    assert echo.ledger.counts["passthrough_irq"] == nic["interrupts"] > 0
    assert echo.ledger.counts["passthrough_map"] >= 1
    iommu = stats["iommu"]
    assert iommu["translations"] > 2000 and iommu["faults"] == 0
    assert iommu["iotlb_hits"] > 10 * iommu["iotlb_misses"]
    if cpu == "hw":                                    # G-stage mappings stay: mapped once
        assert echo.ledger.counts["passthrough_map"] <= 4


def _attack(vmm_programs, victim: VmConfig, iommu: bool, on_fault: str = "report",
            cpu: str = "trap-emulate"):
    """The attacker (VM 0, so its guest-physical RAM is at the same host-physical
    addresses: without an IOMMU its own rings work) beside ``victim``; targets: the
    victim's paging pool (the VMM's tables), the victim's device tree (its RAM), the
    VMM region (host RAM of no VM: the IOMMU's directory), and the victim's kernel
    (read)."""
    from popek.vmm.hypervisor import HOST_RAM_BASE, MEGA, _round_up
    from popek.vmm import builder
    paging = builder.DEFAULT_PAGING[cpu]
    attacker_mem = 16 * MiB
    pool = _round_up(attacker_mem + builder.pool_pages(paging) * 4096, MEGA) - attacker_mem
    victim_host = HOST_RAM_BASE + attacker_mem + pool
    victim_pool = victim_host + victim.memory
    victim_end = victim_pool + _round_up(victim.memory + builder.pool_pages(victim.paging)
                                         * 4096, MEGA) - victim.memory
    targets = [victim_end - 4096,                      # the last page of its tables' pool
               victim_host + victim.memory - 2 * MiB,  # its device tree (top 2 MiB)
               victim_end,                             # the VMM region
               victim_host + 2 * MiB]                  # its kernel, read
    attacker = VmConfig(kernel=str(vmm_programs / "dma_attack.elf"), name="attacker",
                        memory=attacker_mem, passthrough=["pnic"], cpu=cpu, paging=paging,
                        append="dma=" + ":".join(f"{t:#x}" for t in targets))
    code, out, hv = run_vms([attacker, victim], max_instructions=3_000_000_000,
                            iommu=iommu, on_iommu_fault=on_fault, **_host_nic("loopback"))
    assert [vm.host_base for vm in hv.vms] == [HOST_RAM_BASE, victim_host]
    assert hv.host.region[0] == victim_end
    return code, out, hv, targets


def test_without_an_iommu_the_malicious_dma_lands_everywhere(vmm_programs):
    """--iommu off: the attacker's NIC writes into the VMM's tables, the other VM's
    RAM and host memory no VM owns, and reads the other VM's kernel; the VMM lives."""
    victim = VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), name="victim",
                      memory=16 * MiB)
    code, out, hv, targets = _attack(vmm_programs, victim, iommu=False)
    assert "[attacker] dma_attack: done" in out, out[-2000:]
    for name in "abc":
        assert f"[attacker] {name}:written" in out
    ram = hv.ram
    for t in targets[:3]:
        assert ram.read(t + 14, 16) == PATTERN             # (after the Ethernet header)
    leaked = re.search(r"d:read ([0-9a-f]{16})", out).group(1)
    assert bytes.fromhex(leaked) == ram.read(targets[3], 8)
    assert hv.host.iommu is None and "iommu" not in hv.stats()


def test_the_iommu_blocks_every_malicious_dma_and_the_victim_runs_on(vmm_programs,
                                                                     guest_build, disk):
    """The same attack with the IOMMU: each DMA is a fault record (cause, device,
    address), no byte moves, and our guest OS beside it passes its self-tests and leaves
    its disk with the same bytes as when it runs alone."""
    alone = disk.with_name("alone.img")
    alone.write_bytes(disk.read_bytes())
    _, solo, _ = run_vms([VmConfig(kernel=str(guest_build / "kernel.elf"), name="victim",
                                   drives=[DriveSpec(str(alone))], append="selftest")])
    assert "SELFTEST PASS 9/9" in solo
    victim = VmConfig(kernel=str(guest_build / "kernel.elf"), name="victim",
                      drives=[DriveSpec(str(disk))], append="selftest")
    code, out, hv, targets = _attack(vmm_programs, victim, iommu=True)
    check_blocked(out, hv, targets)
    assert "[victim] SELFTEST PASS 9/9" in out, out[-2000:]
    assert hv.vms[1].exit_code == 0 and code == 0
    data = disk.read_bytes()
    assert data == alone.read_bytes()
    assert data[INTEGRITY_SECTOR * 512:(INTEGRITY_SECTOR + 16) * 512] == integrity_pattern()


def check_blocked(out: str, hv, targets) -> None:
    for name in "abcd":
        assert f"[attacker] {name}:blocked" in out, out[-2000:]
    ram = hv.ram
    for t in targets[:3]:
        assert PATTERN not in ram.read(t, 4096)
    attacker = hv.vms[0]
    details = attacker.ledger.details
    assert details[("iommu_fault", "pnic write guest-page fault")] == 3
    assert details[("iommu_fault", "pnic read guest-page fault")] == 1
    stats = hv.stats()
    assert stats["attacker_iommu_blocked write guest-page fault"] == 3
    assert stats["iommu"]["fault_records"] == 4


@pytest.mark.parametrize("cpu", ["trap-emulate", "hw"])
def test_the_iommu_blocks_the_attack_on_a_small_victim(vmm_programs, cpu):
    """The fast version (a victim of a few instructions): four fault records, nothing
    written, and the device directory the attacker aimed at still intact; then its
    configuration-space storm: every BAR move that changed something dropped the VM's
    device mappings (bounded work each), and the device still answers where it was
    left."""
    paging = "nested" if cpu == "hw" else "shadow"
    victim = VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), name="victim",
                      memory=16 * MiB, cpu=cpu, paging=paging)
    code, out, hv, targets = _attack(vmm_programs, victim, iommu=True, cpu=cpu)
    check_blocked(out, hv, targets)
    assert hv.ram.read_int(targets[2], 8) & 1          # the DDT root's first entry: valid
    assert code == 0 and hv.vms[0].exit_code == 0
    assert "[attacker] e:survived, link up" in out
    remaps = hv.vms[0].io.remaps
    assert 500 <= remaps <= 2000, remaps


@pytest.mark.parametrize("cpu", ["trap-emulate", "hw"])
def test_policy_stop_ends_the_attacker_and_only_it(vmm_programs, cpu):
    victim = VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), name="victim",
                      memory=16 * MiB, cpu=cpu, paging="nested" if cpu == "hw" else "shadow")
    code, out, hv, targets = _attack(vmm_programs, victim, iommu=True, on_fault="stop",
                                     cpu=cpu)
    attacker, victim_vm = hv.vms
    assert attacker.exit_code == FAULT_STOP_CODE
    assert "IOMMU blocked a DMA of pnic" in attacker.exit_reason
    assert "write guest-page fault" in attacker.exit_reason
    assert "[attacker] dma_attack: done" not in out
    assert victim_vm.exit_code == 0
    assert not hv.host.iommu.probe(hv.host.devices["pnic"].device_id, 0x8000_0000, False)
    assert hv.host.devices["pnic"].route is None         # its device: no DMA, no interrupt
    if cpu == "trap-emulate":
        assert victim_vm.ledger.counts["csr"] == 1000             # it ran to its end


def popek(*args):
    return subprocess.run([sys.executable, "-m", "popek", "run", *args], capture_output=True,
                          text=True)


@pytest.mark.parametrize("args, message", [
    (["--vm", "kernel=K,passthrough=nope", "--host-device", "e1000,id=pnic,netdev=n",
      "--netdev", "loopback,id=n"], "no --host-device has that id (there are: pnic)"),
    (["--vm", "kernel=K,passthrough=pnic", "--vm", "kernel=K,passthrough=pnic",
      "--host-device", "e1000,id=pnic,netdev=n", "--netdev", "loopback,id=n"],
     "already assigned to vm0"),
    (["--vm", "kernel=K,passthrough=pnic"], "(there is none)"),
    (["--vm", "kernel=K", "--host-device", "e1000,id=a,netdev=n", "--host-device",
      "e1000,id=a,netdev=m", "--netdev", "loopback,id=n", "--netdev", "loopback,id=m"],
     "two devices with one id"),
    (["--vm", "kernel=K", "--host-device", "gpu,id=a"], "the host has e1000, nvme"),
    (["--vm", "kernel=K", "--host-device", "e1000,id=a"], "needs netdev="),
    (["--vm", "kernel=K", "--host-device", "nvme,id=a"], "needs drive="),
    (["--vm", "kernel=K", "--host-device", "nvme,id=a,drive=/nonexistent.img"],
     "/nonexistent.img"),
    (["--vm", "kernel=K", "--host-device", "e1000,id=a,netdev=n"], "no --netdev has that id"),
    (["--vm", "kernel=K", "--iommu", "off"], "--iommu is about the DMA of --host-device"),
    (["--vm", "kernel=K", "--io", "passthrough"], "--io passthrough needs a device"),
    (["--vm", "kernel=K,passthrough=a", "--host-device", "e1000,id=a,netdev=n", "--netdev",
      "loopback,id=n", "--iommu", "off", "--on-iommu-fault", "stop"],
     "with --iommu off nothing checks a DMA"),
    (["--vm", "kernel=K,passthrough=a," + ",".join(["device=virtio-rng-pci"] * 24),
      "--host-device", "e1000,id=a,netdev=n", "--netdev", "loopback,id=n"],
     "at most 24 devices and passed-through devices"),
])
def test_bad_passthrough_options_are_one_clear_error(vmm_programs, args, message):
    kernel = str(vmm_programs / "csr_loop.elf")
    args = [a.replace("kernel=K", f"kernel={kernel}") for a in args]
    r = popek("--vmm", "trap-emulate", *args)
    assert r.returncode == 1, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_host_devices_need_the_vmm():
    r = popek("--kernel", "k.elf", "--bios", "none", "--host-device", "e1000,id=a,netdev=n")
    assert r.returncode == 1 and "below --vmm" in r.stderr


def test_the_attack_from_the_command_line_with_stats(vmm_programs):
    """The README's command: the attacker's VM first, csr_loop beside it; --stats shows
    the IOMMU's faults and the attacker's ledger its iommu_fault records."""
    r = popek("--vmm", "trap-emulate", "--netdev", "loopback,id=l0",
              "--host-device", "e1000,id=pnic,netdev=l0",
              "--vm", f"kernel={vmm_programs / 'dma_attack.elf'},memory=16M,passthrough=pnic,"
                      "append=dma=0x82fff000:0x82600000:0x83000000:0x81a00000",
              "--vm", f"kernel={vmm_programs / 'csr_loop.elf'},memory=16M", "--stats")
    assert r.returncode == 0, r.stderr[-2000:]
    for name in "abcd":
        assert f"[vm0] {name}:blocked" in r.stdout
    assert "fault write guest-page fault=3" in r.stderr
    assert "fault read guest-page fault=1" in r.stderr
    assert "iommu_fault:pnic write guest-page fault 3" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_owner_hears_of_changes_of_the_line_only():
    """A device reports its level at every update of its interrupt registers: the VM is
    interrupted (and the ledger counts) once per rise."""
    from popek.vmm.host import HostDevice
    dev, heard = HostDevice("pnic", 1, None), []
    dev.route = heard.append
    for level in (True, True, 1, False, False, True):
        dev.set_level(level)
    assert heard == [True, False, True] and dev.interrupts == 2


@pytest.mark.parametrize("iommu", [True, False])
def test_a_passed_through_nvme_disk_as_a_weapon(vmm_programs, tmp_path, iommu):
    """nvme_attack.c brings its passed-through NVMe up and aims its DMA at the other VM:
    block 0 read into its device tree, block 1 written from its kernel (a leak onto the
    disk), a PRP list read from its memory.  With the IOMMU each is a fault record and
    the commands complete with Data Transfer Error; without, the block lands and the
    kernel's bytes are on the disk."""
    from popek.vmm.hypervisor import HOST_RAM_BASE, MEGA, _round_up
    from popek.vmm import builder
    disk = tmp_path / "nvme.img"
    disk.write_bytes(b"SECRET-BLOCK-ZERO" + bytes((1 << 20) - 17))
    pool = _round_up(16 * MiB + builder.pool_pages("shadow") * 4096, MEGA) - 16 * MiB
    victim_host = HOST_RAM_BASE + 16 * MiB + pool
    dtb, kernel = victim_host + 14 * MiB, victim_host + 2 * MiB
    code, out, hv = run_vms(
        [VmConfig(kernel=str(vmm_programs / "nvme_attack.elf"), name="attacker",
                  memory=16 * MiB, passthrough=["pdisk"], append=f"dma={dtb:#x}:{kernel:#x}"),
         VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), name="victim", memory=16 * MiB)],
        max_instructions=200_000_000, iommu=iommu,
        host_devices=[DeviceSpec("nvme", {"id": "pdisk", "drive": str(disk)})])
    assert "[attacker] nvme_attack: done" in out, out[-2000:]
    assert hv.vms[1].exit_code == 0
    leaked = disk.read_bytes()[512:512 + 64]
    if iommu:
        for name in "abc":
            assert f"[attacker] {name}:status 0x0004" in out       # Data Transfer Error
        assert hv.ram.read(dtb, 17) != b"SECRET-BLOCK-ZERO"
        assert leaked == bytes(64)
        details = hv.vms[0].ledger.details
        assert details[("iommu_fault", "pdisk write guest-page fault")] == 1
        assert details[("iommu_fault", "pdisk read guest-page fault")] == 2
    else:
        assert "[attacker] a:done" in out and "[attacker] b:done" in out
        assert hv.ram.read(dtb, 17) == b"SECRET-BLOCK-ZERO"
        assert leaked == hv.ram.read(kernel, 64) != bytes(64)
