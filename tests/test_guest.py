"""popek's own guest OS (guests/) on the simulated machine, bare metal (OpenSBI +
our kernel): its self-tests, its benchmarks, and what it wrote to the disk."""

from __future__ import annotations

import re

import pytest

from popek.console import ScriptedConsole
from popek.riscv.board import BoardConfig, DriveSpec, VirtBoard

pytestmark = pytest.mark.slow

BENCHMARKS = ["null_syscall", "page_fault", "map_unmap", "context_switch", "rdtime_loop",
              "compute_loop", "memory_touch", "blk_seq_read", "blk_seq_write", "blk_4k_read",
              "console_write", "console_uart"]          # (console_virtio: skipped, no virtio console here)
SELFTESTS = ["fork_wait", "demand_paging", "copy_on_write", "bad_access_kills", "preemption",
             "many_processes", "block_io", "time", "fp_context"]
BENCH_LINE = re.compile(r"^BENCH (\w+) iters=(\d+) cycles=(\d+) time_ns=(\d+)\r?$", re.M)
INTEGRITY_SECTOR, INTEGRITY_SECTORS = 2048, 16     # guests/user/main.c


def integrity_pattern() -> bytes:
    return bytes(((INTEGRITY_SECTOR + s) * 31 + i * 7 + 0x5A) & 0xFF
                 for s in range(INTEGRITY_SECTORS) for i in range(512))


def boot(opensbi, kernel, disk=None, append="", max_instructions=300_000_000, cpu="rv64gc"):
    con = ScriptedConsole()
    cfg = BoardConfig(bios=str(opensbi), kernel=str(kernel), append=append,
                      drives=[DriveSpec(str(disk))] if disk else [],
                      max_instructions=max_instructions, cpu=cpu)
    board = VirtBoard(cfg, console=con)
    code = board.run()
    board.close()
    return code, con.text(), board


@pytest.fixture
def disk(tmp_path):
    img = tmp_path / "guest.img"
    img.write_bytes(bytes(4 << 20))
    return img


def test_all_selftests_and_benchmarks(opensbi, guest_build, disk):
    code, out, board = boot(opensbi, guest_build / "kernel.elf", disk)
    assert "popek guest kernel (native)" in out
    assert "128 MiB RAM" in out                              # read from the device tree
    for name in SELFTESTS:
        assert f"TEST {name} ok" in out, out[-3000:]
    assert "SELFTEST PASS 9/9" in out
    benches = {m.group(1): m for m in BENCH_LINE.finditer(out)}
    assert sorted(benches) == sorted(BENCHMARKS)
    for name, m in benches.items():
        assert int(m.group(2)) > 0 and int(m.group(3)) > 0 and int(m.group(4)) > 0, name
    assert code == 0
    # The data-integrity test's pattern is on the host file, byte for byte.
    data = disk.read_bytes()
    start = INTEGRITY_SECTOR * 512
    assert data[start:start + INTEGRITY_SECTORS * 512] == integrity_pattern()
    assert data[4096 * 512:4096 * 512 + 8] == bytes(range(8))    # blk_seq_write's data
    assert board.drives[0].stats["flushes"] >= 2


def test_a_failing_selftest_fails_the_run(opensbi, guest_build):
    """No disk: the block I/O self-test fails, and the SBI shutdown reports failure."""
    code, out, _ = boot(opensbi, guest_build / "kernel.elf", append="selftest")
    assert "TEST block_io FAIL" in out
    assert "SELFTEST FAIL 8/9" in out
    assert code == 1


FP_COUNTS = re.compile(r"fp_context: (\d+) first uses, (\d+) restores, (\d+) saves")


def test_fp_state_is_switched_lazily(opensbi, guest_build):
    """The guest kernel's lazy FP switching (guests/kernel/proc.c), on RV64GC: two
    processes' FP registers and fcsr survive ~50 switches; each process's first FP
    instruction trapped once; registers were loaded at every switch between them,
    and saved only when they had changed.  Without F and D the test is skipped."""
    code, out, _ = boot(opensbi, guest_build / "kernel.elf", append="selftest")
    assert "TEST fp_context ok" in out, out[-1500:]
    firsts, restores, saves = map(int, FP_COUNTS.search(out).groups())
    assert firsts == 2 and restores >= 50 and 2 <= saves < restores // 2
    code, out, _ = boot(opensbi, guest_build / "kernel.elf", append="selftest", cpu="rv64imac")
    assert "TEST fp_context skipped: the CPU has no F and D" in out
    assert "SELFTEST FAIL 7/8" in out                 # block_io: no disk; the rest passed


def test_command_line_selects_programs(opensbi, guest_build, disk):
    code, out, _ = boot(opensbi, guest_build / "kernel.elf", disk,
                        append="bench=null_syscall,compute_loop")
    assert code == 0
    assert sorted(m.group(1) for m in BENCH_LINE.finditer(out)) == ["compute_loop", "null_syscall"]
    assert "SELFTEST" not in out


def test_paravirtual_build_needs_the_vmm(opensbi, guest_build):
    """The PV kernel talks to popek's VMM by hypercall; on bare metal (OpenSBI) it
    must refuse to start, clearly.  Running it under the VMM is issue 4's test."""
    code, out, _ = boot(opensbi, guest_build / "kernel-pv.elf")
    assert "runs only under popek's VMM" in out
    assert code == 1
