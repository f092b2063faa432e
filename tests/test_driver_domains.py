"""Driver placement (vmm/drivers/): a physical NVMe disk's driver in the VMM
(monolithic) or in a driver domain, our guest OS using it through an ordinary
virtio-blk; an injected crash of each; a malicious driver domain."""

from __future__ import annotations

import subprocess
import sys

import pytest

from popek.devices.options import DeviceSpec
from popek.riscv.board import DriveSpec
from popek.vmm.drivers.faults import FaultPlan
from popek.vmm.hypervisor import DRIVER_CRASH_CODE
from popek.vmm.vm import VmConfig
from tests.test_guest import INTEGRITY_SECTOR, INTEGRITY_SECTORS, integrity_pattern
from tests.test_vmm import run_vms

APPEND = "selftest bench=blk_seq_write,blk_4k_read"


def bystander(guest_build, tmp_path) -> VmConfig:
    """Our OS running its self-test and its benchmarks (longer than the guest's disk
    work) with an emulated disk of its own."""
    img = tmp_path / "bystander.img"
    img.write_bytes(bytes(4 << 20))
    return VmConfig(kernel=str(guest_build / "kernel.elf"), name="bystander",
                    append="all", drives=[DriveSpec(str(img))])


def run(guest_build, disk, drivers: str, cpu: str = "trap-emulate", paging: str = "shadow",
        faults=None, others=(), append: str = APPEND, **kwargs):
    kernel = str(guest_build / "kernel.elf")
    configs = [VmConfig(kernel=kernel, name="guest", append=append, cpu=cpu, paging=paging,
                        disks=["disk0"]), *others]
    return run_vms(configs, host_devices=[DeviceSpec("nvme", {"id": "disk0",
                                                              "drive": str(disk)})],
                   drivers=drivers, faults=faults or {},
                   **{"max_instructions": 800_000_000, **kwargs})


def check_data(out: str, disk) -> None:
    prefix = "[guest] " if "[guest]" in out else ""          # (alone: no prefix)
    assert f"{prefix}SELFTEST PASS 9/9" in out, out[-3000:]
    assert f"{prefix}BENCH blk_seq_write" in out and f"{prefix}BENCH blk_4k_read" in out
    data = disk.read_bytes()
    start = INTEGRITY_SECTOR * 512
    assert data[start:start + INTEGRITY_SECTORS * 512] == integrity_pattern()
    assert data[4096 * 512:4096 * 512 + 8] == bytes(range(8))     # blk_seq_write's


@pytest.mark.parametrize("cpu, paging", [("trap-emulate", "shadow"), ("hw", "nested")])
def test_our_os_through_a_driver_domain(guest_build, disk_4m, cpu, paging):
    """Each request: an event to the domain, its grants mapped into the window and
    revoked at the response; the domain's NVMe without an exit; no IOMMU fault."""
    code, out, hv = run(guest_build, disk_4m, "domains", cpu, paging)
    assert code == 0
    check_data(out, disk_4m)
    guest, domain = hv.vms
    assert domain.name == "domain-disk0" and domain.domain is not None
    d = hv.stats()["driver disk0"]
    assert d["requests"] == d["responses"] == d["events"] >= 256 + 9
    assert d["grant_faults"] == 0 and d["crashes"] == 0 and d["inflight"] == 0
    assert d["grants_live"].startswith("0 ")                      # all revoked
    assert domain.ledger.counts["domain_event"] == d["events"]
    assert not any(r.startswith("mmio") and det.startswith("nvme")
                   for r, det in domain.ledger.details)        # passed through
    assert hv.stats()["iommu"]["faults"] == 0


def test_our_os_through_the_vmms_own_driver(guest_build, disk_4m):
    code, out, hv = run(guest_build, disk_4m, "monolithic")
    assert code == 0
    check_data(out, disk_4m)
    assert [vm.name for vm in hv.vms] == ["guest"]              # no domain
    d = hv.stats()["driver disk0"]
    assert d["served"] >= 256 + 9 and d["errors"] == 0
    assert hv.stats()["host disk0"]["owner"] == "the VMM"


def test_a_crash_of_the_vmms_driver_ends_every_vm(guest_build, disk_4m, tmp_path):
    """Monolithic: the driver's exception is the VMM's; the bystander, with a disk of
    its own, goes down with it, and the exit code and reason say why."""
    code, out, hv = run(guest_build, disk_4m, "monolithic", faults={"disk0": 2},
                        others=[bystander(guest_build, tmp_path)])
    assert code == DRIVER_CRASH_CODE
    assert "crashed after 2 requests" in hv.crash
    for vm in hv.vms:
        assert vm.exit_code == DRIVER_CRASH_CODE and "driver of disk0" in vm.exit_reason
    assert "[bystander] BENCH DONE" not in out


@pytest.mark.parametrize("kind, how", [("crash", ""), ("hang", ""), ("hang", "asleep")])
def test_a_driver_domain_that_fails_is_restarted_and_its_guest_goes_on(guest_build, disk_4m,
                                                                       tmp_path, kind, how):
    """Domains: the domain dies (crash: a wild store, in the middle of request 21, part
    of its data on the disk) or hangs there (hang: an endless loop with interrupts
    off, which nothing it does reports; or asleep in wfi, deaf to its event: the
    watchdog, in the domain's own time, finds the request unanswered and kills it); it
    is restarted, and the request is replayed.
    The guest's self-test and benchmarks finish with the right bytes, and the
    bystander never notices."""
    code, out, hv = run(guest_build, disk_4m, "domains",
                        faults={"disk0": FaultPlan("disk0", 20, kind)}, domain_append=how,
                        others=[bystander(guest_build, tmp_path)], domain_watchdog_ms=20)
    assert code == 0, out[-3000:]
    verb = {"crash": "crashing", "hang": "hanging"}[kind]
    assert f"[domain-disk0] blkback: {verb} in request 21" in out
    assert out.count("blkback: serving") == 2
    check_data(out, disk_4m)
    assert "[bystander] SELFTEST PASS 9/9" in out
    d = hv.stats()["driver disk0"]
    failed, other = ("crashes", "hangs") if kind == "crash" else ("hangs", "crashes")
    assert d[failed] == d["restarts"] == 1 and d[other] == 0 and d["replayed"] == 1
    assert d["responses"] == d["requests"] - 1          # (the replayed one, sent twice)
    guest = hv.vms[0]
    assert guest.ledger.details[("driver_restart", "disk0")] == 1


def test_a_slow_clock_does_not_make_a_rebooting_domain_look_hung(guest_build, disk_4m):
    """At 1 M instructions a guest second the domain's reboot after its crash is seconds
    of machine time, far past the watchdog's 100 ms; its own time is not: one crash,
    no hang, the guest's self-test passes."""
    code, out, hv = run(guest_build, disk_4m, "domains", append="selftest", ips=1_000_000,
                        faults={"disk0": 1})
    assert code == 0 and "SELFTEST PASS 9/9" in out, out[-3000:]
    d = hv.stats()["driver disk0"]
    assert d["crashes"] == d["restarts"] == 1 and d["hangs"] == 0


def test_without_a_watchdog_a_hung_domain_keeps_its_guests_waiting(guest_build, disk_4m):
    """The same hang with --domain-watchdog 0: the guest's I/O never completes (the run
    ends at its instruction budget), and nothing else breaks: what the watchdog is for."""
    code, out, hv = run(guest_build, disk_4m, "domains", append="selftest",
                        faults={"disk0": FaultPlan("disk0", 0, "hang")}, domain_watchdog_ms=0,
                        max_instructions=60_000_000)
    assert code is None                                  # (the budget ran out)
    assert "blkback: hanging in request 1" in out and "SELFTEST PASS" not in out
    d = hv.stats()["driver disk0"]
    assert d["hangs"] == d["restarts"] == 0 and d["inflight"] == 1


def test_a_hang_of_the_vmms_driver_is_the_vmms(guest_build, disk_4m):
    code, out, hv = run(guest_build, disk_4m, "monolithic",
                        faults={"disk0": FaultPlan("disk0", 2, "hang")})
    assert code == DRIVER_CRASH_CODE
    assert "driver of disk0 hung, and the VMM's one thread with it, after 2 requests" \
        in hv.crash


def test_a_malicious_driver_domain_reaches_only_what_it_was_granted(guest_build, disk_4m):
    """The domain (blkback evil) tries a forged grant, a disk read into a read-only
    grant (the guest's write buffer), DMA to a slot it did not map and beyond its
    window, and a grant already revoked: each refused by the grant checks or blocked
    by the IOMMU, with a record; the guest's data is intact."""
    code, out, hv = run(guest_build, disk_4m, "domains", domain_append="evil",
                        append="selftest")
    assert code == 0
    for line in ("evil: forged grant refused", "evil: the real grant mapped",
                 "a disk read into a read-only grant failed",
                 "DMA to an unmapped slot failed, beyond the window failed",
                 "evil: a revoked grant refused"):
        assert line in out, out[-3000:]
    assert "[guest] SELFTEST PASS 9/9" in out
    data = disk_4m.read_bytes()
    start = INTEGRITY_SECTOR * 512
    assert data[start:start + INTEGRITY_SECTORS * 512] == integrity_pattern()
    d = hv.stats()["driver disk0"]
    assert d["grant_faults"] == 2
    domain = hv.vms[1]
    assert domain.ledger.details[("grant_fault", "disk0")] == 2
    faults = {det: n for (r, det), n in domain.ledger.details.items() if r == "iommu_fault"}
    assert faults == {"disk0 write guest-page fault": 2, "disk0 read guest-page fault": 1}


def popek(*args):
    return subprocess.run([sys.executable, "-m", "popek", "run", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--drivers", "domains", "--vm", "kernel=K"], "--drivers is about the drivers"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=x"],
     "disk=x: no --host-device nvme has that id"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=d", "--vm",
      "kernel=K,disk=d"], "another VM has that disk already"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=d", "--vm",
      "kernel=K,passthrough=d"], "that device is passed through"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=d", "--drivers", "domains",
      "--iommu", "off"], "--drivers domains needs the IOMMU"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=d",
      "--inject-fault", "d:boom@3"], "expected DEVICE:crash@N"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=d",
      "--inject-fault", "e:crash@3"], "--inject-fault e: no VM has that disk"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=d",
      "--domain-append", "evil"], "--domain-append is for driver domains"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=d",
      "--domain-watchdog", "50"], "--domain-watchdog is for driver domains"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=d", "--drivers", "domains",
      "--domain-watchdog", "-1"], "--domain-watchdog -1: give 0 (none) to 3600000 ms"),
    (["--host-device", "nvme,id=d,drive=D", "--vm", "kernel=K,disk=d",
      "--inject-fault", "d:hang@x"], "--inject-fault d: hang@x: N is a number"),
])
def test_bad_driver_options_are_one_clear_error(guest_build, disk_4m, tmp_path, args, message):
    kernel = str(guest_build / "kernel.elf")
    args = [a.replace("kernel=K", f"kernel={kernel}").replace("drive=D", f"drive={disk_4m}")
            for a in args]
    r = popek("--vmm", "trap-emulate", *args)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
