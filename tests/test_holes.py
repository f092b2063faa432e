"""Virtualization holes: CPUs with a sensitive instruction that does not trap in U-mode
(riscv/holes.py), the Popek–Goldberg checker that finds them (analyze/virtualizable.py),
what a hole does to trap-and-emulate, and the paravirtual kernel that runs anyway."""

from __future__ import annotations

import pytest

from popek import cli
from popek.analyze import virtualizable
from popek.riscv import csrs, isa
from popek.riscv.board import DriveSpec
from popek.riscv.csrs import S, U
from popek.riscv.holes import Hole, variant_with_holes
from popek.riscv.traps import Trap
from popek.vmm.vm import VmConfig
from tests.test_guest import BENCH_LINE, boot
from tests.test_vmm import run_vms

SSTATUS = 0x100


def _hart(cpu: str):
    return virtualizable.Checker(isa.variant(cpu)).hart


# -- the holes, as the CSR access rule sees them ------------------------------------
def test_read_hole_reads_the_real_sstatus_from_u_mode():
    h = _hart("rv64gc-readhole")
    h.set_priv(U)
    h.mstatus |= csrs.MSTATUS_SPP | csrs.MSTATUS_SIE
    value = csrs.access(h, SSTATUS, 1, 0, True, False)
    assert value & csrs.MSTATUS_SPP and value & csrs.MSTATUS_SIE
    with pytest.raises(Trap):                             # a write still traps
        csrs.access(h, SSTATUS, 2, csrs.MSTATUS_SIE, False, True)


def test_write_hole_drops_writes_from_u_mode_and_reads_still_trap():
    h = _hart("rv64gc-writehole")
    h.set_priv(U)
    h.mstatus |= csrs.MSTATUS_SIE
    assert csrs.access(h, SSTATUS, 2, csrs.MSTATUS_SIE, False, True) == 0   # csrc: no trap
    assert h.mstatus & csrs.MSTATUS_SIE                                      # ... no effect
    with pytest.raises(Trap):                                                # csrr traps
        csrs.access(h, SSTATUS, 1, 0, True, False)
    h.set_priv(S)                                   # S-mode: the real thing
    csrs.access(h, SSTATUS, 2, csrs.MSTATUS_SIE, False, True)
    assert not h.mstatus & csrs.MSTATUS_SIE


def test_the_base_isa_has_no_hole():
    h = _hart("rv64gc")
    h.set_priv(U)
    for do_read, do_write in ((True, False), (False, True)):
        with pytest.raises(Trap):
            csrs.access(h, SSTATUS, 1, 0, do_read, do_write)


# -- the checker -----------------------------------------------------------------------
def _groups(results) -> set:
    return {r.insn if r.csr is None else f"csr {r.csr}" for r in results}


def test_checker_base_rv64gc_is_virtualizable():
    rep = virtualizable.analyze(isa.variant("rv64gc"))
    assert rep.virtualizable and not rep.theorem3_violations
    sensitive = _groups(r for r in rep.results if r.sensitive)
    # Found by running, not listed: what a trap-and-emulate VMM must catch.
    assert {"sret", "wfi", "sfence.vma", "csr sstatus", "csr satp", "csr sepc", "csr stvec",
            "csr sie", "csr sip", "csr sscratch", "csr scause", "csr stval"} <= sensitive
    assert not {"add", "ld", "sd", "jal", "fadd.d", "csr fflags"} & sensitive
    assert all(r.trapped(U) for r in rep.results if r.sensitive)
    always = _groups(r for r in rep.results if r.always_traps)
    assert {"ecall", "ebreak", "mret", "csr mstatus"} <= always
    text = virtualizable.format_report(rep)
    assert "Theorem 1 (every sensitive instruction is privileged" in text
    assert "rv64imafdc is virtualizable" in text


def test_checker_names_the_read_hole():
    rep = virtualizable.analyze(isa.variant("rv64gc-readhole"))
    assert not rep.virtualizable
    assert _groups(rep.theorem1_violations) == {"csr sstatus"}
    assert _groups(rep.theorem3_violations) == {"csr sstatus"}    # user-sensitive too
    assert {r.text for r in rep.theorem1_violations} >= {"csrrs t0, sstatus, zero"}
    assert all(r.insn in ("csrrs", "csrrc", "csrrsi", "csrrci") for r in rep.theorem1_violations)


def test_checker_names_the_write_hole_and_a_hybrid_vmm_survives_it():
    rep = virtualizable.analyze(isa.variant("rv64gc-writehole"))
    assert not rep.virtualizable
    assert _groups(rep.theorem1_violations) == {"csr sstatus"}
    assert {r.text for r in rep.theorem1_violations} >= {"csrrw zero, sstatus, t3",
                                                         "csrrc zero, sstatus, t3"}
    assert not rep.theorem3_violations
    assert "a hybrid VMM would do" in virtualizable.format_report(rep)


def test_checker_finds_a_hole_added_to_the_tables():
    """A hole nobody told the checker about: sepc readable from U-mode."""
    def sepc_read_hole(f):
        real = f.by_number[f.numbers["sepc"]].read
        f.open_hole("sepc", Hole(read=real, write=None, what="sepc readable from U-mode"))

    csrs.REGISTER["hole:test-sepc-read"] = sepc_read_hole
    try:
        variant = variant_with_holes("rv64imafdc-test-sepchole", ("hole:test-sepc-read",))
        rep = virtualizable.analyze(variant)
    finally:
        del csrs.REGISTER["hole:test-sepc-read"]
        isa.ISAS.pop("rv64imafdc-test-sepchole", None)
    assert _groups(rep.theorem1_violations) == {"csr sepc"}
    assert _groups(rep.theorem3_violations) == {"csr sepc"}


def test_cli_analyze_virtualizable(capsys):
    assert cli.main(["analyze", "virtualizable", "--cpu", "rv64gc-writehole"]) == 3
    out = capsys.readouterr().out
    assert "FAILS: csr sstatus (csrrw zero, sstatus, zero;" in out
    assert "Theorem 3 (every user-sensitive instruction is privileged: a hybrid VMM can be " \
        "built): holds" in out


# -- what a hole does to our guest OS ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("cpu, panic", [
    ("rv64gc-readhole", "panic: kernel_trap: not from supervisor mode (sstatus 0x"),
    ("rv64gc-writehole", "panic: no timer interrupt in 100 ms with interrupts enabled (sstatus 0x")])
def test_hole_breaks_trap_and_emulate_not_bare_metal(opensbi, guest_build, disk, cpu, panic):
    """The same unmodified kernel: correct on the bare hole CPU (it runs in real S-mode,
    where there is no hole), broken under trap-and-emulate (its kernel runs in U-mode:
    it reads the real sstatus, or its interrupt enable is silently dropped), and it
    sees it itself, as a kernel checking its own state would."""
    code, out, _ = boot(opensbi, guest_build / "kernel.elf", disk, append="selftest", cpu=cpu)
    assert "kernel: timer interrupts arrive" in out and "SELFTEST PASS 9/9" in out, out[-2000:]
    assert code == 0
    code, out, hv = run_vms([VmConfig(kernel=str(guest_build / "kernel.elf"),
                                      drives=[DriveSpec(str(disk))], append="selftest")],
                            cpu=cpu)
    assert panic in out, out[-2000:]
    assert "SELFTEST" not in out and code != 0


@pytest.mark.slow
@pytest.mark.parametrize("cpu", ["rv64gc-readhole", "rv64gc-writehole"])
def test_paravirtual_kernel_runs_on_the_hole_cpus(guest_build, disk, cpu):
    """The PV kernel keeps sstatus in its vCPU page: no CSR instruction reaches a hole."""
    code, out, hv = run_vms([VmConfig(kernel=str(guest_build / "kernel-pv.elf"),
                                      drives=[DriveSpec(str(disk))], append="selftest")],
                            cpu=cpu)
    assert "pv: vCPU page at 0x" in out
    assert "SELFTEST PASS 9/9" in out, out[-2000:]
    assert code == 0
    assert hv.vms[0].ledger.details.get(("csr", "0x100"), 0) == 0     # no sstatus access


@pytest.mark.slow
def test_paravirtual_kernel_beats_trap_and_emulate(guest_build, disk):
    """With the vCPU page, the PV kernel's trap handlers touch no CSR: fewer modelled
    cycles per iteration than the native kernel under trap-and-emulate."""
    cycles = {}
    for name in ("kernel", "kernel-pv"):
        code, out, _ = run_vms([VmConfig(kernel=str(guest_build / f"{name}.elf"),
                                         drives=[DriveSpec(str(disk))], append="bench")])
        assert code == 0
        cycles[name] = {m.group(1): int(m.group(3)) / int(m.group(2))
                        for m in BENCH_LINE.finditer(out)}
    for bench in ("null_syscall", "context_switch", "page_fault"):
        assert cycles["kernel-pv"][bench] < cycles["kernel"][bench], \
            (bench, cycles["kernel-pv"][bench], cycles["kernel"][bench])
    assert cycles["kernel-pv"]["null_syscall"] * 2 < cycles["kernel"]["null_syscall"]
