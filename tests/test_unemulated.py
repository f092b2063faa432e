"""popek finishing instructions PVM's emulator cannot (no KVM needed: a fake vCPU)."""

from __future__ import annotations

import mmap
from types import SimpleNamespace

from popek.devices.memory import GuestMemory
from popek.kvm import unemulated


class FakeVcpu:
    def __init__(self, ram, rip, **regs):
        names = unemulated.REG_NAMES
        self.regs = SimpleNamespace(rip=rip, **{n: regs.get(n, 0) for n in names})
        self.fpu = SimpleNamespace(mxcsr=0x1F80)
        self.events = SimpleNamespace(exc_injected=0, exc_nr=0, exc_has_error_code=0,
                                      exc_pending=0)
        self.sregs = SimpleNamespace(fs=SimpleNamespace(base=0), gs=SimpleNamespace(base=0x3000))

    def get_regs(self):
        return self.regs

    def set_regs(self, r):
        self.regs = r

    def translate(self, addr):
        return addr if addr < 1 << 20 else None

    def get_fpu(self):
        return self.fpu

    def set_fpu(self, f):
        self.fpu = f

    def get_sregs(self):
        return self.sregs

    def get_vcpu_events(self):
        return self.events

    def set_vcpu_events(self, e):
        self.events = e


def ram_with(code: bytes, at: int = 0x1000):
    ram = GuestMemory(0, 1 << 20, mmap.mmap(-1, 1 << 20))
    ram.write(at, code)
    return ram


def test_ldmxcsr_through_sib_and_disp8():
    ram = ram_with(bytes.fromhex("0fae542404"))           # ldmxcsr 0x4(%rsp)
    ram.write_int(0x8004, 4, 0x9FC0)
    v = FakeVcpu(ram, 0x1000, rsp=0x8000)
    assert unemulated.finish(v, ram) == "ldmxcsr"
    assert v.fpu.mxcsr == 0x9FC0 and v.regs.rip == 0x1005


def test_stmxcsr_gs_relative_with_rex_base():
    ram = ram_with(bytes.fromhex("65410f5e") + b"")        # not ours: 0f 5e is not 0f ae
    v = FakeVcpu(ram, 0x1000)
    assert unemulated.finish(v, ram) is None and v.regs.rip == 0x1000
    ram = ram_with(bytes.fromhex("65410fae5908"))          # stmxcsr %gs:0x8(%r9)
    v = FakeVcpu(ram, 0x1000, r9=0x100)
    v.fpu.mxcsr = 0x1234
    assert unemulated.finish(v, ram) == "stmxcsr"
    assert ram.read_int(0x3000 + 0x100 + 8, 4) == 0x1234 and v.regs.rip == 0x1006


def test_int3_injects_a_breakpoint_after_it_and_fwait_is_stepped_over():
    ram = ram_with(b"\xcc\x9b")
    v = FakeVcpu(ram, 0x1000)
    assert unemulated.finish(v, ram) == "int3"
    assert v.regs.rip == 0x1001 and (v.events.exc_injected, v.events.exc_nr) == (1, 3)
    assert unemulated.finish(v, ram) == "fwait" and v.regs.rip == 0x1002


def test_operands_outside_ram_are_left_as_failures():
    ram = ram_with(bytes.fromhex("0fae1425000000ff"))       # ldmxcsr 0xff000000 (absolute)
    v = FakeVcpu(ram, 0x1000)
    assert unemulated.finish(v, ram) is None and v.regs.rip == 0x1000
