"""Binary translation (--vmm bt): the guest's sensitive instructions become callouts of
the VMM's emulation, with no traps; the guest OS runs unmodified, also on the CPUs
with a hole, and faster than under trap-and-emulate."""

from __future__ import annotations

import pytest

from popek.riscv import isa
from popek.riscv.board import DriveSpec
from popek.vmm.cpu.bt import rewrite
from popek.vmm.vm import VmConfig
from tests.test_guest import BENCH_LINE
from tests.test_vmm import check_guest_os_run, run_vms

BT = dict(cpu="bt", paging="shadow")


def _asm(word: int) -> str:
    d = rewrite(0x80200000, isa.variant("rv64gc").decode(word))
    return d.insn.name


def test_rewrite_turns_sensitive_instructions_into_callouts():
    assert _asm(0x10002573) == "callout"       # csrr a0, sstatus
    assert _asm(0x18051073) == "callout"       # csrw satp, a0
    assert _asm(0xC0102573) == "callout"       # rdtime a0
    assert _asm(0x10200073) == "callout"       # sret
    assert _asm(0x10500073) == "callout"       # wfi
    assert _asm(0x12000073) == "callout"       # sfence.vma
    assert _asm(0x00000073) == "callout"       # ecall
    assert _asm(0x00302573) == "csrrs"         # frcsr a0: user state, runs as it is
    assert _asm(0x00a50533) == "add"           # add a0, a0, a0
    assert _asm(0x00100073) == "ebreak"
    d = rewrite(0, isa.variant("rv64gc").decode(0x10002573))
    assert d.word == 0x10002573 and d.insn.alone and d.insn.ends_block   # bits kept


def _bench_cycles(out: str) -> dict:
    return {m.group(1): int(m.group(3)) / int(m.group(2)) for m in BENCH_LINE.finditer(out)}


@pytest.mark.slow
def test_guest_os_runs_unmodified_under_binary_translation(guest_build, disk):
    code, out, hv = run_vms([VmConfig(kernel=str(guest_build / "kernel.elf"),
                                      drives=[DriveSpec(str(disk))], **BT)])
    check_guest_os_run(code, out, disk)
    led = hv.vms[0].ledger
    # The kernel's CSR accesses, sret, fences and hypercalls are callouts, not exits.
    for reason in ("csr", "sret", "sfence_vma", "sbi"):
        assert led.counts.get(reason, 0) == 0, reason
        assert led.callouts.get(reason, 0) > 0, reason
    # Its processes' code runs directly: their system calls trap, as under trap-and-emulate.
    assert led.counts["ecall_user"] > 0 and "ecall_user" not in led.callouts
    assert led.counts["page_fault_shadow"] > 0            # memory still exits
    assert led.coalesced > 1000                            # runs of CSR reads: one call
    stats = hv.stats()
    assert stats["vm0_callouts"] == sum(led.callouts.values())


@pytest.mark.slow
def test_binary_translation_beats_trap_and_emulate(guest_build, disk):
    cycles = {}
    for cpu in ("trap-emulate", "bt"):
        code, out, _ = run_vms([VmConfig(kernel=str(guest_build / "kernel.elf"),
                                         drives=[DriveSpec(str(disk))], append="bench",
                                         cpu=cpu, paging="shadow")])
        assert code == 0
        cycles[cpu] = _bench_cycles(out)
    for bench in ("null_syscall", "context_switch", "page_fault", "map_unmap"):
        assert cycles["bt"][bench] < cycles["trap-emulate"][bench], bench


@pytest.mark.slow
@pytest.mark.parametrize("cpu", ["rv64gc-readhole", "rv64gc-writehole"])
def test_binary_translation_repairs_the_holes(guest_build, disk, cpu):
    """The kernel that trap-and-emulate cannot run on these CPUs (test_holes.py): its
    sstatus accesses never run as they are, so the holes never see them."""
    code, out, hv = run_vms([VmConfig(kernel=str(guest_build / "kernel.elf"),
                                      drives=[DriveSpec(str(disk))], append="selftest", **BT)],
                            cpu=cpu)
    assert "kernel: timer interrupts arrive" in out
    assert "SELFTEST PASS 9/9" in out, out[-2000:]
    assert code == 0
    assert hv.vms[0].ledger.callouts["csr"] > 0


@pytest.mark.slow
def test_translated_and_untranslated_vms_share_one_hart(guest_build, tmp_path):
    """A bt VM and a trap-and-emulate VM of the same kernel, on one hart: code decoded
    for one flavour never runs for the other (the hart re-decodes at each switch)."""
    disks = []
    for name in ("a", "b"):
        img = tmp_path / f"{name}.img"
        img.write_bytes(bytes(4 << 20))
        disks.append(img)
    code, out, hv = run_vms([
        VmConfig(kernel=str(guest_build / "kernel.elf"), name="bt", cpu="bt", paging="shadow",
                 drives=[DriveSpec(str(disks[0]))], append="selftest"),
        VmConfig(kernel=str(guest_build / "kernel.elf"), name="te", drives=[DriveSpec(str(disks[1]))],
                 append="selftest")])
    assert "[bt] SELFTEST PASS 9/9" in out and "[te] SELFTEST PASS 9/9" in out, out[-3000:]
    assert code == 0
    bt, te = hv.vms
    assert bt.ledger.callouts and not te.ledger.callouts
    assert te.ledger.counts["csr"] > 0 and "csr" not in bt.ledger.counts


@pytest.mark.slow
def test_a_bt_vm_resumes_after_its_budget(guest_build, disk):
    """run() may stop at a budget and be called again: the VM is switched to afresh, so
    its strategy is active again (its callouts had no hook to call before)."""
    from popek.console import ScriptedConsole
    from popek.vmm.hypervisor import Hypervisor
    con = ScriptedConsole()
    hv = Hypervisor([VmConfig(kernel=str(guest_build / "kernel.elf"), append="selftest",
                              drives=[DriveSpec(str(disk))], **BT)], con,
                    max_instructions=300_000)
    assert hv.run() is None                         # the budget ran out
    hv.max_instructions = None
    code = hv.run()
    hv.close()
    assert "SELFTEST PASS 9/9" in con.text(), con.text()[-2000:]
    assert code == 0


@pytest.mark.parametrize("cpu", ["trap-emulate", "bt"])
def test_code_written_by_the_guest_is_translated_again(vmm_programs, cpu):
    """tests/riscv/vmm/smc_csr.S rewrites a hot `csrr a0, sscratch` into `csrr a0, sepc`:
    the second must be what runs (under bt: a new callout, for sepc)."""
    code, _, hv = run_vms([VmConfig(kernel=str(vmm_programs / "smc_csr.elf"), memory=16 << 20,
                                    cpu=cpu, paging="shadow")])
    assert code == 0                       # 1 or 2: a stale read
    led = hv.vms[0].ledger
    table = led.callouts if cpu == "bt" else led.counts
    assert table.get("csr", 0) >= 6
    assert led.details[("csr", "0x141")] >= 2          # csrw sepc, and the rewritten read
