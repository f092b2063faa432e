"""The structure the techniques are built on, each piece tested without a guest
where it can be: S-mode written once (CSR files per CPU, trap entry, sret,
interrupt choice), one page walk (A/D and stage-2 parameters), typed exits fed
to a VM's table, strategies chosen and refused, cost models and ISA variants
that live side by side, translation flavours, and --trace."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from popek.console import ScriptedConsole
from popek.costmodel import CostModel
from popek.devices.memory import GuestMemory
from popek.errors import ConfigError
from popek.riscv import csrs, isa, mmu, privilege, translate
from popek.riscv.board import BoardConfig, VirtBoard
from popek.riscv.traps import Trap
from popek.vmm import builder
from popek.vmm.exits import (CsrAccess, Ecall, GuestException, HostInterrupt, IllegalInsn,
                             MmioRead, MmioWrite, PageFault, Sret, TlbFence, Wfi, handler_table)
from popek.vmm.hypervisor import Hypervisor
from popek.vmm.vm import VmConfig

MiB = 1 << 20


@pytest.fixture
def vm(vmm_programs):
    hv = Hypervisor([VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB)],
                    ScriptedConsole())
    vm = hv.vms[0]
    hv.switch_to(vm)
    yield vm
    hv.close()


# -- S-mode once ----------------------------------------------------------------------

def test_cpu_files_hold_what_each_cpu_has(vm):
    hart, vcpu = vm.vmm.hart, vm.vcpu
    for name in ("sstatus", "stvec", "satp", "cycle", "time"):
        assert name in hart.csrs.numbers and name in vcpu.csrs.numbers
    for name in ("mstatus", "mtvec", "misa", "pmpaddr0", "hpmcounter3"):
        assert name in hart.csrs.numbers and name not in vcpu.csrs.numbers
    with pytest.raises(Trap):                                 # mstatus: not on a vCPU
        csrs.access(vcpu, 0x300, 1, 0, True, False)


@pytest.mark.parametrize("value", [0x80201000, 0x80201003, 0x80201002])
def test_the_same_csr_semantics_on_the_hart_and_the_vcpu(vm, value):
    """stvec's WARL rule (mode 2 and 3 reserved) and sstatus's writable bits: one
    definition, so the hart in S-mode and the vCPU agree on every write."""
    hart, vcpu = vm.vmm.hart, vm.vcpu
    hart.set_priv(1)
    for cpu in (hart, vcpu):
        csrs.access(cpu, 0x105, 0, value, True, True)
        csrs.access(cpu, 0x100, 0, 0xFFFF_FFFF_FFFF_FFFF, True, True)
    for num in (0x105, 0x100):
        assert csrs.access(hart, num, 1, 0, True, False) == csrs.access(vcpu, num, 1, 0, True, False)


def test_trap_entry_and_sret_are_one_function_for_both(vm):
    hart, vcpu = vm.vmm.hart, vm.vcpu
    results = []
    for cpu in (hart, vcpu):
        cpu.set_priv(0)
        cpu.stvec = 0x80300001                                 # vectored
        cpu.mstatus |= csrs.MSTATUS_SIE
        pc = privilege.supervisor_trap(cpu, 5, 0, 0x4000, True)
        state = (pc, cpu.priv, cpu.scause, cpu.sepc, cpu.mstatus & csrs.SSTATUS_VISIBLE)
        back = privilege.supervisor_return(cpu)
        results.append(state + (back, cpu.priv, cpu.mstatus & csrs.SSTATUS_VISIBLE))
    assert results[0] == results[1]
    assert results[0][:4] == (0x80300000 + 4 * 5, 1, (1 << 63) | 5, 0x4000)


def test_interrupt_choice_is_one_function_for_both(vm):
    vcpu = vm.vcpu
    vcpu.mie = csrs.S_INTERRUPTS
    vcpu.mip_sw = csrs.MIP_SSIP
    vcpu.set_irq_line(csrs.MIP_SEIP, True)
    vcpu.priv, vcpu.mstatus = 1, vcpu.mstatus & ~csrs.MSTATUS_SIE
    assert privilege.pending_interrupt(vcpu) is None           # S with SIE clear
    vcpu.mstatus |= csrs.MSTATUS_SIE
    assert privilege.pending_interrupt(vcpu) == 9              # external before software


# -- one page walk ----------------------------------------------------------------------

def _one_page_table(mem, base):
    """Sv39 tables at base: va 0x1000 → pa base+0x5000 (R/W/U), A and D clear."""
    root, mid, leaf = base, base + 0x1000, base + 0x2000
    mem.write_int(root, 8, ((mid >> 12) << 10) | 1)
    mem.write_int(mid, 8, ((leaf >> 12) << 10) | 1)
    mem.write_int(leaf + 8, 8, (((base + 0x5000) >> 12) << 10) | 0b10111)   # U W R V
    return (8 << 60) | (root >> 12), leaf + 8


def test_walk_sets_ad_unless_told_not_to():
    mem = GuestMemory(0x80000000, 1 * MiB)
    satp, pte_addr = _one_page_table(mem, 0x80000000)
    stats = mmu.WalkStats()
    pa, pte = mmu.walk(mem, satp, 0x1008, mmu.STORE, 0, False, False, stats, update_ad=False)
    assert pa == 0x80005008 and not pte & (mmu.PTE_A | mmu.PTE_D)
    assert mem.read_int(pte_addr, 8) & (mmu.PTE_A | mmu.PTE_D) == 0
    mmu.walk(mem, satp, 0x1008, mmu.STORE, 0, False, False, stats)
    assert mem.read_int(pte_addr, 8) & (mmu.PTE_A | mmu.PTE_D) == mmu.PTE_A | mmu.PTE_D
    with pytest.raises(Trap) as t:                             # S without SUM: U page faults
        mmu.walk(mem, satp, 0x1008, mmu.LOAD, 1, False, False, stats)
    assert (t.value.cause, t.value.tval) == (13, 0x1008)


def test_walk_applies_a_stage2_step_to_every_access():
    """A two-stage walk: the tables live at guest-physical 0x0, which stage 2 maps to
    host 0x80000000; every PTE address and the result go through it, and the leaf's
    A-bit update as a store (the G-stage must allow writing it)."""
    mem = GuestMemory(0x80000000, 1 * MiB)
    satp, _ = _one_page_table(mem, 0x80000000)
    seen = []

    def stage2(addr, access, implicit):
        seen.append((addr, access))
        return addr + 0x80000000

    root_gpa = ((satp & mmu.PPN_MASK) << 12) - 0x80000000
    guest_satp = (8 << 60) | (root_gpa >> 12)
    for level in (0, 1):       # the guest's tables point at guest-physical addresses
        slot = 0x80000000 + 0x1000 * level
        pte = mem.read_int(slot, 8)
        mem.write_int(slot, 8, pte - ((0x80000000 >> 12) << 10))
    leaf = 0x80002008
    mem.write_int(leaf, 8, mem.read_int(leaf, 8) - ((0x80000000 >> 12) << 10))
    pa, _ = mmu.walk(mem, guest_satp, 0x1008, mmu.LOAD, 0, False, False, mmu.WalkStats(),
                     stage2=stage2)
    assert pa == 0x80005008
    assert [a for a, k in seen] == [0x0, 0x1000, 0x2008, 0x2008, 0x5008]
    assert [k for a, k in seen] == [mmu.LOAD] * 3 + [mmu.STORE, mmu.LOAD]
    seen.clear()                # A is set now: no store the second time
    mmu.walk(mem, guest_satp, 0x1008, mmu.LOAD, 0, False, False, mmu.WalkStats(), stage2=stage2)
    assert [k for a, k in seen] == [mmu.LOAD] * 4


# -- typed exits, fed to a VM's table --------------------------------------------------

def test_every_exit_kind_has_exactly_one_handler(vm):
    kinds = {CsrAccess, Sret, Wfi, TlbFence, IllegalInsn, Ecall, PageFault, GuestException,
             HostInterrupt, MmioRead, MmioWrite}
    assert set(vm.handlers) == kinds
    with pytest.raises(ValueError, match="two strategies"):
        handler_table(vm.cpu, vm.memory, vm.io, vm.io)


def test_mmio_exits_reach_the_vms_devices(vm):
    uart = vm.UART_BASE
    vm.handlers[MmioWrite](vm, MmioWrite(0, uart, 1, ord("Q")))
    assert vm.vmm.console.text() == "Q"
    lsr = vm.handlers[MmioRead](vm, MmioRead(0, uart + 5, 1))
    assert lsr & 0x20                                          # THR empty
    assert vm.handlers[MmioRead](vm, MmioRead(0, 0x1200_0000, 4)) is None   # nothing there
    assert vm.ledger.details[("mmio_write", "uart")] == 1


def test_a_page_fault_exit_fills_the_shadow(vm):
    h = vm.vmm.hart
    vm.vmm.handle_exit(vm, PageFault(0x80200000, mmu.LOAD, 0x80400000))
    assert vm.ledger.counts["page_fault_shadow"] == 1 and h.pc == 0x80200000
    assert vm.memory.stats()["shadow_fills"] == 1


def test_a_fence_of_one_address_drops_only_what_it_covers(vm):
    """sfence.vma with an address drops that page's shadow (the other pages stay, as
    the spec lets them), and all of a guest superpage's 4 KiB pieces when it covers
    one; sfence.vma x0 drops everything."""
    g = vm.RAM_BASE
    root, l1, l0 = g + 0x100000, g + 0x101000, g + 0x102000
    page_a, page_b, big, big2 = g + 0x103000, g + 0x104000, g + 0x200000, g + 0x400000
    va_a, va_s = 0x1000_0000, 0x2000_0000           # a 4 KiB page and a 2 MiB superpage
    leaf = mmu.PTE_V | mmu.PTE_R | mmu.PTE_W | mmu.PTE_A | mmu.PTE_D

    def pte(pa, flags=leaf):
        return (pa >> 12) << 10 | flags
    vm.ram.write_int(root, 8, pte(l1, mmu.PTE_V))
    vm.ram.write_int(l1 + 0x80 * 8, 8, pte(l0, mmu.PTE_V))
    vm.ram.write_int(l0, 8, pte(page_a))
    vm.ram.write_int(l1 + 0x100 * 8, 8, pte(big))
    v, paging = vm.vcpu, vm.memory
    v.priv, v.satp = privilege.S, (8 << 60) | (root >> 12)

    def shadowed(va):
        """Where the shadow sends va (host-physical), or None."""
        satp = paging.tables.satp_for(paging._key())
        try:
            return mmu.walk(paging.tables.ram, satp, va, mmu.LOAD, privilege.U, False, False,
                            mmu.WalkStats(), update_ad=False)[0]
        except Trap:
            return None

    def host(gpa):
        return vm.host_base + gpa - g
    for va in (va_a, va_s, va_s + 0x1000):
        paging.fault(mmu.LOAD, va)
    assert [shadowed(va) for va in (va_a, va_s, va_s + 0x1000)] == \
        [host(page_a), host(big), host(big + 0x1000)]

    vm.ram.write_int(l0, 8, pte(page_b))               # remap the page, fence its address
    vm.vmm.hart.x[10] = va_a + 0x10
    vm.vmm.handle_exit(vm, vm.cpu.exit_from_trap(2, 0x12050073, 0x80200000, False))
    assert shadowed(va_a) is None
    assert shadowed(va_s) == host(big)                # another page: still shadowed
    paging.fault(mmu.LOAD, va_a)
    assert shadowed(va_a) == host(page_b)

    vm.ram.write_int(l1 + 0x100 * 8, 8, pte(big2))     # move the superpage, fence one piece
    paging.fence(va_s)
    assert shadowed(va_s) is None and shadowed(va_s + 0x1000) is None
    assert shadowed(va_a) == host(page_b)
    paging.fault(mmu.LOAD, va_s + 0x1000)
    assert shadowed(va_s + 0x1000) == host(big2 + 0x1000)

    paging.fence()
    assert shadowed(va_a) is None and shadowed(va_s + 0x1000) is None
    st = paging.stats()
    assert (st["shadow_page_flushes"], st["shadow_flushes"]) == (2, 1)
    assert vm.ledger.details[("sfence_vma", "page")] == 1


def test_a_remote_fence_is_bounded_whatever_size_the_guest_names(vm):
    """SBI remote sfence.vma: a few pages are fenced one by one; a range of more than
    FENCE_PAGES_MAX pages (a hostile 2^63 bytes among them) is one fence of everything,
    so the VMM's work per call stays bounded."""
    from popek.vmm import sbi
    x = vm.vmm.hart.x
    for size, pages, alls in ((3 * 4096, 3, 0), (1 << 63, 0, 1), (0, 0, 1),
                              ((sbi.FENCE_PAGES_MAX + 1) * 4096, 0, 1)):
        before = vm.memory.stats()
        x[17], x[16], x[10], x[11], x[12], x[13] = sbi.EXT_RFENCE, 1, 1, 0, 0x4000_0000, size
        sbi.handle(vm, x)
        after = vm.memory.stats()
        assert x[10] == sbi.SBI_SUCCESS
        assert after["shadow_page_flushes"] - before["shadow_page_flushes"] == pages, size
        assert after["shadow_flushes"] - before["shadow_flushes"] == alls, size


def test_a_page_fault_on_a_device_becomes_an_mmio_exit(vm):
    """The memory strategy names a device; the CPU strategy decodes the store at pc
    and the I/O strategy does it."""
    h = vm.vmm.hart
    pc = 0x80200000
    vm.ram.write_int(pc, 4, 0x00B50023)                        # sb a1, 0(a0)
    h.x[10], h.x[11] = vm.UART_BASE, ord("!")
    vm.vmm.handle_exit(vm, PageFault(pc, mmu.STORE, vm.UART_BASE))
    assert vm.vmm.console.text() == "!" and h.pc == pc + 4


def test_exit_from_trap_types(vm):
    from_trap = vm.cpu.exit_from_trap
    assert type(from_trap(2, 0x10529073, 0, False)) is CsrAccess         # csrw stvec
    assert type(from_trap(2, 0x10200073, 0, False)) is Sret
    assert type(from_trap(2, 0x10500073, 0, False)) is Wfi
    assert type(from_trap(2, 0x12000073, 0, False)) is TlbFence
    assert type(from_trap(2, 0x30200073, 0, False)) is IllegalInsn       # mret
    assert from_trap(13, 0x1234, 8, False) == PageFault(8, mmu.LOAD, 0x1234)
    assert from_trap(3, 5, 8, False) == GuestException(8, 3, 5)
    assert from_trap(7, 0, 8, True) == HostInterrupt(8, 7)


# -- strategies chosen and refused ----------------------------------------------------

def test_builder_refuses_unknown_strategies_and_bad_combinations():
    with pytest.raises(ConfigError, match="--paging inverted: unknown"):
        builder.check("trap-emulate", "inverted", "emulated")
    with pytest.raises(ConfigError, match="--vmm dbt: unknown"):
        builder.check("dbt", "shadow", "emulated")
    with pytest.raises(ConfigError, match="does not work with --vmm bt"):
        builder.check("bt", "nested", "emulated")
    with pytest.raises(ConfigError, match="does not work with --vmm trap-emulate"):
        builder.check("trap-emulate", "nested", "emulated")
    with pytest.raises(ConfigError, match="does not work with --vmm hw"):
        builder.check("hw", "shadow", "emulated")


def test_cli_strategy_errors_are_one_line(vmm_programs):
    def popek(*args):
        return subprocess.run([sys.executable, "-m", "popek", "run", *args],
                              capture_output=True, text=True)
    kernel = str(vmm_programs / "csr_loop.elf")
    for args, words in ((("--vmm", "trap-emulate", "--paging", "nested"), "--paging nested"),
                        (("--vmm", "trap-emulate", "--io", "passthrough"), "--io passthrough"),
                        (("--bios", "none", "--paging", "shadow"), "need --vmm")):
        r = popek("--kernel", kernel, *args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 1 and len(lines) == 1 and words in lines[0], r.stderr
    r = popek("--vmm", "trap-emulate", "--paging", "shadow", "--io", "emulated", "--kernel", kernel)
    assert r.returncode == 0, r.stderr


# -- no process-wide state --------------------------------------------------------------

def test_two_cost_models_in_one_process(vmm_programs):
    cheap = CostModel({"EMULATE_CSR": 10})
    hvs = [Hypervisor([VmConfig(kernel=str(vmm_programs / "csr_loop.elf"), memory=16 * MiB)],
                      ScriptedConsole(), costs=c) for c in (CostModel(), cheap)]
    for hv in hvs:
        hv.run()
        hv.close()
    default, cheaper = (hv.vms[0].ledger for hv in hvs)
    assert default.counts["csr"] == cheaper.counts["csr"] == 1000
    assert default.cycles["csr"] == 1000 * (80 + 150 + 60)
    assert cheaper.cycles["csr"] == 1000 * (80 + 10 + 60)


def test_isa_variants_decode_apart():
    """A variant without M (a change of table, not of the hart) decodes mul as
    illegal, while the base ISA, in the same process, still knows it."""
    no_m = isa.Isa("rv64iac-test", [i for i in isa.INSNS if i.kind != isa.MULDIV],
                   extensions="ACISU", isa_string="rv64iac_zicsr_zifencei")
    mul = 0x02B50533                                           # mul a0, a0, a1
    assert no_m.decode(mul).insn is isa.ILLEGAL
    assert isa.decode(mul).insn.name == "mul"
    assert no_m.misa != isa.BASE.misa


def li_a0_7(pc, d):
    """A rewrite for the test below: every `addi a0, zero, N` becomes `addi a0, zero, 7`."""
    if d.insn.name == "addi" and d.rd == 10 and d.rs1 == 0:
        return isa.Decoded(d.insn, d.word, d.length, 10, 0, 0, 7)
    return d


def test_a_rewrite_hook_changes_what_runs_under_both_engines_and_the_key(asm_build):
    """The translator's rewrite hook, as binary translation will use it: the rewritten
    instruction runs in both engines, and its flavour is part of the cache key."""
    name = f"{__name__}:li_a0_7"
    results = []
    for engine in ("interpret", "translate"):
        board = VirtBoard(BoardConfig(bios=None, kernel=str(asm_build / "trace_jump.elf"),
                                      engine=engine, compile_workers=0, max_instructions=2000),
                          console=ScriptedConsole())
        board.hart.set_rewrite(name)
        board.run()
        board.close()
        results.append(board.hart.x[10])
        assert board.hart.flavour == f"{isa.DEFAULT_VARIANT}+{name}"
    assert results == [7, 7]                                  # the program's li a0, 1 became 7
    d = isa.decode(0x00100513)
    key = translate._key
    assert key([(0, d)], 0, "rv64imac") != key([(0, d)], 0, f"rv64imac+{name}")


# -- --trace ----------------------------------------------------------------------------

def test_trace_prints_exactly_what_ran_in_order(asm_build, tmp_path):
    trace = tmp_path / "trace.txt"
    r = subprocess.run([sys.executable, "-m", "popek", "run", "--bios", "none", "--kernel",
                        str(asm_build / "trace_jump.elf"), "--trace", str(trace), "--stats"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = trace.read_text().splitlines()
    text = [ln.split(None, 1)[1] for ln in lines]
    assert "addi a1, zero, 2" not in text and "addi a2, zero, 3" not in text
    first = text.index("addi a0, zero, 1")
    jump = next(i for i in range(first, len(text)) if text[i].startswith("jal zero"))
    assert text[jump + 1] == "addi a3, zero, 4"
    ecall = text.index("ecall")
    assert text[ecall + 1].startswith("trap exc cause=11")
    retired = int(re.search(r"instructions\s+([\d,]+)", r.stderr).group(1).replace(",", ""))
    traps = sum(t.startswith("trap exc") for t in text)
    assert len(text) - traps == retired + traps               # a trapping one did not retire


def test_an_sbi_ipi_makes_ssip_pending(vm):
    """SBI IPI to hart 0 (the only hart): the vCPU's SSIP, taken when enabled."""
    from popek.vmm import sbi
    h, v = vm.vmm.hart, vm.vcpu
    h.x[17], h.x[16], h.x[10], h.x[11] = sbi.EXT_IPI, 0, 1, 0      # send_ipi(mask 1, base 0)
    v.mie, v.mstatus, v.stvec = csrs.MIP_SSIP, v.mstatus | csrs.MSTATUS_SIE, 0x80300000
    vm.vmm.handle_exit(vm, Ecall(0x80200000))
    assert h.x[10] == 0 and vm.ledger.details[("sbi", "ipi")] == 1
    assert vm.ledger.details[("interrupt", "software")] == 1       # injected after the exit
    assert v.scause == (1 << 63) | 1 and h.pc == 0x80300000


def test_a_rewrite_reaches_the_compile_worker(asm_build):
    """The background worker decodes a rewritten flavour as the hart does: it is told
    the flavour, imports the rewrite, and its code agrees with the interpreter."""
    name = f"{__name__}:li_a0_7"
    board = VirtBoard(BoardConfig(bios=None, kernel=str(asm_build / "smc.elf"), compile_workers=1,
                                  max_instructions=2_000_000), console=ScriptedConsole())
    board.hart.set_rewrite(name)
    board.run()
    board.hart.install_translations(wait=30)
    assert board.compiler.received > 0 and board.compiler.failed == 0
    assert all(key[0] == f"{isa.DEFAULT_VARIANT}+{name}" for key in board.code_cache.entries)
    board.close()
