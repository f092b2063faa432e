"""The RISC-V IOMMU model (riscv/iommu.py) and the VMM's driver for it (vmm/iommu.py):
translation, the faults and their records, the caches and the commands that
invalidate them, the queues' rules."""

import struct

import pytest

from popek.costmodel import CostModel
from popek.devices.memory import GuestMemory
from popek.errors import GuestMemoryError
from popek.riscv import iommu as hw
from popek.riscv.iommu import DmaFault, IommuDma, RiscvIommu
from popek.vmm.iommu import IommuDriver, region_pages

BASE = 0x8000_0000
MiB = 1 << 20
VM_RAM = BASE + 8 * MiB            # "a VM's RAM": 4 MiB of host memory, guest 0x8000_0000
REGION = BASE + 16 * MiB
DEV = 0x10                         # PCI slot 2's requester ID


def attached(vm_size: int = 4 * MiB):
    """Host RAM, its IOMMU, and the VMM's driver with device DEV given to a VM of
    ``vm_size`` bytes (GSCID 1) at VM_RAM."""
    ram = GuestMemory(BASE, 32 * MiB)
    mmu = RiscvIommu(ram, costs=CostModel())
    driver = IommuDriver(mmu, ram, REGION, region_pages([4 * MiB, 5 * MiB]))
    driver.map_vm(1, 0x8000_0000, VM_RAM, vm_size)
    driver.attach(DEV, 1)
    return ram, mmu, driver


@pytest.fixture
def host():
    return attached()


def test_registers_after_the_driver_set_it_up(host):
    ram, mmu, driver = host
    caps = mmu.read(hw.CAPABILITIES, 8)
    assert caps & 0xFF == 0x10 and caps & hw.CAP_SV39X4 and (caps >> 32) & 0x3F == 56
    assert mmu.read(hw.FCTL, 4) == hw.FCTL_WSI
    assert mmu.read(hw.DDTP, 8) == (REGION >> 2) | hw.MODE_2LVL
    assert mmu.read(hw.DDTP + 4, 4) == (REGION >> 2) >> 32      # the high half alone
    assert mmu.read(hw.CQCSR, 4) & (hw.CQEN | hw.CQON) == hw.CQEN | hw.CQON
    assert mmu.read(hw.CQH, 4) == mmu.read(hw.CQT, 4) == 3      # three commands done
    assert mmu.stats["commands"] == 3


def test_dma_is_translated_into_the_vms_ram(host):
    ram, mmu, _ = host
    dma = IommuDma(mmu, DEV)
    dma.write(0x8000_1ffe, b"\x11\x22\x33\x44")             # across a page boundary
    assert ram.read(VM_RAM + 0x1ffe, 4) == b"\x11\x22\x33\x44"
    assert dma.read_int(0x8000_1ffe, 4) == 0x44332211
    st = mmu.stats
    # Both pages are in one megapage of the VM's tables: one IOTLB entry, one walk.
    assert st["iotlb_misses"] == 1 and st["iotlb_hits"] == 3 and st["faults"] == 0
    # A miss walks the device directory (two levels) and the Sv39x4 tables.
    assert st["modelled_cycles"] > 2 * CostModel().IOMMU_WALK_REF
    assert dma.contains(0x8000_0000, 4 * MiB) and not dma.contains(0x8040_0000, 1)
    assert not dma.contains(0x8000_0000, 1 << 32)            # (bounded: never probed)
    assert st["faults"] == 0                                  # a probe records nothing


def test_dma_outside_the_vm_is_blocked_and_recorded(host):
    ram, mmu, driver = host
    dma = IommuDma(mmu, DEV)
    before = ram.read(REGION, 64)
    for target in (0x8040_0000, REGION, 0x1000):            # past its RAM, the VMM's, low
        with pytest.raises(DmaFault) as e:
            dma.write(target, b"\xAA" * 64)
        assert e.value.cause == hw.WRITE_GUEST_PAGE_FAULT
        assert isinstance(e.value, GuestMemoryError)        # (devices treat it as one)
    with pytest.raises(DmaFault):
        dma.read(1 << 45, 8)                                 # wider than Sv39x4
    assert ram.read(REGION, 64) == before
    records = driver.faults()
    assert [(r.cause, r.device_id, r.iotval, r.write) for r in records] == [
        (23, DEV, 0x8040_0000, True), (23, DEV, REGION, True), (23, DEV, 0x1000, True),
        (21, DEV, 1 << 45, False)]
    assert records[0].iotval2 == 0x8040_0000                 # the GPA, not shifted
    assert driver.faults() == []                             # read: the queue is empty


def test_an_unknown_device_and_a_detached_one_get_no_dma(host):
    ram, mmu, driver = host
    with pytest.raises(DmaFault) as e:
        IommuDma(mmu, 0x18).read(0x8000_0000, 4)
    assert e.value.cause == hw.DDT_INVALID
    with pytest.raises(DmaFault) as e:
        IommuDma(mmu, 0x300).read(0x8000_0000, 4)           # bus 3: no leaf there
    assert e.value.cause == hw.DDT_INVALID
    dma = IommuDma(mmu, DEV)
    dma.read(0x8000_0000, 4)
    driver.detach(DEV, 1)
    with pytest.raises(DmaFault) as e:
        dma.read(0x8000_0000, 4)
    assert e.value.cause == hw.DDT_INVALID
    assert [r.cause for r in driver.faults()] == [258, 258, 258]


def test_stale_translations_live_until_invalidated(host):
    """The IOTLB and the context cache are the hardware's: a table change without the
    commands is not seen (which is why the driver always sends them)."""
    ram, mmu, driver = host
    dma = IommuDma(mmu, DEV)
    dma.write(0x8000_0000, b"x")
    # Corrupt the device context behind the IOMMU's back: the cached one still serves.
    ram.write(driver._context(DEV), bytes(32))
    dma.write(0x8000_0000, b"y")
    assert ram.read(VM_RAM, 1) == b"y"
    mmu.dc_cache.clear()
    mmu.iotlb.clear()
    with pytest.raises(DmaFault):
        dma.write(0x8000_0000, b"z")


def _command(mmu, driver, dw0: int, dw1: int = 0) -> None:
    driver._submit(dw0, dw1)
    mmu.write(hw.CQT, 4, driver.cqt)


GVMA = hw.IOTINVAL | 1 << 7


def test_iotinval_gvma_by_gscid_and_address(host):
    """The VM's RAM is mapped with 2 MiB megapages, each one IOTLB entry however many of
    its pages were touched: invalidating one address of one drops it, and nothing of the
    next."""
    ram, mmu, driver = host
    dma = IommuDma(mmu, DEV)
    for page in range(4):
        dma.read(0x8000_0000 + page * 4096, 1)
    dma.read(0x8020_0000, 1)
    assert list(mmu.iotlb) == [(1, 0x8000_0000, 1 << 21), (1, 0x8020_0000, 1 << 21)]
    assert mmu.stats["iotlb_misses"] == 2 and mmu.stats["iotlb_hits"] == 3
    _command(mmu, driver, GVMA | 1 << 10 | 1 << 33 | 1 << 44, (0x8000_1000 >> 12) << 10)
    assert list(mmu.iotlb) == [(1, 0x8020_0000, 1 << 21)]
    _command(mmu, driver, GVMA | 1 << 33 | 2 << 44)                 # another GSCID
    assert len(mmu.iotlb) == 1
    _command(mmu, driver, GVMA | 1 << 10, (0x9000_0000 >> 12) << 10)  # GV=0: AV ignored
    assert not mmu.iotlb


def test_the_iotlb_is_bounded_and_drops_the_least_recent(monkeypatch):
    """A VM of 5 MiB: two megapages, then 4 KiB pages (each its own entry).  Past the
    bound the least recently used entry goes, and is walked again when touched."""
    monkeypatch.setattr(hw, "IOTLB_ENTRIES", 16)
    ram, mmu, driver = attached(5 * MiB)
    dma = IommuDma(mmu, DEV)
    pages = [0x8040_0000 + i * 4096 for i in range(20)]
    for gpa in pages:
        dma.read(gpa, 1)
    assert len(mmu.iotlb) == 16 and mmu.stats["iotlb_evictions"] == 4
    assert all(size == 4096 for _, _, size in mmu.iotlb)
    dma.read(pages[-1], 1)                        # the newest: still there
    dma.read(pages[0], 1)                         # the oldest: gone, walked again
    assert mmu.stats["iotlb_hits"] == 1 and mmu.stats["iotlb_misses"] == 21


@pytest.mark.parametrize("dw0, dw1", [
    (GVMA | 1 << 11, 0),                         # a reserved bit of IOTINVAL
    (GVMA, 1),                                   # ... of its address doubleword
    (hw.IOFENCE | 1 << 20, 0),                   # ... of IOFENCE.C
    (hw.IODIR | 5 << 12, 0),                     # INVAL_DDT with a PID
    (hw.IODIR | 1 << 33 | 0x10000 << 40, 0),     # a device ID too wide for a 2LVL DDT
    (hw.IODIR | 1 << 7, 0),                      # INVAL_PDT without DV
])
def test_malformed_commands_are_illegal(host, dw0, dw1):
    ram, mmu, driver = host
    _command(mmu, driver, dw0, dw1)
    assert mmu.read(hw.CQCSR, 4) & hw.CMD_ILL


@pytest.mark.parametrize("tc", [1 | 1 << 8, 1 | 1 << 10, 1 | 1 << 9, 1 | 1 << 1, 1 | 1 << 12])
def test_contexts_asking_for_what_this_iommu_lacks_are_misconfigured(host, tc):
    """SADE (no hardware A/D), SBE (no big-endian), DPE without PDTV, EN_ATS, a
    reserved bit."""
    ram, mmu, driver = host
    ram.write_int(driver._context(DEV), 8, tc)
    driver._sync(DEV, 1)
    with pytest.raises(DmaFault) as e:
        IommuDma(mmu, DEV).read(0x8000_0000, 1)
    assert e.value.cause == hw.DDT_MISCONFIGURED


def test_a_probe_costs_and_caches_nothing(host):
    ram, mmu, driver = host
    before = dict(mmu.stats)
    assert IommuDma(mmu, DEV).contains(0x8000_0000, 256 * 4096)
    assert not IommuDma(mmu, DEV).contains(0x9000_0000, 1)
    assert mmu.stats == before and not mmu.iotlb and driver.faults() == []


def test_an_illegal_command_stops_the_queue_where_it_is(host):
    ram, mmu, driver = host
    head = mmu.read(hw.CQH, 4)
    driver._submit(0x7F, 0)                                   # opcode 127: no such command
    driver._submit(hw.IOFENCE | 1 << 10 | 0x55 << 32, driver.fence >> 2)
    mmu.write(hw.CQT, 4, driver.cqt)
    assert mmu.read(hw.CQCSR, 4) & hw.CMD_ILL
    assert mmu.read(hw.CQH, 4) == head                       # still at the bad one
    assert ram.read_int(driver.fence, 4) != 0x55             # the fence after it waits
    # GVMA with PSCV set is illegal too; the driver's next change would notice.
    ram.write(driver.cq + head * 16, struct.pack("<QQ", hw.IOTINVAL | 1 << 7 | 1 << 32, 0))
    mmu.write(hw.CQCSR, 4, hw.CQEN | hw.CMD_ILL)              # clear: it re-reads the command
    assert mmu.read(hw.CQCSR, 4) & hw.CMD_ILL and mmu.read(hw.CQH, 4) == head
    ram.write(driver.cq + head * 16, struct.pack("<QQ", hw.IOTINVAL | 1 << 7, 0))
    mmu.write(hw.CQCSR, 4, hw.CQEN | hw.CMD_ILL)
    assert not mmu.read(hw.CQCSR, 4) & hw.CMD_ILL
    assert ram.read_int(driver.fence, 4) == 0x55 and mmu.read(hw.CQH, 4) == driver.cqt


def test_a_full_fault_queue_overflows_and_the_interrupt_is_raised():
    ram = GuestMemory(BASE, 32 * MiB)
    lines = []
    mmu = RiscvIommu(ram, irq=lines.append)
    driver = IommuDriver(mmu, ram, REGION, region_pages([4 * MiB]))
    dma = IommuDma(mmu, DEV)                                  # no context: every DMA faults
    for i in range(200):
        with pytest.raises(DmaFault):
            dma.read(0x8000_0000 + i, 1)
    assert mmu.read(hw.FQCSR, 4) & hw.FQOF and lines[-1] is True
    mmu.write(hw.IPSR, 4, hw.FIP)                              # still overflowed: set again
    assert mmu.read(hw.IPSR, 4) & hw.FIP
    records = driver.faults()
    assert len(records) == 127                                 # a queue of 128 holds 127
    assert mmu.stats["records_dropped"] == 73
    assert not mmu.read(hw.FQCSR, 4) & hw.FQOF                 # the driver cleared it
    with pytest.raises(DmaFault):
        dma.read(0x8000_0000, 1)
    assert len(driver.faults()) == 1                           # recording again


def test_modes_off_and_bare_and_a_misconfigured_context():
    ram = GuestMemory(BASE, 32 * MiB)
    mmu = RiscvIommu(ram)
    dma = IommuDma(mmu, DEV)
    with pytest.raises(DmaFault) as e:
        dma.read(BASE, 4)
    assert e.value.cause == hw.ALL_DISALLOWED                 # reset: Off
    mmu.write(hw.DDTP, 8, hw.MODE_BARE)
    ram.write(BASE + 64, b"bare")
    assert dma.read(BASE + 64, 4) == b"bare"                  # untranslated, unprotected
    mmu.write(hw.DDTP, 8, 0x9)                                # a reserved mode: WARL keeps Bare
    assert mmu.read(hw.DDTP, 8) & 0xF == hw.MODE_BARE
    # 1LVL: a context with a first stage (which this IOMMU has not) is misconfigured.
    mmu.write(hw.DDTP, 8, (REGION >> 2) | hw.MODE_1LVL)
    ram.write(REGION + DEV * 32, struct.pack("<QQQQ", 1, 0, 0, 8 << 60))
    with pytest.raises(DmaFault) as e:
        dma.read(BASE, 4)
    assert e.value.cause == hw.DDT_MISCONFIGURED
    with pytest.raises(DmaFault) as e:
        IommuDma(mmu, 0x80).read(BASE, 4)                     # too wide for one level
    assert e.value.cause == hw.TTYPE_DISALLOWED
    # iohgatp Bare: the device's addresses are used as they are.
    mmu.write(hw.DDTP, 8, (REGION >> 2) | hw.MODE_1LVL)       # (a ddtp write drops the cache)
    ram.write(REGION + DEV * 32, struct.pack("<QQQQ", 1, 0, 0, 0))
    assert dma.read(BASE + 64, 4) == b"bare"


def test_dtf_suppresses_translation_faults_but_not_directory_ones(host):
    ram, mmu, driver = host
    ctx = driver._context(DEV)
    ram.write_int(ctx, 8, hw.TC_V | hw.TC_DTF)
    driver._sync(DEV, 1)
    with pytest.raises(DmaFault):
        IommuDma(mmu, DEV).write(0x9000_0000, b"x")
    assert driver.faults() == [] and mmu.stats["faults"] == 1
    with pytest.raises(DmaFault):
        IommuDma(mmu, 0x20).write(0x8000_0000, b"x")          # no context: reported
    assert [r.cause for r in driver.faults()] == [258]


def test_the_tables_map_odd_sizes_exactly():
    """A VM of 5 MiB: two megapages and 256 small pages; the byte after is not mapped."""
    ram, mmu, driver = attached(5 * MiB)
    dma = IommuDma(mmu, DEV)
    dma.write(0x8000_0000 + 5 * MiB - 1, b"E")
    assert ram.read(VM_RAM + 5 * MiB - 1, 1) == b"E"
    assert not dma.contains(0x8000_0000 + 5 * MiB, 1)
