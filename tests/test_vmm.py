"""The trap-and-emulate VMM: unmodified guests (U-Boot, our guest OS, its PV
build) run deprivileged; exits are counted exactly; hostile guests hurt only
themselves."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from popek.console import ScriptedConsole
from popek.riscv.board import DriveSpec
from popek.vmm.hypervisor import Hypervisor
from popek.vmm.vm import VmConfig
from tests.test_guest import BENCH_LINE, BENCHMARKS, integrity_pattern, INTEGRITY_SECTOR

MiB = 1 << 20


def run_vms(configs, steps=(), max_instructions=None, until=None, **kwargs):
    con = ScriptedConsole(steps)
    hv = Hypervisor(configs, con, max_instructions=max_instructions, **kwargs)
    code = hv.run(until=until and (lambda: until(hv)))
    hv.close()
    return code, con.text(), hv


def test_ledger_counts_exits_exactly(vmm_programs):
    """1000 `csrr sstatus` in the guest kernel are 1000 CSR exits, not one more."""
    code, _, hv = run_vms([VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB)])
    led = hv.vms[0].ledger
    assert code == 0
    assert led.counts["csr"] == 1000
    assert led.details[("csr", "0x100")] == 1000
    assert led.counts["sbi"] == 1 and led.details[("sbi", "srst")] == 1
    assert led.cycles["csr"] == 1000 * (80 + 150 + 60)        # entry + emulation + return


def check_guest_os_run(code, out, disk) -> None:
    """Our guest OS ran its self-tests and every benchmark, and its integrity test's
    bytes are in the host's disk image."""
    assert "SELFTEST PASS 9/9" in out, out[-2000:]
    assert sorted(m.group(1) for m in BENCH_LINE.finditer(out)) == sorted(BENCHMARKS)
    assert code == 0
    data = disk.read_bytes()
    assert data[INTEGRITY_SECTOR * 512:(INTEGRITY_SECTOR + 16) * 512] == integrity_pattern()


@pytest.mark.slow
def test_guest_os_runs_unmodified_under_the_vmm(guest_build, disk):
    code, out, hv = run_vms([VmConfig(kernel=str(guest_build / "kernel.elf"),
                                      drives=[DriveSpec(str(disk))])])
    check_guest_os_run(code, out, disk)
    led = hv.vms[0].ledger.counts
    # What a kernel does that trap-and-emulate must catch, all caught:
    for reason in ("csr", "sret", "sbi", "sfence_vma", "page_fault_shadow", "page_fault_guest",
                   "ecall_user", "interrupt", "counter", "mmio_write", "mmio_read"):
        assert led.get(reason, 0) > 0, reason


@pytest.mark.slow
def test_paravirtual_guest_os_under_the_vmm(guest_build, disk):
    code, out, hv = run_vms([VmConfig(kernel=str(guest_build / "kernel-pv.elf"),
                                      drives=[DriveSpec(str(disk))])])
    assert "popek guest kernel (paravirtual)" in out
    assert "SELFTEST PASS 9/9" in out, out[-2000:]
    assert code == 0
    led = hv.vms[0].ledger
    assert led.counts.get("sfence_vma", 0) == 0                  # fences are hypercalls now
    assert led.details[("pv_mmu_update", "entries")] > 100        # batched PTE stores
    assert led.details[("sbi", "popek")] > 0


@pytest.mark.slow
def test_uboot_runs_unmodified_under_the_vmm(uboot_smode, disk):
    steps = [("Hit any key", " "), ("=> ", "version\n"), ("=> ", "bdinfo\n"),
             ("=> ", "md 0x80000000 8\n"), ("=> ", "virtio scan\n"),
             ("=> ", "virtio info\n"), ("=> ", "virtio read 0x84000000 0 1\n"),
             ("=> ", "md.b 0x84000000 0x10\n"), ("=> ", "mw.b 0x85000000 0xa5 0x200\n"),
             ("=> ", "virtio write 0x85000000 8 1\n"), ("=> ", "poweroff\n")]
    code, out, hv = run_vms([VmConfig(kernel=str(uboot_smode), drives=[DriveSpec(str(disk))])],
                            steps)
    assert "U-Boot 2023.01" in out and "riscv64-linux-gnu-gcc" in out
    assert "-> start    = 0x0000000080000000" in out                       # bdinfo
    assert re.search(r"80000000: [0-9a-f]{8} ", out)                       # md
    assert "Capacity: 4.0 MB" in out
    assert "50 4f 50 45 4b 2d 56 4d 4d 2d 44 49 53 4b 21 21" in out      # POPEK-VMM-DISK!!
    assert "1 blocks written: OK" in out
    assert code == 0
    assert disk.read_bytes()[8 * 512:9 * 512] == b"\xa5" * 512
    assert hv.vms[0].ledger.counts["mmio_read"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("wild_cpu", ["trap-emulate", "bt"])
def test_two_vms_one_hostile(guest_build, vmm_programs, disk, wild_cpu):
    """Our guest OS and a guest that stores at random addresses, writes garbage to
    satp, executes illegal and privileged instructions, then wedges itself: the OS
    finishes correctly, the VMM survives, the wild VM only hurt itself (also when the
    wild one runs by binary translation: its mischief through callouts)."""
    configs = [VmConfig(kernel=str(guest_build / "kernel.elf"), name="os",
                        drives=[DriveSpec(str(disk))], append="selftest"),
               VmConfig(kernel=str(vmm_programs / "wild.elf"), name="wild", memory=16 * MiB,
                        cpu=wild_cpu, paging="shadow")]
    code, out, hv = run_vms(configs, max_instructions=40_000_000,
                            until=lambda hv: hv.vms[0].exit_code is not None)
    os_vm, wild = hv.vms
    assert "[os] SELFTEST PASS 9/9" in out, out[-2000:]
    assert os_vm.exit_code == 0
    assert "[wild] W" in out                       # it got through all its mischief
    assert wild.exit_code is None                  # and then wedged itself for good
    assert code is None                            # still running when the OS was done
    reflected = wild.ledger.details
    assert reflected[("exception_reflected", "store/AMO access fault")] > 100
    assert reflected[("exception_reflected", "illegal instruction")] > 100
    assert wild.ledger.counts["page_fault_guest"] > 1000       # its self-inflicted wedge


def test_vmm_options_are_checked():
    def popek(*args):
        return subprocess.run([sys.executable, "-m", "popek", "run", *args],
                              capture_output=True, text=True)
    r = popek("--vmm", "trap-emulate", "--bios", "x.elf", "--kernel", "k.elf")
    assert r.returncode == 1 and "drop --bios" in r.stderr and "Traceback" not in r.stderr
    r = popek("--vm", "kernel=k.elf")
    assert r.returncode == 1 and "--vmm" in r.stderr
    r = popek("--vmm", "trap-emulate", "--vm", "drive=x.img")
    assert r.returncode == 1 and "kernel=" in r.stderr
    r = popek("--vmm", "trap-emulate", "--kernel", "/nonexistent.elf")
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_a_vm_with_more_drives_than_slots_is_refused(vmm_programs, tmp_path):
    """Nine drives: refused before any is opened (the ninth was opened and locked, and
    no slot showed it to the guest)."""
    from popek.errors import ConfigError
    disks = []
    for i in range(9):
        (tmp_path / f"d{i}.img").write_bytes(bytes(4096))
        disks.append(DriveSpec(str(tmp_path / f"d{i}.img")))
    with pytest.raises(ConfigError, match="at most 8 virtio-mmio devices"):
        Hypervisor([VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB,
                             drives=disks)], ScriptedConsole())


@pytest.mark.slow
def test_guest_os_and_uboot_side_by_side(guest_build, uboot_smode, disk, tmp_path):
    """Two unmodified guests at once, each with its own console and disk."""
    disk2 = tmp_path / "uboot.img"
    disk2.write_bytes(bytes(1 << 20))
    configs = [VmConfig(kernel=str(uboot_smode), name="uboot", drives=[DriveSpec(str(disk2))]),
               VmConfig(kernel=str(guest_build / "kernel.elf"), name="os",
                        drives=[DriveSpec(str(disk))], append="selftest")]
    steps = [("Hit any key", " "), ("=> ", "virtio info\n"), ("=> ", "poweroff\n")]
    code, out, hv = run_vms(configs, steps)
    assert re.search(r"\[uboot\] +Capacity: 1.0 MB", out)
    assert "[uboot] poweroff ..." in out
    assert "[os] SELFTEST PASS 9/9" in out
    assert [vm.exit_code for vm in hv.vms] == [0, 0] and code == 0


# -- exit handling, fed with made-up exits (no guest code runs) -------------------

@pytest.fixture
def idle_vm(vmm_programs):
    con = ScriptedConsole()
    hv = Hypervisor([VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB)], con)
    vm = hv.vms[0]
    hv.switch_to(vm)
    yield hv, vm, con
    hv.close()


def test_exit_sbi_putchar(idle_vm):
    hv, vm, con = idle_vm
    h = hv.hart
    h.x[17], h.x[10] = 0x01, ord("Z")                     # legacy console putchar
    hv.handle_exit(vm, vm.cpu.exit_from_trap(8, 0, 0x80200100, False))
    assert con.text() == "Z"
    assert h.pc == 0x80200104 and h.x[10] == 0
    assert vm.ledger.details[("sbi", "legacy_putchar")] == 1


def test_exit_csr_write_then_read(idle_vm):
    from popek.riscv import isa
    hv, vm, _ = idle_vm
    h = hv.hart
    h.x[5] = 0x80201000
    csrw_stvec = 0x10529073                               # csrw stvec, t0
    hv.handle_exit(vm, vm.cpu.exit_from_trap(2, csrw_stvec, 0x80200000, False))
    assert vm.vcpu.stvec == 0x80201000 and h.pc == 0x80200004
    csrr_stvec = 0x10502573                               # csrr a0, stvec
    hv.handle_exit(vm, vm.cpu.exit_from_trap(2, csrr_stvec, 0x80200004, False))
    assert h.x[10] == 0x80201000
    assert isa.disassemble(isa.decode(csrr_stvec)) == "csrrs a0, 0x105, zero"


def test_exit_reflects_a_guest_user_ecall(idle_vm):
    hv, vm, _ = idle_vm
    v = vm.vcpu
    v.stvec, v.priv = 0x80202000, 0                       # the guest's user mode
    hv.handle_exit(vm, vm.cpu.exit_from_trap(8, 0, 0x40000010, False))
    assert hv.hart.pc == 0x80202000
    assert (v.priv, v.scause, v.sepc) == (1, 8, 0x40000010)
    assert vm.ledger.counts["ecall_user"] == 1


def test_exit_m_mode_instruction_is_reflected_as_illegal(idle_vm):
    hv, vm, _ = idle_vm
    vm.vcpu.stvec = 0x80203000
    hv.handle_exit(vm, vm.cpu.exit_from_trap(2, 0x30200073, 0x80200020, False))   # mret
    assert hv.hart.pc == 0x80203000
    assert vm.vcpu.scause == 2 and vm.vcpu.stval == 0x30200073


def test_a_vm_takes_an_initrd_as_qemu_places_it(vmm_programs, tmp_path):
    import fdt
    rd = tmp_path / "initrd.cpio"
    rd.write_bytes(b"popek-initrd" + bytes(8180))
    hv = Hypervisor([VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB,
                              initrd=str(rd))], ScriptedConsole())
    vm = hv.vms[0]
    start, end = vm.initrd_range
    assert start == 0x80200000 + 8 * MiB and end == start + 8192    # kernel + RAM / 2
    assert vm.ram.read(start, 12) == b"popek-initrd"
    chosen = fdt.parse_dtb(vm.dtb)
    assert chosen.get_property("linux,initrd-start", "/chosen").data == [0, start]
    hv.close()
