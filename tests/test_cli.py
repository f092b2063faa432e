"""The command line: bad input gets one clear line and a non-zero exit, never a
traceback; good input runs (HTIF exit codes, --dtb-out)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import fdt
import pytest


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
    assert tree.get_property("riscv,isa", "/cpus/cpu@0").value == "rv64imafdc_zicsr_zifencei"
    assert tree.get_property("bootargs", "/chosen").value == "console=ttyS0"
    assert tree.exist_node("/soc/virtio_mmio@10001000")
    assert tree.exist_node("/soc/virtio_mmio@10008000")      # all eight slots, as QEMU
    assert tree.exist_node("/soc/serial@10000000")
    assert tree.exist_node("/soc/plic@c000000")
    assert tree.exist_node("/soc/clint@2000000")


def test_no_bios_and_no_kernel():
    assert_one_line_error(popek("run", "--bios", "none"), "--kernel")


# -- hostile images and options (docs/errors.md lists every one with its message) --------

def popek_limited(*args, address_space=1 << 30, timeout=120):
    """popek under an address-space limit: a huge allocation fails fast instead of
    taking the host's memory (and shows as a MemoryError traceback)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    return subprocess.run([sys.executable, "-m", "popek", *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit)


def elf_with(asm_build, tmp_path, name, *patches):
    """rv64i_alu.elf with (offset, struct format, value) patches; offsets ``("ph", i, field)``
    name a field of program header i (p_offset, p_paddr, p_filesz, p_memsz)."""
    import struct
    data = bytearray((asm_build / "rv64i_alu.elf").read_bytes())
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    fields = {"p_offset": 8, "p_paddr": 24, "p_filesz": 32, "p_memsz": 40}
    for where, fmt, value in patches:
        if isinstance(where, tuple):
            _, i, fieldname = where
            where = phoff + 56 * i + fields[fieldname]
        struct.pack_into(fmt, data, where, value)
    f = tmp_path / name
    f.write_bytes(bytes(data))
    return str(f)


def test_elf_segment_claiming_more_memory_than_exists(asm_build, tmp_path):
    for memsz in (2 ** 62, 2 ** 64 - 1):
        elf = elf_with(asm_build, tmp_path, "huge.elf", (("ph", 1, "p_memsz"), "<Q", memsz))
        assert_one_line_error(popek_limited("run", "--bios", "none", "--kernel", elf),
                              "segment 1", "does not fit in RAM")


def test_elf_segment_of_2_gib_is_refused_before_any_allocation(asm_build, tmp_path):
    """A 9 KB file whose segment claims 2 GiB: refused without building 2 GiB of zeros
    (under a 1 GiB address-space limit, building them is a MemoryError)."""
    elf = elf_with(asm_build, tmp_path, "2g.elf", (("ph", 1, "p_memsz"), "<Q", 2 << 30))
    assert_one_line_error(popek_limited("run", "--bios", "none", "--kernel", elf),
                          "does not fit in RAM", "-m")


def test_elf_segment_past_the_end_of_the_file(asm_build, tmp_path):
    elf = elf_with(asm_build, tmp_path, "cut.elf", (("ph", 1, "p_filesz"), "<Q", 0x10000),
                   (("ph", 1, "p_memsz"), "<Q", 0x10000))
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", elf),
                          "segment 1 extends past the end of the file")


def test_elf_segment_with_more_file_than_memory(asm_build, tmp_path):
    elf = elf_with(asm_build, tmp_path, "fs.elf", (("ph", 2, "p_filesz"), "<Q", 0x1000),
                   (("ph", 2, "p_memsz"), "<Q", 0x800))
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", elf), "segment 2",
                          "file size")


def test_elf_segments_that_overlap(asm_build, tmp_path):
    """Overlapping segments could make a small file write RAM over and over."""
    elf = elf_with(asm_build, tmp_path, "overlap.elf", (("ph", 2, "p_paddr"), "<Q", 0x80000000))
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", elf,
                                "--max-instructions", "100000", timeout=30),
                          "segments 1 and 2 overlap")


def test_big_endian_and_unknown_machine_elfs(asm_build, tmp_path):
    big = elf_with(asm_build, tmp_path, "be.elf", (5, "B", 2))
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", big), "big-endian ELF")
    odd = elf_with(asm_build, tmp_path, "odd.elf", (0x12, "<H", 0x9999))
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", odd),
                          "machine 0x9999", "not RISC-V")


def test_an_endless_file_is_not_read(tmp_path):
    """/dev/zero as an image: refused at once, not read until the host runs out; a FIFO:
    refused, not opened (which would wait for a writer for ever)."""
    import os
    assert_one_line_error(popek_limited("run", "--bios", "none", "--kernel", "/dev/zero",
                                        timeout=60), "/dev/zero", "not a regular file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", str(fifo), timeout=30),
                          "not a regular file")


def test_memory_sizes_beyond_what_popek_gives(asm_build):
    kernel = str(asm_build / "rv64i_alu.elf")
    for size in ("1T", "64T", "99999999T"):
        assert_one_line_error(popek_limited("run", "--bios", "none", "--kernel", kernel,
                                            "-m", size), "-m", "at most 16 GiB")
        assert_one_line_error(popek_limited("run", "--vmm", "trap-emulate", "--kernel", kernel,
                                            "-m", size), "-m", "at most 16 GiB")
        assert_one_line_error(popek_limited("run", "--vmm", "trap-emulate", "--kernel", kernel,
                                            "--vm", f"kernel={kernel},memory={size}"),
                              "vm1", "at most 16 GiB")


def test_memory_size_zero_is_refused_not_replaced(asm_build):
    kernel = str(asm_build / "rv64i_alu.elf")
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", kernel, "-m", "0"),
                          "at least 1 MiB")
    assert_one_line_error(popek("run", "--vmm", "trap-emulate", "--kernel", kernel, "-m", "0",
                                "--max-instructions", "1000"), "at least 4")


def test_memory_more_than_the_host_has(asm_build, monkeypatch, capsys):
    """Checked against the host's physical memory before anything is built (the
    host here is made to have 64 MiB)."""
    from popek import cli
    monkeypatch.setattr(cli, "host_memory", lambda: 64 << 20, raising=False)
    kernel = str(asm_build / "rv64i_alu.elf")
    for argv in (["--bios", "none", "--kernel", kernel, "-m", "128M"],
                 ["--vmm", "trap-emulate", "--kernel", kernel, "-m", "32M",
                  "--vm", f"kernel={kernel},memory=48M"],
                 ["--backend", "kvm", "--kernel", "/nonexistent/bzImage", "-m", "96M"]):
        assert cli.main(["run", *argv, "--max-instructions", "1000"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "this host's 64 MiB of RAM" in err, err


def test_nonsense_numbers(asm_build):
    kernel = str(asm_build / "rv64i_alu.elf")
    bare = ("run", "--bios", "none", "--kernel", kernel)
    for value in ("-5", "0"):
        assert_one_line_error(popek(*bare, "--max-instructions", value), "--max-instructions")
    for value in ("0", "-3", "99999999999999999999"):
        assert_one_line_error(popek(*bare, "--icount-ips", value), "--icount-ips")
    for value in ("-1", "0", "nan", "inf"):
        assert_one_line_error(popek("run", "--backend", "kvm", "--kernel", "/nonexistent",
                                    "--timeout", value), "--timeout")


def test_unusable_output_files_are_refused_before_the_guest_starts(tmp_path):
    """--dtb-out and --trace to a missing directory or to a directory: one line, before
    the images are even looked at (the kernel here does not exist)."""
    for option in ("--dtb-out", "--trace"):
        for path, words in ((str(tmp_path / "no" / "x"), ("no such directory",)),
                            (str(tmp_path), ("is a directory",))):
            assert_one_line_error(popek("run", "--bios", "none", "--kernel", "/nonexistent",
                                        option, path), option, *words)


def test_options_that_would_be_ignored_are_refused(asm_build, tmp_path):
    kernel = str(asm_build / "rv64i_alu.elf")
    vmm = ("run", "--vmm", "trap-emulate", "--kernel", kernel, "--max-instructions", "1000")
    assert_one_line_error(popek(*vmm, "--dtb-out", str(tmp_path / "x.dtb")), "--dtb-out")
    assert_one_line_error(popek(*vmm, "--trace", str(tmp_path / "x.trace")), "--trace")
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", kernel, "--clock", "host",
                                "--icount-ips", "1000"), "--icount-ips")
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", kernel, "--clock", "host",
                                "--icount-idle", "sleep"), "--icount-idle")
    assert not list(tmp_path.iterdir())


def test_make_run_boots_debians_linux_under_the_vmm():
    """The front door (README): `make run` boots Debian's riscv64 kernel as a guest of
    the trap-and-emulate VMM with the quick command line popek's tests know, and prints
    the statistics and the exit ledger; U-Boot is `make run-uboot`."""
    from popek.linux import debian
    root = Path(__file__).resolve().parent.parent

    def dry_run(target):
        r = subprocess.run(["make", "-n", "-C", str(root), target], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.replace("\\\n", " ").splitlines()     # (continued lines joined)
        return [line for line in lines if "popek run" in line][0]
    run = dry_run("run")
    assert "--vmm trap-emulate" in run and "vmlinux-*-riscv64" in run and "--stats" in run
    assert debian.QUICK_BOOT in run and "--initrd build/initrd-riscv64.cpio" in run
    assert "uboot.elf" in dry_run("run-uboot")


def test_kernel_command_line_that_cannot_be_encoded(asm_build, tmp_path):
    """Bytes that are not UTF-8 (and, for the device tree, anything but printable ASCII)
    in --append or a --vm's append=: one line, not a traceback from the tree builder."""
    kernel = str(asm_build / "rv64i_alu.elf")
    out = str(tmp_path / "x.dtb")
    bare = ("run", "--bios", "none", "--kernel", kernel, "--dtb-out", out)
    assert_one_line_error(popek(*bare, b"--append", b"console=\xff"), "--append")
    assert_one_line_error(popek(*bare, "--append", "café"), "--append", "ASCII")
    assert_one_line_error(popek(*bare, "--append", "a\x01b"), "--append")
    assert_one_line_error(popek("run", "--vmm", "trap-emulate", "--kernel", kernel,
                                "--vm", f"kernel={kernel},append=é"), "append", "ASCII")
    assert_one_line_error(popek("run", "--backend", "kvm", "--kernel", "/nonexistent",
                                b"--append", b"\xff"), "--append")


def _functions_table(stderr: str) -> dict[str, int]:
    """--profile's functions table: instructions by function."""
    table = stderr.split("functions by time", 1)[1].split("top 15 blocks", 1)[0]
    return {m.group(1): int(m.group(2).replace(",", ""))
            for m in re.finditer(r"^  (\S.*?)\s+[\d,]+\s+([\d,]+)\s+[\d.]+\s+[\d.]+%$",
                                 table, re.M)}


def test_profile_names_functions_from_the_image_and_a_symbol_map(asm_build, tmp_path):
    """--profile sums blocks by guest function: the ELF image's own symbols (skips.S's
    labels), and those of --profile-symbols (a map as /proc/kallsyms prints it)."""
    elf = str(asm_build / "skips.elf")
    r = popek("run", "--bios", "none", "--kernel", elf, "--profile")
    assert r.returncode == 0, r.stderr
    fns = _functions_table(r.stderr)
    assert fns["tests_begin"] > 2000 and fns["trap_handler"] == 12, fns    # (the loops)
    hot = min(int(line.split()[0], 16) for line in r.stderr.splitlines()
              if "<tests_begin>" in line and "andi t0, s4, 1" in line)
    symbol_map = tmp_path / "kallsyms"
    symbol_map.write_text(f"{hot:016x} t nested_skips\n{hot + 0x6e:016x} T trap_loop [mod]\n"
                          "ffffffff80000000 D some_data\n0000000000000000 t hidden\n")
    r = popek("run", "--bios", "none", "--kernel", elf, "--profile",
              "--profile-symbols", str(symbol_map))
    assert r.returncode == 0, r.stderr
    fns = _functions_table(r.stderr)
    # From the first loop's start to the second's `la`: the loop's 1,984 instructions
    # and the checks after it; from there, the second loop's 99 x 5 and more.
    assert 1984 < fns["nested_skips"] < 2100 and fns["trap_loop [mod]"] > 99 * 5, fns
    assert "some_data" not in r.stderr and "hidden" not in r.stderr
    # What --profile-symbols is given, it must read, and only with --profile.
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", elf, "--profile",
                                "--profile-symbols", str(tmp_path / "none")),
                          "cannot read symbols")
    (tmp_path / "empty").write_text("not a symbol\n")
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", elf, "--profile",
                                "--profile-symbols", str(tmp_path / "empty")), "no code symbols")
    (tmp_path / "hidden").write_text("0000000000000000 T a\n0000000000000000 t b\n")
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", elf, "--profile",
                                "--profile-symbols", str(tmp_path / "hidden")), "as root")
    stripped = tmp_path / "stripped.elf"
    subprocess.run(["riscv64-unknown-elf-strip", "-o", str(stripped), elf], check=True)
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", elf, "--profile",
                                "--profile-symbols", str(stripped)), "without a symbol table")
    with open(tmp_path / "big", "wb") as f:
        f.truncate(65 << 20)
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", elf, "--profile",
                                "--profile-symbols", str(tmp_path / "big")), "no symbol map")
    # nm -S (with sizes): the loop's block starts in `tiny`, the next block after its end
    (tmp_path / "sized").write_text(f"{hot:016x} 0000000000000002 T tiny\n")
    r = popek("run", "--bios", "none", "--kernel", elf, "--profile",
              "--profile-symbols", str(tmp_path / "sized"))
    fns = _functions_table(r.stderr)
    assert r.returncode == 0 and fns["tiny"] > 1000 and "(no symbol)" in fns, r.stderr
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", elf,
                                "--profile-symbols", str(symbol_map)), "--profile-symbols",
                          "--profile")


def test_profile_and_engine_options_where_they_would_be_ignored(asm_build, vmm_programs):
    elf = str(vmm_programs / "csr_loop.elf")
    assert_one_line_error(popek("run", "--vmm", "trap-emulate", "--kernel", elf, "--profile"),
                          "--profile", "--vmm")
    assert_one_line_error(popek("run", "--backend", "kvm", "--kernel", elf, "--engine",
                                "interpret"), "--engine", "kvm")
    assert_one_line_error(popek("run", "--backend", "kvm", "--kernel", elf, "--compile-workers",
                                "0"), "--compile-workers", "kvm")
    assert_one_line_error(popek("run", "--backend", "kvm", "--kernel", elf, "--cpu", "rv64gc"),
                          "--cpu", "kvm")


def test_cpu_without_f_and_d_says_so_in_the_device_tree(asm_build, tmp_path):
    out = tmp_path / "virt.dtb"
    r = popek("run", "--cpu", "rv64imac", "--bios", "none", "--kernel",
              str(asm_build / "rv64i_alu.elf"), "--dtb-out", str(out))
    assert r.returncode == 0, r.stderr
    tree = fdt.parse_dtb(out.read_bytes())
    assert tree.get_property("riscv,isa", "/cpus/cpu@0").value == "rv64imac_zicsr_zifencei"
    assert tree.get_property("riscv,isa-extensions", "/cpus/cpu@0").data == \
        ["i", "m", "a", "c", "zicsr", "zifencei"]


def test_an_idle_guest_nothing_can_wake_says_so(vmm_programs):
    r = popek("run", "--bios", "none", "--kernel", str(vmm_programs / "idle_forever.elf"),
              input="")
    assert r.returncode == 124
    assert "waiting for an interrupt nothing can raise" in r.stderr


def test_a_drive_that_is_not_a_file_is_one_line(asm_build, tmp_path):
    """A FIFO as a disk blocked in open() for ever (and the terminal was raw already)."""
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    kernel = str(asm_build / "rv64i_alu.elf")
    for spec in (f"file={fifo},readonly=on", str(fifo), str(tmp_path)):
        assert_one_line_error(popek("run", "--bios", "none", "--kernel", kernel, "--drive", spec,
                                    timeout=60), "not a regular file")


def test_initrd_is_placed_as_qemu_places_it(asm_build, tmp_path):
    """kernel + min(RAM / 2, 128 MiB), and /chosen says where (hw/riscv/boot.c)."""
    rd = tmp_path / "initrd.cpio"
    rd.write_bytes(b"070701" + bytes(4090))
    out = tmp_path / "virt.dtb"
    kernel = str(asm_build / "rv64i_alu.elf")
    r = popek("run", "--bios", "none", "--kernel", kernel, "--initrd", str(rd), "-m", "128M",
              "--dtb-out", str(out))
    assert r.returncode == 0, r.stderr
    tree = fdt.parse_dtb(out.read_bytes())
    start = tree.get_property("linux,initrd-start", "/chosen").data
    end = tree.get_property("linux,initrd-end", "/chosen").data
    assert start == [0, 0x80000000 + (64 << 20)] and end == [0, 0x80000000 + (64 << 20) + 4096]
    big = tmp_path / "big.cpio"
    big.write_bytes(bytes(65 << 20))
    assert_one_line_error(popek("run", "--bios", "none", "--kernel", kernel, "--initrd",
                                str(big), "-m", "128M"), "initrd", "does not fit")


def test_smp_counts_out_of_range_or_ignored_are_one_line(asm_build, vmm_programs):
    bare = ("run", "--bios", "none", "--kernel", str(asm_build / "rv64m.elf"))
    assert_one_line_error(popek(*bare, "--smp", "9"), "--smp takes 1 to 8")
    assert_one_line_error(popek(*bare, "--smp", "0"), "--smp takes 1 to 8")
    vm = f"kernel={vmm_programs / 'smp_guest.elf'}"
    for bad, words in (("smp=9", ("1 to 8", "got 9")), ("smp=99999", ("1 to 8", "99999")),
                       ("smp=two", ("give a number",)), ("smp=", ("give a number",))):
        assert_one_line_error(popek("run", "--vmm", "trap-emulate", "--vm", f"{vm},{bad}"),
                              *words)
    assert_one_line_error(popek("run", "--vmm", "trap-emulate", "--smp", "2", "--vm", vm),
                          "give each --vm its own smp=N")


@pytest.mark.parametrize("args, words", [
    (["--device", "virtio-gpu-pci"], ["popek has virtio-net-pci"]),
    (["--device", "e1000"], ["needs netdev=ID"]),
    (["--device", "virtio-net-pci,netdev=n9"], ["no --netdev has that id"]),
    (["--netdev", "switch,id=n0", "--device", "e1000,netdev=n0", "--device",
      "virtio-net-pci,netdev=n0"], ["used by two NICs"]),
    (["--nic", "user"], ["popek has switch, tap, socket, loopback"]),
    (["--nic", "switch,mac=01:00:00:00:00:01"], ["multicast"]),
    (["--device", "virtio-rng-pci,addr=3", "--device", "virtio-serial-pci,addr=3"],
     ["PCI slot 3 is taken"]),
    (["--device", "virtio-serial-pci", "--device", "virtio-serial-device"],
     ["one virtio console"]),
])
def test_bad_device_and_network_options_are_one_line(asm_build, args, words):
    r = popek("run", "--bios", "none", "--kernel", str(asm_build / "rv64i_alu.elf"), *args)
    assert r.returncode == 1
    assert_one_line_error(r, *words)
