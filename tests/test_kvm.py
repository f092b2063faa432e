"""The KVM backend on real (or PVM) /dev/kvm: tiny x86-64 guests, exact exit
counts, the shared UART and virtio models on both transports, the Linux boot
protocol, kvm-check and calibrate.  Skipped, with the reason, on a host without
a usable /dev/kvm; the full Debian boot to a shell needs hardware KVM."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest

from popek.console import ScriptedConsole
from popek.kvm.system import Kvm, KvmUnavailable


def kvm_usable() -> str | None:
    try:
        Kvm().close()
        return None
    except KvmUnavailable as e:
        return str(e)


REASON = kvm_usable()
needs_kvm = pytest.mark.skipif(REASON is not None, reason=f"no usable KVM: {REASON}")


def popek(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "popek", *args], capture_output=True,
                          text=True, timeout=timeout)


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
@pytest.mark.parametrize("ring", [0, 3])
def test_probe_exits_are_counted_exactly_from_both_rings(x86_guests, ring):
    from popek.kvm import layout
    from popek.kvm.machine import X86Machine
    n = 123
    for test, reason, detail in ((1, "port_io_out", "0x510"), (5, "mmio_write", "0xdff00000")):
        m = X86Machine(str(x86_guests / "probe.elf"), memory=4 << 20, console=ScriptedConsole(),
                       irqchip=False)
        try:
            m.ram.write_int(layout.PROBE_PARAMS, 8, test | (0x100 if ring == 3 else 0))
            m.ram.write_int(layout.PROBE_PARAMS + 8, 8, n)
            assert m.run(max_exits=1000) == 0, m.exit_reason
        finally:
            m.close()
        assert m.ledger.details[(reason, detail)] == n


@needs_kvm
def test_virtio_blk_over_mmio_and_pci_reaches_the_host_files(x86_guests, tmp_path):
    disks = []
    for i, text in enumerate(("first disk, over mmio", "second disk, over pci")):
        d = tmp_path / f"disk{i}.img"
        d.write_bytes(text.encode() + b"\n" + bytes(64 * 1024 - len(text) - 1))
        disks.append(d)
    r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "blk.elf"),
              "--drive", f"file={disks[0]},if=virtio-mmio", "--drive", str(disks[1]), "--stats")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "virtio-mmio blk at 00000000d0000000" in r.stdout
    assert "sector 0 says: first disk, over mmio" in r.stdout
    assert "sector 0 says: second disk, over pci" in r.stdout
    assert r.stdout.rstrip().endswith("blk: ok")
    # The guest flushed: its writes are in the host files, byte for byte.
    for d, transport in zip(disks, ("virtio-mmio", "virtio-pci")):
        sector1 = d.read_bytes()[512:1024]
        line = f"written by the x86 guest over {transport}\n".encode()
        assert sector1 == line + bytes(512 - len(line))
    assert "mmio_write" in r.stderr and "0xcf8" in r.stderr     # both transports were used


@needs_kvm
def test_bzimage_boot_protocol_as_the_kernel_sees_it(x86_guests, tmp_path):
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"the initrd's first line\nmore\n")
    r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "bzprobe.bzImage"),
              "--append", "console=ttyS0 root=/dev/vda", "--initrd", str(initrd), "-m", "96M")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "boot_params at 0x0000000000007000" in out
    assert "loader type 0x00000000000000ff" in out
    assert "cmdline 'console=ttyS0 root=/dev/vda" in out      # (+ PVM's quirk args)
    # 96 MiB less the legacy hole and what lies below 1 MiB but above 0x9fc00.
    assert f"usable RAM {0x9FC00 + (96 << 20) - (1 << 20):#018x}" in out
    assert "initrd at 0x00000000" in out and "'the initrd's first line'" in out


def test_user_mistakes_are_one_line(x86_guests, tmp_path):
    bad = tmp_path / "notakernel"
    bad.write_bytes(b"\x00" * 600)
    r = popek("run", "--backend", "kvm", "--kernel", str(bad))
    if REASON is None:
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "hello.elf"),
              "--append", "x=1")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = popek("run", "--kernel", str(x86_guests / "hello.elf"), "--drive",
              "file=/nonexistent,if=scsi")
    assert r.returncode != 0 and "virtio-pci or nvme" in r.stderr


@needs_kvm
def test_kvm_check_reports_both_rings(x86_guests):
    r = popek("kvm-check", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "API version 12" in r.stdout and "implementation" in r.stdout
    for what in ("port-I/O exit", "MMIO exit", "CPUID", "guest instruction"):
        line = next(ln for ln in r.stdout.splitlines() if what in ln)
        ring0, ring3 = line.split()[-2:]
        assert float(ring0) > 0 and float(ring3) >= 0, line
    hlt = next(ln for ln in r.stdout.splitlines() if "HLT" in ln)
    assert float(hlt.split()[-2]) > 0 and hlt.split()[-1] == "-"


@needs_kvm
def test_calibrate_writes_a_profile_the_simulator_charges(x86_guests, vmm_programs, tmp_path):
    from popek.kvm.calibrate import calibrate
    path = tmp_path / "host.json"
    calibrate(str(path), scale=0.05)
    data = json.loads(path.read_text())
    costs = {k: v["cycles"] for k, v in data["costs"].items()}
    assert data["tsc_khz"] > 0 and costs["TRAP_ENTRY"] > 0
    assert data["costs"]["EMULATE_MMIO"]["from"].startswith("measured")
    assert data["costs"]["PAGE_WALK_REF"]["from"].startswith("default")
    r = popek("run", "--vmm", "trap-emulate", "--kernel", str(vmm_programs / "csr_loop.elf"),
              "--stats", "--cost-profile", str(path))
    assert r.returncode == 0, r.stderr
    per_csr = costs["TRAP_ENTRY"] + costs["EMULATE_CSR"] + costs["TRAP_RETURN"]
    line = next(ln for ln in r.stderr.splitlines() if ln.strip().startswith("csr "))
    count, cycles = (int(x.replace(",", "")) for x in line.split()[1:3])
    assert cycles == count * per_csr
    assert "costs from " + str(path) in r.stderr


def test_bad_cost_profile_is_one_line(tmp_path, vmm_programs):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "popek-cost-profile/1", "costs": {"WARP_DRIVE": {"cycles": 1}}}')
    r = popek("run", "--vmm", "trap-emulate", "--kernel", str(vmm_programs / "csr_loop.elf"),
              "--cost-profile", str(bad))
    assert r.returncode == 1 and "unknown cost 'WARP_DRIVE'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_wrong_architecture_for_kvm(asm_build):
    r = popek("run", "--backend", "kvm", "--kernel", str(asm_build / "rv64m.elf"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert ("not x86-64" in r.stderr) or ("KVM" in r.stderr or "kvm" in r.stderr)


@needs_kvm
@pytest.mark.parametrize("cpus", [1, 3])
def test_smp_vcpus_each_run_and_find_themselves_in_the_mp_table(x86_guests, cpus):
    r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "smp.elf"),
              "--smp", str(cpus), "--timeout", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    for i in range(cpus):
        assert f"smp: cpu {i} of {cpus} up, APIC ID {i}\n" in r.stdout
    assert r.stdout.endswith(f"smp: all {cpus} cpus up\n")


def test_smp_takes_a_sane_count(x86_guests):
    if REASON is None:
        r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "smp.elf"),
                  "--smp", "99")
        assert r.returncode == 1 and "--smp takes 1 to 32" in r.stderr


@needs_kvm
def test_a_guest_that_triple_faults_ends_cleanly(x86_guests):
    from popek.kvm import layout
    from popek.kvm.machine import X86Machine
    m = X86Machine(str(x86_guests / "probe.elf"), memory=4 << 20, console=ScriptedConsole(),
                   irqchip=False)
    try:
        # hlt in ring 3 is a #GP; with no IDT that becomes a triple fault.
        m.ram.write_int(layout.PROBE_PARAMS, 8, 4 | 0x100)
        m.ram.write_int(layout.PROBE_PARAMS + 8, 8, 1)
        assert m.run(max_exits=100) == 1
    finally:
        m.close()
    assert m.exit_reason.startswith("KVM exit: shutdown at rip 0x")
    assert m.ledger.counts["shutdown"] == 1


@needs_kvm
def test_console_input_reaches_the_uart_and_raises_irq4(x86_guests):
    from popek.devices.uart16550 import IER_RX
    from popek.kvm.machine import X86Machine
    m = X86Machine(str(x86_guests / "hello.elf"), console=ScriptedConsole())
    lines = []
    real = m.vm.irq_line
    m.vm.irq_line = lambda irq, level: (lines.append((irq, level)), real(irq, level))
    try:
        m.uart.write(1, 1, IER_RX)                  # as a driver enabling rx interrupts
        m.console.steps = [(re.compile(b""), b"k")]           # types "k" at once
        m._done = threading.Event()
        thread = threading.Thread(target=m._input_loop)
        thread.start()
        for _ in range(100):
            if lines:
                break
            time.sleep(0.01)
        m._done.set()
        thread.join()
        assert lines and lines[0] == (4, True)
        assert m.uart.read(0, 1) == ord("k")
        assert lines[-1] == (4, False)              # reading RBR drained it: line low
    finally:
        m.close()


def test_without_kvm_popek_says_so_in_one_line(x86_guests):
    code = ("import sys, popek.kvm.system as s; s.DEVICE = '/nonexistent/kvm'; "
            "from popek.cli import main; sys.exit(main(sys.argv[1:]))")
    for args in (["run", "--backend", "kvm", "--kernel", str(x86_guests / "hello.elf")],
                 ["kvm-check"]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip() == "popek: error: /nonexistent/kvm does not exist: this host " \
                                   "offers no KVM"


@needs_kvm
def test_a_bad_image_leaks_no_kvm_descriptors(x86_guests, tmp_path):
    import os
    from popek.errors import ImageError
    from popek.kvm.machine import X86Machine
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"\x7fELF" + bytes(60))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(ImageError):
            X86Machine(str(bad), console=ScriptedConsole())
    assert len(os.listdir("/proc/self/fd")) == before


@needs_kvm
def test_made_up_exits_go_through_the_machines_table(x86_guests):
    """KVM's exits are the VMM's typed records: a made-up port write reaches the
    shared UART model, a made-up MMIO read of nothing reads all ones, and a halt is
    ledgered, without running the guest."""
    from popek.kvm import abi
    from popek.kvm.machine import X86Machine
    from popek.vmm.exits import Halt, MmioRead, PortIo
    con = ScriptedConsole()
    m = X86Machine(str(x86_guests / "hello.elf"), console=con)
    try:
        at = abi.RUN_EXIT_UNION + 64                         # somewhere in the run area
        m.vcpu.run_area[at] = ord("K")
        m.handle_exit(PortIo(0, 0x3F8, 1, 1, True, at))     # out to COM1's THR
        m.handle_exit(MmioRead(0, 0xFEB0_0000, 4))
        data = abi.RUN_EXIT_UNION + 8
        assert bytes(m.vcpu.run_area[data:data + 4]) == b"\xff" * 4
        m.handle_exit(Halt(0))
    finally:
        m.close()
    assert con.text() == "K"
    assert m.ledger.counts["port_io_out"] == 1 and m.ledger.counts["mmio_read"] == 1
    assert m.ledger.counts["halt"] == 1


def _with_first_instruction(elf_path, tmp_path, code: bytes):
    """A copy of a tiny guest whose entry instruction is ``code``; (path, entry)."""
    import io
    from elftools.elf.elffile import ELFFile
    data = bytearray(elf_path.read_bytes())
    elf = ELFFile(io.BytesIO(bytes(data)))
    entry = elf["e_entry"]
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= entry < seg["p_vaddr"] + seg["p_filesz"]:
            at = seg["p_offset"] + entry - seg["p_vaddr"]
            data[at:at + len(code)] = code
    out = tmp_path / f"patched-{elf_path.name}"
    out.write_bytes(data)
    return out, entry


@needs_kvm
def test_a_triple_fault_is_one_line_with_or_without_stats(x86_guests, tmp_path):
    """ud2 with no IDT: #UD, then a triple fault, KVM's shutdown exit.  popek ends the
    run (exit 1) and says why in one line; --stats adds its report, not a second line."""
    guest, entry = _with_first_instruction(x86_guests / "hello.elf", tmp_path, b"\x0f\x0b")
    r = popek("run", "--backend", "kvm", "--kernel", str(guest), "--timeout", "20")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"popek: the guest stopped: KVM exit: shutdown at rip {entry:#x}")
    assert "bytes 0f 0b" in lines[0] and "a triple fault" in lines[0]
    r = popek("run", "--backend", "kvm", "--kernel", str(guest), "--timeout", "20", "--stats")
    assert r.returncode == 1
    assert r.stderr.count("the guest stopped") == 1 and "shutdown" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1] == lines[0]


def _cut_bzimage(source, tmp_path, keep: float):
    """A bzImage whose header announces its whole protected-mode part (``syssize``),
    cut to ``keep`` of its length."""
    data = bytearray(source.read_bytes())
    setup = ((data[0x1F1] or 4) + 1) * 512
    if int.from_bytes(data[0x1F4:0x1F8], "little") == 0:          # the probe leaves it 0
        data[0x1F4:0x1F8] = ((len(data) - setup + 15) // 16).to_bytes(4, "little")
    cut = tmp_path / f"cut-{source.name}"
    cut.write_bytes(data[:int(len(data) * keep)])
    return cut


@needs_kvm
def test_a_truncated_bzimage_is_one_line_before_it_boots(x86_guests, tmp_path):
    cut = _cut_bzimage(x86_guests / "bzprobe.bzImage", tmp_path, 0.6)
    for unpack in ("guest", "auto"):
        r = popek("run", "--backend", "kvm", "--kernel", str(cut), "--unpack", unpack,
                  "--timeout", "20")
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
        assert r.stderr.startswith(f"popek: error: {cut}: truncated bzImage")
        assert "is the file complete?" in r.stderr


@needs_kvm
def test_a_truncated_debian_kernel_is_refused_in_one_line(tmp_path):
    """The reported case: Debian's vmlinuz cut to 1 MB, left to decompress itself,
    ended with exit 1 and no word (its decompressor, after the payload, was gone)."""
    from popek.errors import ImageError
    from popek.linux import debian
    try:
        vmlinuz = debian.find_kernel()[0]
    except ImageError as e:
        pytest.skip(str(e))
    cut = tmp_path / "cut.bz"
    with open(vmlinuz, "rb") as f:
        cut.write_bytes(f.read(1 << 20))
    for unpack in ("guest", "vmm"):
        r = popek("run", "--backend", "kvm", "--kernel", str(cut), "--unpack", unpack,
                  "--timeout", "20")
        assert r.returncode == 1 and "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "truncated bzImage" in lines[0] and str(cut) in lines[0], \
            r.stderr


def test_a_bzimage_cut_inside_its_payload_is_refused_by_the_loader_and_the_unpacker(tmp_path):
    """Without KVM: the header's sizes against the file, and a compressed payload that
    ends early although the header agrees with the file."""
    import lzma
    import random
    from popek.devices.memory import GuestMemory
    from popek.errors import ImageError
    from popek.kvm import linux

    def bzimage(payload: bytes) -> bytes:
        data = bytearray(1024) + payload + bytes(-len(payload) % 16)   # setup: 2 sectors
        data[0x1F1] = 1
        data[0x1F4:0x1F8] = ((len(payload) + 15) // 16).to_bytes(4, "little")
        data[0x202:0x208] = b"HdrS\x0f\x02"              # protocol 2.15
        data[0x236] = 1                                  # XLF_KERNEL_64
        data[0x24C:0x250] = len(payload).to_bytes(4, "little")   # payload_offset 0
        data[0x260:0x264] = (4 << 20).to_bytes(4, "little")
        return bytes(data)

    vmlinux = b"\x7fELF" + random.Random(1).randbytes(200_000)
    payload = lzma.compress(vmlinux, format=lzma.FORMAT_XZ)
    whole = bzimage(payload)
    assert linux.extract_vmlinux("k", whole) == vmlinux
    with pytest.raises(ImageError, match="k: truncated bzImage: its header announces"):
        linux.extract_vmlinux("k", whole[:len(whole) // 2])
    ram = GuestMemory(0, 16 << 20)
    with pytest.raises(ImageError, match="k: truncated bzImage"):
        linux.load_bzimage(ram, "k", whole[:len(whole) // 2], "", None)
    # A header that agrees with a cut file: the stream itself says it is incomplete.
    with pytest.raises(ImageError, match="k: corrupt kernel payload: the compressed stream "
                                         "ends early"):
        linux.extract_vmlinux("k", bzimage(payload[:len(payload) // 2]))


@needs_kvm
def test_a_hostile_virtio_driver_on_kvm(x86_guests, tmp_path):
    """The KVM backend shares the device models: a used ring over the avail ring (it
    froze popek inside one MMIO exit, --timeout included), a looping chain, a buffer
    outside RAM and an avail index running ahead are refused; a good read still works."""
    img = tmp_path / "x.img"
    img.write_bytes(b"POPEK-X86-DISK!!" + bytes(65536 - 16))
    before = img.read_bytes()
    r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "virtio_hostile.elf"),
              "--drive", f"file={img},if=virtio-mmio", "--timeout", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "A:R B:R E:R I:R L:K"
    assert img.read_bytes() == before
    assert r.stderr.count("needs reset") == 1            # one warning, not one per case


@needs_kvm
def test_the_budget_that_ended_a_kvm_run_is_named(x86_guests):
    r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "hello.elf"),
              "--max-instructions", "100", "--timeout", "60")
    assert r.returncode == 124
    assert r.stderr.strip().endswith("(--max-instructions)"), r.stderr


_SENSITIVE = re.compile(r"^ring (\d): sgdt (\S+) sidt (\S+) smsw (\S+) str (\S+) sldt (\S+) "
                        r"pushf (\S+) popf\(IF=0\) (\S+)$", re.M)


@needs_kvm
def test_robin_irvine_instructions_under_kvm(x86_guests):
    """SGDT, SIDT, SMSW, STR, SLDT, PUSHF and POPF in ring 0 and ring 3 of a KVM guest
    (guests/x86/sensitive.c): hardware assist (or KVM's software stand-in) gives the
    guest its own descriptor tables, task register and CR0, in both rings."""
    from popek.kvm import x86
    from popek.kvm import layout
    r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "sensitive.elf"),
              "--timeout", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    rings = {int(m.group(1)): m.groups()[1:] for m in _SENSITIVE.finditer(r.stdout)}
    assert set(rings) == {0, 3}, r.stdout
    sgdt, sidt, smsw, tr, ldt, pushf, popf = rings[0]
    assert int(sgdt.split("/")[0], 16) == layout.GDT           # popek's GDT, the guest's own
    assert int(sidt.split("/")[1], 16) == 32 * 16 - 1          # the guest's own IDT
    assert int(smsw, 16) & 1                                   # CR0.PE
    assert int(tr, 16) == x86.TSS_SEL
    assert int(popf, 16) & 0x200 == 0                          # ring 0: popf clears IF
    for value, ring3 in zip(rings[0][:4], rings[3][:4]):       # the same view from ring 3
        assert ring3 == value or ring3.startswith("fault"), (value, ring3)
    # Ring 3 with IOPL 3 (set by the guest's iretq): popf may change IF, and pushf shows
    # IOPL 3. A software virtualizer that runs ring 3 natively on a host ring 3 of IOPL 0
    # (PVM) shows IOPL 0 and leaves IF alone: POPF's and PUSHF's holes themselves.
    # Either way the two agree.
    flags3, after3 = int(rings[3][5], 16), int(rings[3][6], 16)
    iopl3 = (flags3 >> 12) & 3 == 3
    assert (after3 & 0x200 == 0) == iopl3, (hex(flags3), hex(after3))


@needs_kvm
def test_nics_and_an_rng_on_the_pc_pci_bus(x86_guests):
    """--device on the KVM backend: the functions on bus 0, their BARs placed as a PC's
    firmware places them (each aligned to its size), the e1000's registers through its
    memory BAR and through its I/O BAR's IOADDR/IODATA."""
    from popek.devices import e1000 as E
    from popek.devices.options import parse_device, parse_netdev
    from popek.kvm import layout
    from popek.kvm.machine import X86Machine
    m = X86Machine(str(x86_guests / "hello.elf"), console=ScriptedConsole(),
                   devices=[parse_device("virtio-rng-pci"), parse_device("e1000,netdev=l0"),
                            parse_device("virtio-net-pci,netdev=s0")],
                   netdevs=[parse_netdev("loopback,id=l0"), parse_netdev("switch,id=s0")])
    try:
        def cfg(slot, reg):
            m._port_write(layout.PCI_CONFIG_ADDRESS, 4, 0x80000000 | slot << 11 | reg)
            return m._port_read(layout.PCI_CONFIG_DATA, 4)
        assert [cfg(s, 0) for s in (1, 2, 3, 4)] == [0x1044_1AF4, 0x100E_8086, 0x1041_1AF4,
                                                      0xFFFFFFFF]
        e1000 = m.pci.functions[2]
        bar0, bar1 = cfg(2, 0x10), cfg(2, 0x14)
        assert bar0 % 0x20000 == 0 and bar0 >= layout.PCI_BAR_BASE
        assert bar1 & 1 and (bar1 & ~3) >= layout.PCI_IO_BASE
        m._port_write(layout.PCI_CONFIG_ADDRESS, 4, 0x80000000 | 2 << 11 | 0x04)
        m._port_write(layout.PCI_CONFIG_DATA, 2, 0x3)          # I/O and memory on
        io = bar1 & ~3
        m._port_write(io, 4, E.STATUS)                          # IOADDR
        assert m._port_read(io + 4, 4) & 0x3 == 0x3             # IODATA: link up, full duplex
        assert m._mmio_read(bar0 + E.STATUS, 4) & 0x3 == 0x3
        assert e1000.describe().startswith("e1000 52:54:00:12:34:56 on loopback")
    finally:
        m.close()


@needs_kvm
def test_an_nvme_disk_on_the_pc_pci_bus(x86_guests, tmp_path):
    """--drive if=nvme on the KVM backend: QEMU's NVMe identity on bus 0, its registers
    through the memory BAR the firmware placed, and its image locked while it runs."""
    from popek.devices import nvme
    from popek.kvm import layout
    from popek.kvm.machine import X86Machine
    from popek.riscv.board import DriveSpec
    disk = tmp_path / "nvme.img"
    disk.write_bytes(bytes(1 << 20))
    m = X86Machine(str(x86_guests / "hello.elf"), console=ScriptedConsole(),
                   drives=[DriveSpec(str(disk), interface="nvme")])
    try:
        def cfg(slot, reg):
            m._port_write(layout.PCI_CONFIG_ADDRESS, 4, 0x80000000 | slot << 11 | reg)
            return m._port_read(layout.PCI_CONFIG_DATA, 4)
        assert cfg(1, 0) == 0x0010_1B36 and cfg(1, 8) >> 8 == nvme.NVME_CLASS
        bar0 = cfg(1, 0x10) & ~0xF
        assert bar0 % nvme.BAR_SIZE == 0 and bar0 >= layout.PCI_BAR_BASE
        m._port_write(layout.PCI_CONFIG_ADDRESS, 4, 0x80000000 | 1 << 11 | 0x04)
        m._port_write(layout.PCI_CONFIG_DATA, 2, 0x6)          # memory, bus master
        assert m._mmio_read(bar0 + nvme.VS, 4) == nvme.VERSION
        r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "hello.elf"),
                  "--drive", f"file={disk},if=nvme")
        assert r.returncode == 1 and "lock" in r.stderr.lower(), r.stderr
    finally:
        m.close()


@needs_kvm
@pytest.mark.parametrize("ioeventfd", ["on", "off"])
def test_ioeventfd_keeps_virtio_notifies_inside_kvm(x86_guests, tmp_path, ioeventfd):
    """With --ioeventfd on (the default) the guest's three notifies of its virtio-pci
    disk never leave KVM: an eventfd wakes popek's I/O thread, which serves the queue
    while the vCPU polls; off, each is an MMIO exit to popek.  The data is the same."""
    d = tmp_path / "disk.img"
    d.write_bytes(b"over pci\n" + bytes(64 * 1024 - 9))
    r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "blk.elf"),
              "--drive", str(d), "--stats", "--ioeventfd", ioeventfd)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sector 0 says: over pci" in r.stdout and r.stdout.rstrip().endswith("blk: ok")
    line = b"written by the x86 guest over virtio-pci\n"
    assert d.read_bytes()[512:512 + len(line)] == line
    notify_exits = re.search(r"mmio_write:0xe0003000 (\d+)", r.stderr)
    if ioeventfd == "on":
        assert notify_exits is None and "ioeventfd_notifies 3" in r.stderr
    else:
        assert notify_exits and int(notify_exits.group(1)) == 3
        assert "ioeventfd_notifies" not in r.stderr


def test_ioeventfd_is_an_option_of_the_kvm_backend():
    r = popek("run", "--kernel", "k.elf", "--bios", "none", "--ioeventfd", "off")
    assert r.returncode == 1 and "--ioeventfd is for --backend kvm" in r.stderr
    assert "Traceback" not in r.stderr


@needs_kvm
def test_irqfd_wakes_a_guest_sleeping_in_hlt(x86_guests, tmp_path):
    """blk.elf's benchmark mode with interrupts: after each notify it sleeps in hlt until
    its disk's INTx arrives (IOAPIC, level).  With --ioeventfd on the completion is
    raised by KVM from popek's irqfd, lowered at the guest's EOI: each of the 20 wakes it,
    and no notify exits."""
    from popek.console import ScriptedConsole
    from popek.kvm import layout
    from popek.kvm.machine import X86Machine
    from popek.riscv.board import DriveSpec
    d = tmp_path / "disk.img"
    d.write_bytes(b"irq\n" + bytes(64 * 1024 - 4))
    con = ScriptedConsole()
    m = X86Machine(str(x86_guests / "blk.elf"), memory=16 << 20, console=con,
                   drives=[DriveSpec(str(d))])
    try:
        m.ram.write_int(layout.PROBE_PARAMS, 8, 20)           # 20 timed reads
        m.ram.write_int(layout.PROBE_PARAMS + 8, 8, 1)        # each waited for in hlt
        assert m.run(timeout=60) == 0, con.text()
        stats = m.ioevents.stats()
    finally:
        m.close()
    got = re.search(r"reads 0000000000000014 tsc [0-9a-f]{16} interrupts ([0-9a-f]{16})",
                    con.text())
    assert got and int(got.group(1), 16) >= 20, con.text()      # one a request at least
    assert stats["irqfd_raises"] >= 20 and stats["ioeventfd_notifies"] == 23
    assert m.ledger.details.get(("mmio_write", "0xe0003000"), 0) == 0
    assert m.ledger.details[("mmio_read", "0xe0001000")] >= 20      # the ISR: still an exit
