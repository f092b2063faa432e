"""VMs with several vCPUs under the trap-and-emulate VMM (tests/riscv/vmm/smp_guest.S):
SBI HSM starts, reports and stops vCPUs, SBI IPIs reach the vCPUs a hart mask names
(and wake them from wfi), remote fences are accepted, and the vCPUs of one VM share its
memory, their AMOs interleaved by the VMM's scheduler."""

from __future__ import annotations

import pytest

import fdt

from popek.console import ScriptedConsole
from popek.vmm.hypervisor import Hypervisor
from popek.vmm.vm import VmConfig

MiB = 1 << 20


STRATEGIES = {"trap-emulate": "shadow", "hw": "nested"}


def run(vmm_programs, n_vms=1, smp=3, cpu="trap-emulate"):
    configs = [VmConfig(kernel=str(vmm_programs / "smp_guest.elf"), memory=16 * MiB,
                        name=f"vm{i}", smp=smp, cpu=cpu, paging=STRATEGIES[cpu])
               for i in range(n_vms)]
    con = ScriptedConsole()
    hv = Hypervisor(configs, con, max_instructions=20_000_000)
    code = hv.run()
    hv.close()
    return code, con.text(), hv


@pytest.mark.parametrize("cpu", list(STRATEGIES))
def test_three_vcpus_start_share_memory_take_ipis_and_stop(vmm_programs, cpu):
    code, out, hv = run(vmm_programs, cpu=cpu)
    assert code == 0 and "smp ok" in out, out
    vm = hv.vms[0]
    d = vm.ledger.details
    assert d[("sbi", "hsm")] >= 8                 # starts, statuses, two stops
    assert d[("sbi", "ipi")] == 2
    if cpu == "trap-emulate":
        assert vm.ledger.counts["interrupt"] >= 2     # the IPIs, injected by the VMM
    else:
        assert "interrupt" not in vm.ledger.counts    # the hardware delivers them (hvip)
    assert hv.switches > 6                        # the vCPUs took turns on the hart
    assert [v.started for v in vm.vcpus] == [True, False, False]


def test_the_device_tree_lists_each_vcpu(vmm_programs):
    _, _, hv = run(vmm_programs, smp=2)
    tree = fdt.parse_dtb(hv.vms[0].dtb)
    assert [n.name for n in tree.get_node("/cpus").nodes if n.name.startswith("cpu@")] == \
        ["cpu@0", "cpu@1"]
    cells = tree.get_property("interrupts-extended", "/soc/plic@c000000").data
    assert len(cells) == 8                        # M and S external, for each vCPU


@pytest.mark.parametrize("cpu", list(STRATEGIES))
def test_vms_with_several_vcpus_side_by_side(vmm_programs, cpu):
    """Two such VMs: each one's HSM, IPIs and counter are its own."""
    code, out, hv = run(vmm_programs, n_vms=2, cpu=cpu)
    assert code == 0 and out.count("smp ok") == 2, out


@pytest.mark.parametrize("cpu", list(STRATEGIES))
def test_a_reservation_does_not_outlive_its_vcpus_turn(vmm_programs, cpu):
    """lrsc_vcpus.S: vCPU 1 stores to the word vCPU 0 reserved, with no exit between;
    vCPU 0's SC must fail (the hart is one, its reservation is dropped at a switch)."""
    con = ScriptedConsole()
    hv = Hypervisor([VmConfig(kernel=str(vmm_programs / "lrsc_vcpus.elf"), memory=16 * MiB,
                              smp=2, cpu=cpu, paging=STRATEGIES[cpu])], con,
                    max_instructions=5_000_000)
    code = hv.run()
    hv.close()
    assert code == 0, "the SC succeeded after another vCPU's store"
