"""Hostile guests beside our guest OS under the VMM: each must end within its
budget, and the OS's results and the bytes on its disk must be those of a run
without it.  The corpus is tests/riscv/vmm (built like the conformance suite):
virtio_hostile.S lays its virtqueue out in every forbidden way (a used ring over
the avail ring froze the whole VMM before devices bounded their work); nic_hostile.c
does the same to an e1000's rings and registers and a virtio-net's queues; soak.S
floods the VMM with new SBI numbers, rewritten code and satp changes; wild.S
(tests/test_vmm.py) stores and jumps at random."""

from __future__ import annotations

import pytest

from popek.console import ScriptedConsole
from popek.devices.options import DeviceSpec, NetdevSpec
from popek.riscv.board import DriveSpec
from popek.vmm.hypervisor import Hypervisor
from popek.vmm.vm import VmConfig

MiB = 1 << 20
VIRTIO_VERDICTS = "A:R B:R C:R D:R E:R F:R G:R H:R I:R J:K K:K L:K M:K"
NIC_VERDICTS = "ABCDEFGHIJ survived"


def hostile_nics(name: str) -> dict:
    """An e1000 (PCI slot 1) and a virtio-net (slot 2) on one switch, as nic_hostile.c
    expects them."""
    return {"netdevs": [NetdevSpec("switch", f"{name}0", {"switch": name}),
                        NetdevSpec("switch", f"{name}1", {"switch": name})],
            "devices": [DeviceSpec("e1000", {"netdev": f"{name}0"}),
                        DeviceSpec("virtio-net-pci", {"netdev": f"{name}1"})]}


def disk_image(path):
    path.write_bytes(b"POPEK-VMM-DISK!!" + bytes((4 << 20) - 16))
    return path


def run(configs, max_instructions, until=None):
    con = ScriptedConsole()
    hv = Hypervisor(configs, con, max_instructions=max_instructions)
    code = hv.run(until=until and (lambda: until(hv)))
    hv.close()
    return code, con.text(), hv


def os_lines(text: str, prefix: str = "") -> list[str]:
    """What our guest OS reported about itself (its self-test lines)."""
    return [ln[len(prefix):] for ln in text.splitlines()
            if ln.startswith(prefix) and "SELFTEST" in ln]


def test_a_hostile_virtio_driver_alone(vmm_programs, tmp_path):
    img = disk_image(tmp_path / "hostile.img")
    before = img.read_bytes()
    code, out, hv = run([VmConfig(kernel=str(vmm_programs / "virtio_hostile.elf"),
                                  memory=16 * MiB, drives=[DriveSpec(str(img))])], 5_000_000)
    assert code == 0
    assert out.strip() == VIRTIO_VERDICTS
    assert img.read_bytes() == before                  # nothing it sent was written
    assert hv.vms[0].platform.virtio[0].warnings.total() == 9   # A..I (one logged)


def test_a_hostile_nic_driver_alone(vmm_programs):
    code, out, hv = run([VmConfig(kernel=str(vmm_programs / "nic_hostile.elf"),
                                  memory=16 * MiB, **hostile_nics("bad"))], 20_000_000)
    assert code == 0
    assert out.strip() == NIC_VERDICTS
    e1000, vnet = hv.vms[0].platform.models
    assert e1000.warnings.total() >= 5                 # A, B, C, D and more: each logged once
    assert len(e1000.warnings.counts) == 4 and e1000.stats["tx_dropped"] >= 1
    assert vnet.stats["rx_dropped"] > 0 or len(vnet.backlog) == 256   # bounded, not grown
    assert hv.vms[0].ledger.total()[0] < 20_000        # its work was bounded


@pytest.mark.slow
@pytest.mark.parametrize("hostile", ["virtio_hostile", "nic_hostile", "soak"])
def test_hostile_guest_beside_our_guest_os(guest_build, vmm_programs, tmp_path, hostile):
    solo_disk = disk_image(tmp_path / "solo.img")
    code, solo_out, _ = run([VmConfig(kernel=str(guest_build / "kernel.elf"), name="os",
                                      drives=[DriveSpec(str(solo_disk))], append="selftest")],
                            200_000_000)
    assert code == 0 and "SELFTEST PASS 9/9" in solo_out

    os_disk = disk_image(tmp_path / "os.img")
    hostile_disk = disk_image(tmp_path / "hostile.img")
    configs = [VmConfig(kernel=str(guest_build / "kernel.elf"), name="os",
                        drives=[DriveSpec(str(os_disk))], append="selftest"),
               VmConfig(kernel=str(vmm_programs / f"{hostile}.elf"), name="bad",
                        memory=16 * MiB, drives=[DriveSpec(str(hostile_disk))],
                        **(hostile_nics("bad") if hostile == "nic_hostile" else {}))]
    code, out, hv = run(configs, 400_000_000, until=lambda hv: hv.vms[0].exit_code is not None)
    os_vm, bad = hv.vms
    assert os_vm.exit_code == 0
    assert os_lines(out, "[os] ") == os_lines(solo_out)
    assert os_disk.read_bytes() == solo_disk.read_bytes()
    if hostile == "virtio_hostile":
        assert f"[bad] {VIRTIO_VERDICTS}" in out
        assert bad.exit_code == 0
    elif hostile == "nic_hostile":
        assert f"[bad] {NIC_VERDICTS}" in out
        assert bad.exit_code == 0
    else:                                              # the soak never stops by itself
        assert bad.ledger.details[("sbi", "unknown")] > 100
        assert bad.exit_code is None


def test_a_guest_nothing_can_wake_ends_the_run(vmm_programs):
    """wfi with no interrupt enabled and no timer, and no input to come: the run
    ends (it waited for ever, under any budget), under the VMM and bare."""
    from popek.riscv.board import BoardConfig, VirtBoard
    elf = str(vmm_programs / "idle_forever.elf")
    code, _, hv = run([VmConfig(kernel=elf, memory=16 * MiB)], 1_000_000)
    assert code is None and hv.idle_for_ever and hv.hart.instret < 100
    board = VirtBoard(BoardConfig(bios=None, kernel=elf, max_instructions=1_000_000),
                      console=ScriptedConsole())
    assert board.run() is None and board.idle_for_ever
    board.close()


def test_a_bare_guest_trapping_in_a_loop_still_meets_its_budget(tmp_path):
    """Zeros in M-mode: an illegal instruction whose handler (mtvec 0) is illegal too.
    No instruction retires; the slice ends after SLICE_TRAPS and the budget, which
    counts exceptions, fires (it ran for ever before)."""
    import subprocess
    import sys
    img = tmp_path / "zeros.bin"
    img.write_bytes(bytes(4096))
    r = subprocess.run([sys.executable, "-m", "popek", "run", "--bios", "none", "--kernel",
                        str(img), "--max-instructions", "5000"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 124, r.stderr
    assert "exceptions (--max-instructions)" in r.stderr


def test_a_guest_resetting_in_a_loop_meets_its_budget(vmm_programs):
    """Each reset builds a new hart (instret from 0): the budget counts across them."""
    from popek.riscv.board import BoardConfig, VirtBoard
    board = VirtBoard(BoardConfig(bios=None, kernel=str(vmm_programs / "reset_loop.elf"),
                                  max_instructions=5000), console=ScriptedConsole())
    assert board.run() is None
    board.close()
    assert board.retired_before_reset + board.hart.instret >= 4000


def test_a_timer_in_the_past_with_interrupts_masked_ends_the_run(vmm_programs):
    code, _, hv = run([VmConfig(kernel=str(vmm_programs / "past_timer.elf"), memory=16 * MiB)],
                      1_000_000)
    assert code is None and hv.idle_for_ever
