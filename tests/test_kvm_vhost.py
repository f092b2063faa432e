"""Driver domains on KVM: a disk served by a vhost-user backend process
(``popek vhost-user-blk``, vhost/backend.py), started by popek (``--drivers
domains``) or by the user (``--device vhost-user-blk-pci``); killed with SIGKILL in
the middle of a transfer, restarted, reconnected, the transfer finished with the
right bytes; the backend's rights; and its protocol spoken to from Python."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from popek.console import ScriptedConsole
from popek.riscv.board import DriveSpec
from popek.vmm.drivers.faults import FaultPlan
from tests.test_kvm import needs_kvm, popek

WRITE_VERIFY = 0x8010                 # guests/x86/blk.c: sectors to write and verify
SECTORS = 64


def expected(k: int) -> bytes:
    return bytes((k * 7 + j) & 0xFF for j in range(512))


def machine(x86_guests, disk, **kwargs):
    from popek.kvm.machine import X86Machine
    con = ScriptedConsole()
    m = X86Machine(str(x86_guests / "blk.elf"), console=con, drivers="domains",
                   drives=[DriveSpec(str(disk), ident="disk0")], **kwargs)
    m.ram.write_int(WRITE_VERIFY, 8, SECTORS)
    return m, con


@pytest.fixture
def disk(tmp_path):
    img = tmp_path / "disk.img"
    img.write_bytes(b"over vhost-user\n" + bytes((4 << 20) - 16))
    return img


@needs_kvm
@pytest.mark.parametrize("ioeventfd", [True, False])
def test_a_disk_served_by_a_backend_process(x86_guests, disk, ioeventfd):
    """The guest's requests reach the backend process: with ioeventfd its notifies go
    from KVM straight to the backend's kick eventfd (not one exits to popek)."""
    m, con = machine(x86_guests, disk, ioeventfd=ioeventfd)
    try:
        code = m.run(max_exits=200_000, timeout=60)
        dev = m.vhost[0]
        assert code == 0, con.text()
        out = con.text()
        assert "sector 0 says: over vhost-user" in out
        assert f"wrote and verified {SECTORS:016x} sectors" in out
        assert dev.stats["completions"] >= 2 * SECTORS and dev.proc.poll() is None
        notifies = sum(n for (r, d), n in m.ledger.details.items()
                       if r == "mmio_write" and d.endswith("3000"))
        assert (notifies == 0) if ioeventfd else notifies > SECTORS
    finally:
        m.close()
    assert dev.proc.poll() is not None                  # stopped with the machine
    data = disk.read_bytes()
    for k in range(SECTORS):
        assert data[(2 + k) * 512:(3 + k) * 512] == expected(k)


@needs_kvm
@pytest.mark.parametrize("kind", ["crash", "hang"])
def test_a_backend_that_fails_mid_transfer_is_restarted_and_the_transfer_completes(
        x86_guests, disk, kind):
    """--inject-fault disk0:crash@40: the backend SIGKILLs itself in request 41, its data
    written and its completion not; hang@40: it stops serving there, alive and
    connected, and popek's watchdog kills it.  popek starts it again, reconnects, and
    the ring resumes from the guest's used index (request 41 is served again)."""
    m, con = machine(x86_guests, disk, faults={"disk0": FaultPlan("disk0", 40, kind)},
                     domain_watchdog_ms=1000)
    try:
        code = m.run(max_exits=200_000, timeout=60)
        dev = m.vhost[0]
        assert code == 0, con.text()
        assert f"wrote and verified {SECTORS:016x} sectors" in con.text()
        assert dev.stats["backend_starts"] == 2 and dev.stats["reconnects"] == 1
        assert dev.stats["replayed"] == 1
        assert dev.stats["hangs"] == (kind == "hang")
    finally:
        m.close()
    data = disk.read_bytes()
    for k in range(SECTORS):
        assert data[(2 + k) * 512:(3 + k) * 512] == expected(k)


@needs_kvm
def test_a_backend_the_user_started_killed_from_outside(x86_guests, disk, tmp_path):
    """`popek vhost-user-blk` started by hand, the machine given it with --device
    vhost-user-blk-pci,socket=; the backend is killed with SIGKILL from outside while
    the guest writes, and started again by hand: popek reconnects to it."""
    from popek.devices.options import parse_device
    from popek.kvm.machine import X86Machine
    sock = tmp_path / "blk.sock"
    argv = [sys.executable, "-m", "popek", "vhost-user-blk", "--socket", str(sock),
            "--drive", str(disk)]
    backend = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert "serving" in backend.stdout.readline()
    con = ScriptedConsole()
    m = X86Machine(str(x86_guests / "blk.elf"), console=con,
                   devices=[parse_device(f"vhost-user-blk-pci,socket={sock}")])
    m.ram.write_int(WRITE_VERIFY, 8, 4000)
    killed = []

    def kill_and_restart():
        while m.vhost[0].stats["completions"] < 200:
            time.sleep(0.005)
        backend.send_signal(signal.SIGKILL)
        backend.wait()
        killed.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
    import threading
    t = threading.Thread(target=kill_and_restart, daemon=True)
    t.start()
    try:
        code = m.run(max_exits=2_000_000, timeout=120)
        assert code == 0, con.text()
        assert "wrote and verified 0000000000000fa0 sectors" in con.text()
        assert m.vhost[0].stats["reconnects"] == 1 and killed
    finally:
        m.close()
        for p in [backend, *killed]:
            if p.poll() is None:
                p.kill()
                p.wait()
    data = disk.read_bytes()
    assert all(data[(2 + k) * 512:(3 + k) * 512] == expected(k) for k in range(4000))


def test_the_backend_runs_with_fewer_rights(disk, tmp_path):
    """Run as root, the backend is nobody once its disk and socket are open: it cannot
    open /dev/kvm, nor a file of the VMM's."""
    if os.getuid() != 0:
        pytest.skip("the backend drops rights only when started as root")
    sock = tmp_path / "blk.sock"
    p = subprocess.Popen([sys.executable, "-m", "popek", "vhost-user-blk", "--socket",
                          str(sock), "--drive", str(disk)], stdout=subprocess.PIPE, text=True)
    try:
        assert "uid 65534" in p.stdout.readline()
        status = open(f"/proc/{p.pid}/status").read()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()
        assert uids[1:] == ["65534"] * 4
        assert next(line for line in status.splitlines()
                    if line.startswith("NoNewPrivs:")).split()[1] == "1"
        fds = {os.readlink(f"/proc/{p.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{p.pid}/fd")}
        assert "/dev/kvm" not in fds and str(disk) in fds
        # ... nor can it open it: as nobody, with no groups, on a device whose mode gives
        # other users nothing (0600 or 0660 here; where it is 0666, anybody can).
        if os.path.exists("/dev/kvm") and os.stat("/dev/kvm").st_mode & 0o006:
            pytest.skip("/dev/kvm is open to every user on this host")
    finally:
        p.kill()
        p.wait()


def test_bad_vhost_options_are_one_clear_error(tmp_path):
    r = popek("run", "--backend", "kvm", "--kernel", "x", "--device", "vhost-user-blk-pci")
    assert r.returncode == 1 and "needs socket=PATH" in r.stderr
    r = popek("run", "--bios", "none", "--kernel", "x", "--device",
              "vhost-user-blk-pci,socket=/x")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = popek("vhost-user-blk", "--socket", str(tmp_path / "s"), "--drive", "/nonexistent")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_qemu_is_a_frontend_of_popeks_backend(guest_build, tmp_path):
    """QEMU's own vhost-user-blk (on the virt board's virtio-mmio, its RAM a shared
    memfd) with popek's backend process: our guest OS on QEMU runs its self-test on the
    disk, whose bytes are on the file popek's backend serves."""
    import shutil
    from tests.test_guest import INTEGRITY_SECTOR, INTEGRITY_SECTORS, integrity_pattern
    if shutil.which("qemu-system-riscv64") is None:
        pytest.skip("qemu-system-riscv64 is not installed")
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4 << 20))
    sock = tmp_path / "blk.sock"
    backend = subprocess.Popen([sys.executable, "-m", "popek", "vhost-user-blk", "--socket",
                                str(sock), "--drive", str(disk)], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert "serving" in backend.stdout.readline()
        qemu = subprocess.run(
            ["qemu-system-riscv64", "-M", "virt,memory-backend=mem", "-m", "128M",
             "-object", "memory-backend-memfd,id=mem,size=128M,share=on",
             "-kernel", str(guest_build / "kernel.elf"), "-append", "selftest", "-nographic",
             "-global", "virtio-mmio.force-legacy=false",
             "-chardev", f"socket,id=c0,path={sock}", "-device", "vhost-user-blk,chardev=c0"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        backend.kill()
        backend.wait()
    assert "disk: virtio-blk, 8192 sectors" in qemu.stdout, qemu.stdout[-2000:] + qemu.stderr
    assert "TEST block_io ok" in qemu.stdout and "SELFTEST PASS 9/9" in qemu.stdout
    start = INTEGRITY_SECTOR * 512
    assert disk.read_bytes()[start:start + INTEGRITY_SECTORS * 512] == integrity_pattern()


def test_the_watchdog_kills_a_stalled_backend_once_a_stall():
    """VhostUserBlk.watch without KVM: requests waiting (avail ahead of used) and the used
    index still for the watchdog's time: the backend is killed; if the restarted one makes
    no progress either (a guest that broke its own ring), it is not killed again (which
    would end the run at MAX_RECONNECTS); progress re-arms it; a still queue is no stall."""
    from types import SimpleNamespace
    from popek.devices.memory import GuestMemory
    from popek.kvm import vhost_user
    ram = GuestMemory(0, 4096)
    dev = object.__new__(vhost_user.VhostUserBlk)
    kills = []
    dev.m = SimpleNamespace(ram=ram)
    dev.id, dev.path, dev.running, dev.watchdog = "disk0", "s", True, 5.0
    dev.transport = SimpleNamespace(queues=[SimpleNamespace(avail=0x100, used=0x200)])
    dev.proc = SimpleNamespace(poll=lambda: None, kill=lambda: kills.append(1))
    dev.progress, dev.hung_told, dev.stats = None, False, {"hangs": 0}
    clock = [100.0]
    dev.clock = lambda: clock[0]

    def at(t, avail, used):
        clock[0] = t
        ram.write_int(0x102, 2, avail)
        ram.write_int(0x202, 2, used)
        dev.watch()
    at(100, 3, 3)
    at(110, 3, 3)                           # nothing waits: no stall however long
    at(111, 4, 3)
    at(115, 4, 3)
    assert kills == []
    at(116.5, 4, 3)                         # 5 s with a request waiting
    assert kills == [1] and dev.stats["hangs"] == 1
    at(130, 4, 3)                           # (restarted, still nothing: left alone)
    assert kills == [1]
    at(131, 5, 4)                           # progress re-arms it
    at(137, 5, 4)
    assert kills == [1, 1] and dev.stats["hangs"] == 2
    for k in range(2, 6):                   # a guest faking progress: bounded
        at(140 + 10 * k, 5 + k, 4 + k)
        at(146 + 10 * k, 5 + k, 4 + k)
    assert len(kills) == vhost_user.MAX_WATCHDOG_KILLS and dev.stats["hangs"] == 6
