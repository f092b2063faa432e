"""Hardware assist (``--vmm hw``): guests run in the H extension's VS-mode with nested
paging, and exit only for what the hardware sends to the hypervisor: SBI calls,
guest-page faults (memory first touched, devices), trapped wfi.  The same guests as
trap-and-emulate run unmodified; hostile ones are stopped by their G-stage."""

from __future__ import annotations

import re

import pytest

from popek.console import ScriptedConsole
from popek.riscv.board import DriveSpec
from popek.vmm.hypervisor import Hypervisor
from popek.vmm.vm import VmConfig
from tests.test_guest import BENCH_LINE
from tests.test_vmm import MiB, check_guest_os_run, run_vms

HW = {"cpu": "hw", "paging": "nested"}
# Reasons only trap-and-emulate has: what the hardware does itself under hw.
EMULATED_ONLY = ("csr", "sret", "sfence_vma", "page_fault_shadow", "page_fault_guest",
                 "ecall_user", "interrupt", "counter")


def bench_cycles(out: str) -> dict:
    return {m.group(1): int(re.search(r"cycles=(\d+)", m.group(0)).group(1))
            for m in BENCH_LINE.finditer(out) if "cycles=" in m.group(0)}


def test_ledger_prices_exits_as_vm_exits(vmm_programs):
    """csr_loop's 1000 `csrr sstatus` run in hardware: no exit but its SBI shutdown,
    which costs a VM exit and entry (1000 + 700) plus the SBI emulation (250)."""
    code, _, hv = run_vms([VmConfig(kernel=str(vmm_programs / "csr_loop.elf"),
                                    memory=16 * MiB, **HW)])
    led = hv.vms[0].ledger
    assert code == 0
    assert "csr" not in led.counts
    assert led.counts["sbi"] == 1
    assert led.cycles["sbi"] == 1000 + 250 + 700
    assert led.counts["page_fault_nested"] >= 1                # its memory, first touched
    # Its page walks were the hardware's (two-dimensional: the G-stage of every access),
    # no exits, but in the ledger with their cost.
    hw = led.hardware
    assert hw["two_stage_walks"] > 0 and hw["walk_references"] >= hw["two_stage_walks"]
    assert hw["walk_cycles"] == 20 * hw["walk_references"]


@pytest.mark.slow
def test_guest_os_runs_unmodified_in_vs_mode(guest_build, disk):
    code, out, hv = run_vms([VmConfig(kernel=str(guest_build / "kernel.elf"),
                                      drives=[DriveSpec(str(disk))], **HW)])
    check_guest_os_run(code, out, disk)
    led = hv.vms[0].ledger.counts
    for reason in ("sbi", "page_fault_nested", "mmio_read", "mmio_write"):
        assert led.get(reason, 0) > 0, reason
    for reason in EMULATED_ONLY:
        assert reason not in led, reason
    # The guest OS's memory is mapped by 2 MiB megapages: its 128 MiB in 64 fills at most.
    assert led["page_fault_nested"] <= 64
    assert hv.vms[0].memory.megapages == led["page_fault_nested"]


class ExitCountingConsole(ScriptedConsole):
    """Notes the VM's exit count at the end of each line the guest prints (not counting
    the SBI putchar exits the console output itself makes)."""

    def __init__(self):
        super().__init__()
        self.vm, self.marks, self._partial = None, [], b""

    def write(self, data: bytes) -> None:
        super().write(data)
        self._partial += data
        while b"\n" in self._partial:
            line, self._partial = self._partial.split(b"\n", 1)
            led = self.vm.ledger
            exits = led.total()[0] - led.details.get(("sbi", "legacy_putchar"), 0)
            self.marks.append((line.decode(errors="replace"), exits))


def exits_per_iteration(cfg) -> dict:
    """Per benchmark of the guest OS's bench mode: exits between its line and the one
    before, per iteration."""
    con = ExitCountingConsole()
    hv = Hypervisor([cfg], con)
    con.vm = hv.vms[0]
    assert hv.run() == 0, con.text()[-2000:]
    hv.close()
    out, before = {}, None
    for line, exits in con.marks:
        m = BENCH_LINE.search(line)
        if m and before is not None and "iters=" in line:
            out[m.group(1)] = (exits - before) / int(re.search(r"iters=(\d+)", line).group(1))
        if line.startswith(("BENCH", "init:")):
            before = exits
    return out


@pytest.mark.slow
def test_hw_exits_orders_of_magnitude_less_than_trap_and_emulate(guest_build, disk):
    """The benchmarks the article's argument rests on: system calls, page faults and
    context switches are the guest's own business under hw (no exit), emulated under
    trap-and-emulate: a hundred times fewer exits per iteration at least."""
    per = {cpu: exits_per_iteration(VmConfig(kernel=str(guest_build / "kernel.elf"),
                                             drives=[DriveSpec(str(disk))], append="bench",
                                             cpu=cpu, paging=paging))
           for cpu, paging in (("trap-emulate", "shadow"), ("hw", "nested"))}
    te, hw = per["trap-emulate"], per["hw"]
    for bench in ("null_syscall", "page_fault", "context_switch"):
        assert te[bench] >= 1, (bench, te[bench])
        assert hw[bench] * 100 < te[bench], (bench, hw[bench], te[bench])


@pytest.mark.slow
def test_paravirtual_guest_os_in_vs_mode(guest_build, disk):
    code, out, hv = run_vms([VmConfig(kernel=str(guest_build / "kernel-pv.elf"),
                                      drives=[DriveSpec(str(disk))], **HW)])
    assert "popek guest kernel (paravirtual)" in out
    # Its registers are the hart's VS registers: no vCPU page (vcpu_page.py), and none needed.
    assert "pv: no vCPU page" in out
    assert "SELFTEST PASS 9/9" in out, out[-2000:]
    assert code == 0
    assert hv.vms[0].ledger.details[("sbi", "popek")] > 0


@pytest.mark.slow
def test_uboot_runs_unmodified_in_vs_mode(uboot_smode, disk):
    steps = [("Hit any key", " "), ("=> ", "version\n"), ("=> ", "md 0x80000000 8\n"),
             ("=> ", "virtio scan\n"), ("=> ", "virtio read 0x84000000 0 1\n"),
             ("=> ", "md.b 0x84000000 0x10\n"), ("=> ", "mw.b 0x85000000 0xa5 0x200\n"),
             ("=> ", "virtio write 0x85000000 8 1\n"), ("=> ", "poweroff\n")]
    code, out, hv = run_vms([VmConfig(kernel=str(uboot_smode), drives=[DriveSpec(str(disk))],
                                      **HW)], steps)
    assert "U-Boot 2023.01" in out
    assert re.search(r"80000000: [0-9a-f]{8} ", out)
    assert "50 4f 50 45 4b 2d 56 4d 4d 2d 44 49 53 4b 21 21" in out      # POPEK-VMM-DISK!!
    assert "1 blocks written: OK" in out
    assert code == 0
    assert disk.read_bytes()[8 * 512:9 * 512] == b"\xa5" * 512


@pytest.mark.slow
def test_two_vms_one_hostile_in_vs_mode(guest_build, vmm_programs, disk):
    """wild.elf stores at random guest-physical addresses (none of them mapped in its
    G-stage but its own RAM), writes garbage to satp, runs illegal and privileged
    instructions: it hurts only itself; the OS beside it finishes correctly."""
    configs = [VmConfig(kernel=str(guest_build / "kernel.elf"), name="os",
                        drives=[DriveSpec(str(disk))], append="selftest", **HW),
               VmConfig(kernel=str(vmm_programs / "wild.elf"), name="wild", memory=16 * MiB,
                        **HW)]
    code, out, hv = run_vms(configs, max_instructions=40_000_000,
                            until=lambda hv: hv.vms[0].exit_code is not None)
    os_vm, wild = hv.vms
    assert "[os] SELFTEST PASS 9/9" in out, out[-2000:]
    assert os_vm.exit_code == 0
    assert "[wild] W" in out
    assert code is None
    reflected = wild.ledger.details
    assert reflected[("exception_reflected", "store/AMO access fault")] > 100
    # Its own G-stage never maps more than its RAM (16 MiB: 8 megapages).
    assert wild.memory.megapages <= 8


def test_hw_needs_a_hart_that_can_have_h(vmm_programs):
    from popek.errors import ConfigError
    with pytest.raises(ConfigError, match="H extension"):
        Hypervisor([VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB,
                             **HW)], None, cpu="rv64imac")


def _bench_timer():
    import importlib.util
    from tests.conftest import ROOT
    spec = importlib.util.spec_from_file_location("bench_timer", ROOT / "bench" / "bench_timer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_the_articles_timer_loop(guest_build, opensbi):
    """A loop reading the time: 25x slower or worse when each read traps (a VM exit),
    about as fast as bare metal when the hardware serves it (htimedelta)."""
    from popek.costmodel import CostModel
    m = _bench_timer().measure(CostModel())
    assert m["hw, time trapped"][1] >= 25, m
    assert m["trap-and-emulate"][1] >= 25, m
    assert m["hw, time not trapped"][1] <= 1.2, m


FAR_TABLES_S = r"""
    .section .text
    .globl _start
_start:
    la t0, trapped
    csrw stvec, t0
    la t0, root                      # a page table 2 MiB away: no load or store of the
    srli t0, t0, 12                  # guest ever touched it (the VMM loaded it), so the
    li t1, 8                         # G-stage first meets it in the hart's own walk
    slli t1, t1, 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    nop
    li a7, 0x53525354                # SBI shutdown: passed
    li a6, 0
    li a0, 0
    li a1, 0
    ecall
1:  j 1b
trapped:
    li a7, 0x53525354                # SBI system failure: the walk faulted
    li a6, 0
    li a0, 0
    li a1, 1
    ecall
2:  j 2b
    .section .pt, "aw"
    .balign 4096
root:
    .dword 0
    .dword 0
    .dword (0x80000000 >> 12 << 10) | 0xCF
    .fill 509, 8, 0
"""
FAR_TABLES_LD = """OUTPUT_ARCH("riscv")
ENTRY(_start)
SECTIONS { . = 0x80200000; .text : { *(.text*) } . = 0x80400000; .pt : { *(.pt*) } }
"""


def test_the_walk_finds_guest_memory_the_guest_never_touched(tmp_path):
    """A guest whose page table is in memory only the hart's walk reads: the walk's
    G-stage miss is memory to map (not a device, not a fault for the guest)."""
    import subprocess
    (tmp_path / "far.S").write_text(FAR_TABLES_S)
    (tmp_path / "far.ld").write_text(FAR_TABLES_LD)
    elf = tmp_path / "far.elf"
    subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv64imac_zicsr_zifencei", "-mabi=lp64",
                    "-nostdlib", "-nostartfiles", "-static", "-T", str(tmp_path / "far.ld"),
                    "-Wl,--no-warn-rwx-segments", "-o", str(elf), str(tmp_path / "far.S")],
                   check=True)
    code, _, hv = run_vms([VmConfig(kernel=str(elf), memory=16 * MiB, **HW)],
                          max_instructions=1_000_000)
    assert code == 0
    assert "exception_reflected" not in hv.vms[0].ledger.counts


def test_vms_of_any_size_keep_their_megapages(vmm_programs):
    """A VM of an odd number of MiB before another: the next one's RAM still starts 2 MiB
    aligned in host memory, so nested paging maps it with megapages."""
    configs = [VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=5 * MiB, name="a",
                        **HW),
               VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB, name="b",
                        **HW)]
    code, _, hv = run_vms(configs)
    assert code == 0
    for vm in hv.vms:
        assert vm.host_base % (2 * MiB) == 0, hex(vm.host_base)
    assert hv.vms[1].memory.megapages == hv.vms[1].memory.fills > 0


def test_hw_and_trap_and_emulate_vms_side_by_side(vmm_programs):
    """A hw VM leaves the hart as trap-and-emulate expects it (V=0, nothing delegated)."""
    configs = [VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB, name="a",
                        **HW),
               VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB, name="b")]
    code, _, hv = run_vms(configs, max_instructions=2_000_000)
    assert code == 0 and [vm.exit_code for vm in hv.vms] == [0, 0]
    assert hv.vms[1].ledger.counts["csr"] == 1000
