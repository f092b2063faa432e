"""The command line: bad input gets one clear line and a non-zero exit, never a
traceback; good input runs (HTIF exit codes, --dtb-out)."""

from __future__ import annotations

import re
import subprocess
import sys

import fdt


def popek(*args, input=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "popek", *args], capture_output=True,
                          text=True, input=input, timeout=timeout)


def assert_one_line_error(r, *words):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_missing_file():
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", "/nonexistent/k.elf"),
                          "/nonexistent/k.elf", "no such file")


def test_text_file_is_not_an_image(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("this is not a kernel\n" * 20)
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", str(f)), "not an ELF")


def test_elf_for_another_architecture():
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", sys.executable),
                          "not RISC-V")


def test_truncated_elf(tmp_path, asm_build):
    f = tmp_path / "cut.elf"
    f.write_bytes((asm_build / "rv64i_alu.elf").read_bytes()[:100])
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", str(f)), "ELF")


def test_memory_too_small_for_the_images(opensbi, uboot_smode):
    assert_one_line_error(popek("run", "--bios", str(opensbi), "--kernel", str(uboot_smode),
                                "-m", "2M"), "does not fit in RAM", "-m")


def test_bad_memory_size():
    r = popek("run", "--bios", "none", "--kernel", "x", "-m", "lots")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "bad size" in r.stderr


def test_bad_drive_option(asm_build):
    r = popek("run", "--bios", "none", "--kernel", str(asm_build / "rv64i_alu.elf"),
              "--drive", "file=x.img,format=qcow2")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "raw" in r.stderr


def test_missing_disk_image(asm_build):
    assert_one_line_error(popek("run", "--bios", "none", "--kernel",
                                str(asm_build / "rv64i_alu.elf"), "--drive", "/nonexistent.img"),
                          "/nonexistent.img")


def test_htif_exit_code_becomes_popeks(asm_build):
    assert popek("run", "--bios", "none", "--kernel", str(asm_build / "rv64m.elf")).returncode == 0
    assert popek("run", "--bios", "none",
                 "--kernel", str(asm_build / "selftest_fail.elf")).returncode == 5


def test_stats_are_printed(asm_build):
    r = popek("run", "--bios", "none", "--kernel", str(asm_build / "paging.elf"), "--stats")
    assert r.returncode == 0
    for key in ("instructions", "mips", "blocks_cached", "tlb_entries", "page_walks",
                "code_cache_compiled"):
        assert key in r.stderr


def test_code_cache_option(asm_build, tmp_path):
    args = ("run", "--bios", "none", "--kernel", str(asm_build / "smc.elf"), "--stats")
    r = popek(*args, "--code-cache", str(tmp_path))
    assert r.returncode == 0 and str(tmp_path) in r.stderr
    assert list(tmp_path.glob("translations-*.marshal"))
    r = popek(*args, "--code-cache", "none")
    assert r.returncode == 0 and "in memory" in r.stderr


def test_compile_workers_option(asm_build):
    args = ("run", "--bios", "none", "--kernel", str(asm_build / "smc.elf"), "--stats")
    r = popek(*args, "--compile-workers", "1")
    assert r.returncode == 0 and "compile_workers" in r.stderr
    r = popek(*args, "--compile-workers", "0")
    assert r.returncode == 0 and "compile_workers" not in r.stderr
    assert_one_line_error(popek(*args, "--compile-workers", "-1"), "--compile-workers")


def test_profile_reports_the_translator(asm_build):
    """--profile: MIPS, block-cache hits and misses, blocks translated, invalidations
    (smc.elf rewrites its own code 100 times) and the top blocks, by engine."""
    r = popek("run", "--bios", "none", "--kernel", str(asm_build / "smc.elf"), "--profile",
              "--compile-workers", "0", "--code-cache", "none")
    assert r.returncode == 0, r.stderr
    out = r.stderr

    def numbers(pattern):
        m = re.search(pattern, out)
        assert m, (pattern, out)
        return [float(g.replace(",", "")) for g in m.groups()]

    insns, mips = numbers(r"([\d,]+) instructions in [\d.]+ s \(([\d.]+) MIPS")
    assert insns > 1000 and mips > 0
    dispatches, hits, misses = numbers(r"block dispatches ([\d,]+): cache hits ([\d,]+), "
                                       r"misses ([\d,]+)")
    assert hits + misses == dispatches and hits > 0 and misses > 0
    built, translated, _, invalidated = numbers(
        r"blocks built ([\d,]+), translated ([\d,]+) \(([\d,]+) self-loops\), "
        r"invalidated ([\d,]+)")
    assert translated >= 1 and invalidated >= 100 and built > invalidated
    top = out.split("blocks by time:", 1)[1].splitlines()[2:]
    assert any(" translated " in row for row in top) and any(" interp " in row for row in top)


def test_instruction_budget(asm_build):
    r = popek("run", "--bios", "none", "--kernel", str(asm_build / "rv64m.elf"),
              "--max-instructions", "10")
    assert r.returncode == 124 and "--max-instructions" in r.stderr


def test_dtb_out_describes_the_board(tmp_path, opensbi, uboot_smode):
    out = tmp_path / "virt.dtb"
    img = tmp_path / "d.img"
    img.write_bytes(bytes(4096))
    r = popek("run", "--bios", str(opensbi), "--kernel", str(uboot_smode), "-m", "256M",
              "--drive", str(img), "--append", "console=ttyS0", "--dtb-out", str(out))
    assert r.returncode == 0, r.stderr
    tree = fdt.parse_dtb(out.read_bytes())
    assert tree.get_property("reg", "/memory@80000000").data == [0, 0x80000000, 0, 256 << 20]
    assert tree.get_property("riscv,isa", "/cpus/cpu@0").value == "rv64imac_zicsr_zifencei"
    assert tree.get_property("bootargs", "/chosen").value == "console=ttyS0"
    assert tree.exist_node("/soc/virtio_mmio@10001000")
    assert not tree.exist_node("/soc/virtio_mmio@10002000")      # only real devices
    assert tree.exist_node("/soc/serial@10000000")
    assert tree.exist_node("/soc/plic@c000000")
    assert tree.exist_node("/soc/clint@2000000")


def test_no_bios_and_no_kernel():
    assert_one_line_error(popek("run", "--bios", "none"), "--kernel")
