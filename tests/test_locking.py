"""Disk images are locked as QEMU locks them (open file description locks): one
writer, or any number of readers.  A second writer, a writer beside readers or a
reader beside a writer is refused, in one line naming the image, before a guest
starts: the same file twice in one VM, in two VMs of one run, or in another
process (a popek, a QEMU, anything taking fcntl locks)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from popek.devices.memory import GuestMemory
from popek.devices.virtio.blk import VirtioBlk
from popek.errors import ImageError
from tests.test_cli import assert_one_line_error, popek
from tests.test_kvm import needs_kvm

WRITE_REFUSED = 'failed to get "write" lock'
READ_REFUSED = 'failed to get "read" lock'


@pytest.fixture
def image(tmp_path):
    img = tmp_path / "disk.img"
    img.write_bytes(bytes(64 * 512))
    return img


def _mem():
    return GuestMemory(0, 0x10000)


def _refused(path, readonly=False) -> str:
    with pytest.raises(ImageError) as e:
        VirtioBlk(_mem(), str(path), readonly).close()
    return str(e.value)


def test_two_writable_drives_of_one_file_are_one_line_on_the_simulated_board(asm_build, image):
    r = popek("run", "--bios", "none", "--kernel", str(asm_build / "rv64i_alu.elf"),
              "--drive", str(image), "--drive", f"file={image},format=raw")
    assert_one_line_error(r, str(image), WRITE_REFUSED, "another process or drive")
    assert r.returncode == 1


def test_the_same_writable_image_for_two_vms_is_refused(vmm_programs, image):
    kernel = vmm_programs / "csr_loop.elf"
    r = popek("run", "--vmm", "trap-emulate", "--max-instructions", "10000",
              "--vm", f"kernel={kernel},drive={image}", "--vm", f"kernel={kernel},drive={image}")
    assert_one_line_error(r, str(image), WRITE_REFUSED)


def test_readers_share_an_image_and_exclude_a_writer(asm_build, image):
    r = popek("run", "--bios", "none", "--kernel", str(asm_build / "rv64i_alu.elf"),
              "--drive", f"file={image},readonly=on", "--drive", f"file={image},readonly=on")
    assert r.returncode == 0 and "lock" not in r.stderr, r.stderr
    readers = [VirtioBlk(_mem(), str(image), True) for _ in range(2)]
    try:
        msg = _refused(image)
        assert msg.startswith(f"{image}: ") and WRITE_REFUSED in msg
    finally:
        for d in readers:
            d.close()
    writer = VirtioBlk(_mem(), str(image))       # the readers are gone: the lock is free
    try:
        assert READ_REFUSED in _refused(image, readonly=True)
        assert WRITE_REFUSED in _refused(image)
    finally:
        writer.close()


def test_close_releases_the_lock_even_with_the_descriptor_shared_by_a_fork(image):
    d = VirtioBlk(_mem(), str(image))
    assert WRITE_REFUSED in _refused(image)
    pid = os.fork()                     # a child that keeps the open file description
    if pid == 0:
        try:
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        d.close()
        d.close()                                   # twice is harmless
        VirtioBlk(_mem(), str(image)).close()       # free, though the child has the fd
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


HOLDER = textwrap.dedent("""
    import fcntl, os, struct, sys
    path, kind = sys.argv[1], sys.argv[2]
    fd = os.open(path, os.O_RDWR if kind == "write" else os.O_RDONLY)
    lock = fcntl.F_WRLCK if kind == "write" else fcntl.F_RDLCK
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", lock, 0, 0, 0, 0))
    print("locked", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def held(image):
    """A child process holding an OFD lock ("write" or "read") on the image."""
    procs = []

    def hold(kind):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(image), kind],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline() == "locked\n"
        return p
    yield hold
    for p in procs:
        p.stdin.close()
        p.wait(timeout=10)


def test_a_lock_held_by_another_process_is_refused(image, held, asm_build):
    writer = held("write")
    assert WRITE_REFUSED in _refused(image)
    assert READ_REFUSED in _refused(image, readonly=True)
    r = popek("run", "--bios", "none", "--kernel", str(asm_build / "rv64i_alu.elf"),
              "--drive", f"file={image},readonly=on")
    assert_one_line_error(r, str(image), READ_REFUSED)
    writer.stdin.close()
    writer.wait(timeout=10)
    held("read")                                    # a reader elsewhere: share, not write
    VirtioBlk(_mem(), str(image), True).close()
    assert WRITE_REFUSED in _refused(image)


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no qemu-system-x86_64")
def test_an_image_qemu_has_open_is_not_written(image):
    q = subprocess.Popen(["qemu-system-x86_64", "-S", "-nodefaults", "-display", "none",
                          "-machine", "q35,accel=tcg", "-qmp", "stdio",
                          "-drive", f"file={image},format=raw,if=virtio"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert '"QMP"' in q.stdout.readline()      # the monitor is up: the drive is open
        assert WRITE_REFUSED in _refused(image)
    finally:
        q.kill()
        q.wait(timeout=10)


@needs_kvm
def test_two_writable_drives_of_one_file_are_one_line_on_kvm(x86_guests, image):
    r = popek("run", "--backend", "kvm", "--kernel", str(x86_guests / "blk.elf"),
              "--drive", f"file={image},if=virtio-mmio", "--drive", str(image))
    assert_one_line_error(r, str(image), WRITE_REFUSED)


@needs_kvm
def test_a_kvm_machine_refused_a_drive_holds_no_lock_after(x86_guests, image):
    from popek.console import ScriptedConsole
    from popek.kvm.machine import X86Machine
    from popek.riscv.board import DriveSpec
    with pytest.raises(ImageError, match=WRITE_REFUSED):
        X86Machine(str(x86_guests / "hello.elf"), console=ScriptedConsole(),
                   drives=[DriveSpec(str(image)), DriveSpec(str(image), interface="virtio-mmio")])
    VirtioBlk(_mem(), str(image)).close()           # the first drive was closed, unlocked
