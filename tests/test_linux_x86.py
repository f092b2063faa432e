"""Debian's own kernel as the KVM backend's guest: the initramfs builder, the
vmlinux extraction, and boots through the PVH entry (on any KVM, asserting the
kernel's early console) and to a busybox shell (hardware KVM only: under PVM a
non-PVM kernel's ring 0 runs in KVM's instruction emulator, far too slowly)."""

from __future__ import annotations

import io
import stat
import time
from pathlib import Path

import pytest

from popek.console import ScriptedConsole
from popek.files import write_atomically
from popek.kvm import linux
from popek.linux import debian, initramfs
from popek.riscv.loader import read_file
from tests.test_kvm import REASON, needs_kvm


def read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """name → (mode, contents) of a newc cpio archive; an independent reader."""
    out, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701", f"bad magic at {pos}"
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos:pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


@pytest.fixture(scope="module")
def kernel():
    try:
        return debian.find_kernel()
    except Exception as e:
        pytest.fail(f"{e}")


@pytest.fixture(scope="module")
def initrd(kernel, tmp_path_factory):
    data, order = initramfs.build(kernel[1])
    path = tmp_path_factory.mktemp("linux") / "initrd.cpio"
    write_atomically(str(path), data)
    return path


@pytest.fixture(scope="module")
def vmlinux(kernel, tmp_path_factory):
    path = tmp_path_factory.mktemp("linux") / "vmlinux"
    write_atomically(str(path), linux.extract_vmlinux(kernel[0], read_file(kernel[0])))
    return path


def test_initramfs_holds_busybox_init_and_modules_in_load_order(kernel, initrd):
    files = read_newc(initrd.read_bytes())
    assert stat.S_ISREG(files["bin/busybox"][0]) and files["bin/busybox"][0] & 0o111
    assert files["bin/busybox"][1][:4] == b"\x7fELF"
    assert files["init"][1].startswith(b"#!/bin/busybox sh")
    order = files["etc/modules"][1].decode().split()
    for m in ("virtio_pci", "virtio_blk", "virtio_mmio", "virtio", "virtio_ring"):
        assert f"lib/modules/{m}.ko" in files and m in order
    # Dependencies load first (from the modules' own .modinfo).
    assert order.index("virtio") < order.index("virtio_pci")
    assert order.index("virtio_ring") < order.index("virtio_blk")
    assert order.index("virtio_pci_modern_dev") < order.index("virtio_pci")


def test_initramfs_modules_lose_their_signatures_unless_kept(kernel, initrd):
    """Debian signs its modules; the kernel hashes all of a signed module it loads (on
    the simulated riscv64 machine half of a boot's instructions), so they are stored
    without the signature: the ELF intact, the trailer gone; --module-signatures keeps it."""
    from elftools.elf.elffile import ELFFile
    files = read_newc(initrd.read_bytes())
    signed = initramfs.module_bytes(initramfs.module_index(Path(kernel[1]))["virtio_blk"])
    assert signed.endswith(initramfs.SIGNATURE_MARKER)
    stored = files["lib/modules/virtio_blk.ko"][1]
    assert not stored.endswith(initramfs.SIGNATURE_MARKER)
    assert signed.startswith(stored) and 100 < len(signed) - len(stored) < 4096
    assert ELFFile(io.BytesIO(stored)).get_section_by_name(".modinfo") is not None
    kept = read_newc(initramfs.build(kernel[1], signatures=True)[0])
    assert kept["lib/modules/virtio_blk.ko"][1] == signed
    # Anything else is left as it is.
    assert initramfs.unsigned(b"\x7fELF" + bytes(64)) == b"\x7fELF" + bytes(64)
    assert initramfs.unsigned(bytes(8) + (1 << 30).to_bytes(12, "big")
                              + initramfs.SIGNATURE_MARKER).endswith(initramfs.SIGNATURE_MARKER)


def test_extracted_vmlinux_has_a_pvh_entry(vmlinux):
    entry = linux.pvh_entry(str(vmlinux), vmlinux.read_bytes())
    assert entry is not None and 0x1000000 <= entry < 0x4000000


class _Watch(ScriptedConsole):
    def seen(self, text: str) -> bool:
        return text in self.text()


def boot_until(machine, console, text: str, limit: float) -> float:
    start = time.monotonic()
    while not console.seen(text) and machine.exit_code is None:
        if time.monotonic() - start > limit:
            break
        machine.run(timeout=1.0)
    return time.monotonic() - start


@needs_kvm
@pytest.mark.slow
@pytest.mark.parametrize("entry", ["pvh", "bzimage"])
def test_debian_kernel_boot_prints_its_early_console(kernel, vmlinux, initrd, entry):
    """Both ways in: the PVH entry of the extracted vmlinux, and the bzImage's 64-bit
    boot protocol (on PVM popek unpacks it and enters the kernel's own 64-bit entry
    with the same zero page; the in-guest decompressor would take many minutes)."""
    from popek.kvm.machine import X86Machine
    con = _Watch()
    m = X86Machine(str(vmlinux) if entry == "pvh" else kernel[0], memory=512 << 20,
                   console=con, initrd=str(initrd),
                   append="earlyprintk=serial,ttyS0,115200 console=ttyS0 popek.test=1")
    try:
        boot_until(m, con, "RAMDISK: [mem", 180)
    finally:
        m.close()
    out = con.text()
    assert m.boot.kind.startswith("pvh" if entry == "pvh" else "bzimage-64")
    assert "Linux version 6." in out and "Debian" in out, out[-2000:]
    assert "Command line: earlyprintk=serial,ttyS0,115200 console=ttyS0 popek.test=1" in out
    # The kernel read popek's memory map and found the initrd where popek put it.
    assert "BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable" in out
    assert "RAMDISK: [mem" in out


def _hardware_kvm() -> str | None:
    if REASON is not None:
        return REASON
    from popek.kvm.machine import hardware_kvm, implementation
    return None if hardware_kvm() else f"KVM here is {implementation()}: a full boot of a " \
        "non-PVM kernel would run its ring 0 in KVM's instruction emulator"


@pytest.mark.slow
@pytest.mark.skipif(_hardware_kvm() is not None, reason=str(_hardware_kvm()))
@pytest.mark.parametrize("entry", ["bzimage", "pvh"])
def test_debian_kernel_boots_to_busybox_and_reads_its_disk(kernel, vmlinux, initrd, tmp_path,
                                                           entry):
    from popek.kvm.machine import X86Machine
    from popek.riscv.board import DriveSpec
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"popek disk marker\n" + bytes(1 << 20))
    con = ScriptedConsole([(r"popek-initramfs: up", ""),
                           (r"/ # ", "head -c 17 /dev/vda; echo; reboot -f\n")])
    m = X86Machine(kernel[0] if entry == "bzimage" else str(vmlinux), memory=512 << 20,
                   console=con, initrd=str(initrd), drives=[DriveSpec(str(disk))],
                   append="console=ttyS0 reboot=k panic=-1")
    try:
        code = m.run(timeout=300)
    finally:
        m.close()
    out = con.text()
    assert "/dev/vda has 2048 sectors" in out, out[-3000:]
    assert "popek disk marker" in out
    assert code == 0 and m.exit_reason == "reset (i8042)"


@pytest.mark.slow
@pytest.mark.skipif(_hardware_kvm() is not None, reason=str(_hardware_kvm()))
def test_debian_kernel_copies_through_a_driver_domain_killed_mid_copy(kernel, vmlinux, initrd,
                                                                      tmp_path):
    """--drivers domains: Linux's virtio-blk driver on a disk served by a `popek
    vhost-user-blk` process, which SIGKILLs itself in its request 11 (during the copy);
    popek starts it again and the copy completes: Linux's cmp and the host file agree."""
    from popek.kvm.machine import X86Machine
    from popek.riscv.board import DriveSpec
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(8 << 20))
    copied = "".join(f"{i}\n" for i in range(1, 200001)).encode()      # seq 1 200000
    con = ScriptedConsole([(r"popek-initramfs: up", ""),
                           (r"/ # ", "seq 1 200000 > /tmp/f && dd if=/tmp/f of=/dev/vda "
                                     "bs=64k oflag=direct conv=fsync && head -c "
                                     f"{len(copied)} /dev/vda > /tmp/g && cmp /tmp/f /tmp/g "
                                     "&& echo COPY-$((3*7)); reboot -f\n")])
    m = X86Machine(str(vmlinux), memory=512 << 20, console=con, initrd=str(initrd),
                   drives=[DriveSpec(str(disk))], append="console=ttyS0 reboot=k panic=-1",
                   drivers="domains", faults={"drive0": 10})
    try:
        code = m.run(timeout=300)
        stats = m.vhost[0].stats
    finally:
        m.close()
    out = con.text()
    assert "COPY-21" in out, out[-3000:]
    assert code == 0 and disk.read_bytes()[:len(copied)] == copied
    assert stats["backend_starts"] == 2 and stats["reconnects"] == 1
