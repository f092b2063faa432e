"""The KVM backend on real (or PVM) /dev/kvm: tiny x86-64 guests, exact exit
counts, the shared UART model, and kvm-check.  Skipped, with the reason, on a
host without a usable /dev/kvm."""

from __future__ import annotations

import subprocess
import sys

import pytest

from popek.console import ScriptedConsole
from popek.kvm.system import Kvm, KvmUnavailable
from tests.conftest import ROOT


def kvm_usable() -> str | None:
    try:
        Kvm().close()
        return None
    except KvmUnavailable as e:
        return str(e)


REASON = kvm_usable()
needs_kvm = pytest.mark.skipif(REASON is not None, reason=f"no usable KVM: {REASON}")


@pytest.fixture(scope="module")
def x86_guests():
    r = subprocess.run(["make", "-s", "-C", str(ROOT / "guests" / "x86")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"building the x86 test guests failed:\n{r.stdout}{r.stderr}")
    return ROOT / "guests" / "x86" / "build"


def test_missing_device_is_one_clear_error():
    with pytest.raises(KvmUnavailable, match="does not exist"):
        Kvm("/nonexistent/kvm")


@needs_kvm
def test_tiny_guest_prints_and_exits_with_exact_exit_counts(x86_guests):
    from popek.kvm.machine import X86Machine
    con = ScriptedConsole()
    m = X86Machine(str(x86_guests / "hello.elf"), console=con)
    try:
        code = m.run(max_exits=10_000)
    finally:
        m.close()
    line = "hello from x86-64 long mode under KVM\n"
    assert con.text() == line                        # through the shared 16550 model
    assert code == 0 and m.exit_reason == "debug exit"
    assert m.ledger.details[("port_io_out", "0x510")] == 1000      # N outs, N exits
    assert m.ledger.details[("port_io_out", "0x3f8")] == len(line)
    assert m.ledger.counts["port_io_out"] == 1000 + len(line) + 1


@needs_kvm
def test_cli_kvm_backend(x86_guests):
    r = subprocess.run([sys.executable, "-m", "popek", "run", "--backend", "kvm",
                        "--kernel", str(x86_guests / "hello.elf"), "--stats"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "hello from x86-64 long mode under KVM" in r.stdout
    assert "port_io_out" in r.stderr


@needs_kvm
def test_kvm_check_reports_measured_costs(x86_guests):
    r = subprocess.run([sys.executable, "-m", "popek", "kvm-check"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "API version 12" in r.stdout
    assert "implementation" in r.stdout
    for what in ("port-I/O exit", "CPUID", "guest instruction"):
        line = next(ln for ln in r.stdout.splitlines() if what in ln)
        assert float(line.split()[-2]) > 0, line


def test_wrong_architecture_for_kvm(asm_build):
    r = subprocess.run([sys.executable, "-m", "popek", "run", "--backend", "kvm",
                        "--kernel", str(asm_build / "rv64m.elf")], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert ("not x86-64" in r.stderr) or ("KVM" in r.stderr or "kvm" in r.stderr)
