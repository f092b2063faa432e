"""Our guest OS on an NVMe disk (guests/kernel/nvme.c): on the bare board, as a device
the VMM emulates (each doorbell an exit), and as a physical controller passed through
to its VM (no exit at all for the disk, its DMA translated by the IOMMU).  The same
self-test writes the same bytes in each, and they are on the host file."""

from __future__ import annotations

import pytest

from popek.console import ScriptedConsole
from popek.devices.options import DeviceSpec
from popek.riscv.board import BoardConfig, DriveSpec, VirtBoard
from popek.vmm.vm import VmConfig
from tests.test_guest import INTEGRITY_SECTOR, INTEGRITY_SECTORS, integrity_pattern
from tests.test_vmm import run_vms

APPEND = "selftest bench=blk_seq_write,blk_seq_read"


def check_disk(out: str, disk) -> None:
    """The self-test passed on the NVMe disk, its pattern and the write benchmark's
    bytes are on the host file."""
    assert "disk: nvme, 8192 sectors" in out, out[-2000:]
    assert "TEST block_io ok" in out and "SELFTEST PASS 9/9" in out, out[-2000:]
    assert "BENCH blk_seq_write" in out and "BENCH blk_seq_read" in out
    data = disk.read_bytes()
    start = INTEGRITY_SECTOR * 512
    assert data[start:start + INTEGRITY_SECTORS * 512] == integrity_pattern()
    assert data[4096 * 512:4096 * 512 + 8] == bytes(range(8))     # blk_seq_write's


def nvme_exits(vm) -> dict:
    return {detail: n for (reason, detail), n in vm.ledger.details.items()
            if reason.startswith("mmio") and detail.startswith("nvme")}


def test_our_os_on_the_bare_boards_nvme(opensbi, guest_build, disk_4m):
    con = ScriptedConsole()
    board = VirtBoard(BoardConfig(bios=str(opensbi), kernel=str(guest_build / "kernel.elf"),
                                  append=APPEND, max_instructions=300_000_000,
                                  drives=[DriveSpec(str(disk_4m), interface="nvme")]),
                      console=con)
    code = board.run()
    board.close()
    assert code == 0
    check_disk(con.text(), disk_4m)
    stats = board.platform.device_stats()["nvme (4 MiB)"]
    assert stats["writes"] == 9 and stats["flushes"] == 2 and stats["guest_errors"] == 0


def test_our_os_on_an_nvme_the_vmm_emulates(guest_build, disk_4m):
    """Every command is two doorbell writes, each an exit; completions are polled in
    RAM, so nothing else of the controller exits once it is up."""
    code, out, hv = run_vms([VmConfig(kernel=str(guest_build / "kernel.elf"), append=APPEND,
                                      drives=[DriveSpec(str(disk_4m), interface="nvme")])])
    assert code == 0
    check_disk(out, disk_4m)
    exits = nvme_exits(hv.vms[0])
    commands = 3 + 9 + 9 + 2                 # admin (Identify, two Creates), I/O
    assert exits["nvme SQ1TDBL"] == exits["nvme CQ1HDBL"] == commands - 3
    assert exits["nvme SQ0TDBL"] == exits["nvme CQ0HDBL"] == 3


@pytest.mark.parametrize("cpu, paging", [("trap-emulate", "shadow"), ("hw", "nested")])
def test_our_os_on_a_passed_through_nvme(guest_build, disk_4m, cpu, paging):
    code, out, hv = run_vms(
        [VmConfig(kernel=str(guest_build / "kernel.elf"), append=APPEND, cpu=cpu,
                  paging=paging, passthrough=["pdisk"])],
        host_devices=[DeviceSpec("nvme", {"id": "pdisk", "drive": str(disk_4m)})])
    assert code == 0
    check_disk(out, disk_4m)
    vm = hv.vms[0]
    assert vm.io.name == "passthrough" and nvme_exits(vm) == {}
    assert vm.ledger.counts.get("passthrough_irq", 0) == 0   # (polled, INTx disabled)
    stats = hv.stats()
    assert stats["host pdisk"]["writes"] == 9 and stats["host pdisk"]["owner"] == "vm0"
    iommu = stats["iommu"]
    assert iommu["faults"] == 0 and iommu["translations"] > 150
