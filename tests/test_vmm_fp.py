"""F and D for guests of the trap-and-emulate VMM (tests/riscv/vmm/fp_guest.S):
the guest's sstatus.FS is its own (Off, Initial, Clean as it writes it; Dirty
after FP work, with SD), FP instructions and FP CSRs trap into the guest while its
FS is Off, and its FP registers and fcsr survive other VMs' time slices."""

from __future__ import annotations

from popek.console import ScriptedConsole
from popek.vmm.hypervisor import Hypervisor
from popek.vmm.vm import VmConfig

MiB = 1 << 20


def run(vmm_programs, memories, cpu="rv64imafdc"):
    configs = [VmConfig(kernel=str(vmm_programs / "fp_guest.elf"), memory=m * MiB,
                        name=f"vm{i}") for i, m in enumerate(memories)]
    con = ScriptedConsole()
    hv = Hypervisor(configs, con, cpu=cpu)
    code = hv.run()
    hv.close()
    return code, con.text(), hv


def test_guest_fp_state_and_fs(vmm_programs):
    code, out, hv = run(vmm_programs, [16])
    assert "FP OK" in out, out
    assert code == 0
    led = hv.vms[0].ledger
    # fadd.d and fmv.x.d with FS Off, and csrr fcsr: three illegal instructions reflected
    assert led.details[("exception_reflected", "illegal instruction")] == 3
    assert led.details[("csr", "0x100")] >= 8


def test_fp_registers_survive_other_vms(vmm_programs):
    """Two VMs with different values in all 32 FP registers and fcsr, interleaved
    by the VMM's slices while each spins: both find their own values again."""
    code, out, hv = run(vmm_programs, [16, 32])
    assert out.count("FP OK") == 2, out
    assert code == 0
    assert hv.vms[0].dtb_addr != hv.vms[1].dtb_addr        # the seeds differ
    assert hv.stats()["vm_switches"] > 20


def test_without_f_the_guest_cannot_turn_fs_on(vmm_programs):
    code, out, _ = run(vmm_programs, [16], cpu="rv64imac")
    assert "FP FAIL 4" in out, out
    assert code != 0


def test_guest_os_switches_fp_state_lazily_under_the_vmm(guest_build):
    """Our guest OS's FP self-test as a guest: its processes' first FP instructions trap
    (the hart's FS is the guest's, Off) and reach the guest kernel as illegal
    instructions, which gives each process FP state; registers survive the switches."""
    from tests.test_guest import FP_COUNTS
    code, out, hv = run_kernel(guest_build / "kernel.elf", "selftest")
    assert "TEST fp_context ok" in out, out[-1500:]
    firsts, restores, saves = map(int, FP_COUNTS.search(out).groups())
    assert firsts == 2 and restores >= 50 and 2 <= saves < restores // 2
    assert hv.vms[0].ledger.details[("exception_reflected", "illegal instruction")] == firsts


def run_kernel(kernel, append):
    con = ScriptedConsole()
    hv = Hypervisor([VmConfig(kernel=str(kernel), append=append)], con)
    code = hv.run()
    hv.close()
    return code, con.text(), hv
