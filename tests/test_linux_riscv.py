"""Debian 13's own riscv64 Linux on popek's simulated machine (issue 16): from
power-on through OpenSBI to the busybox shell, commands typed at the console, a file
written to the ext4 file system on the virtio disk and found in the host's image
after `sync`, and `poweroff` ending popek with 0; bare, and as a guest of the VMM by
trap-and-emulate and by hardware assist (the H extension).  The kernel, busybox and modules
are Debian's (scripts/setup.sh fetches them); the initramfs is popek's
(`popek initramfs --arch riscv64`)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from popek.devices.options import parse_device, parse_host_device, parse_netdev
from tests import linux_riscv as L
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def initrd(tmp_path_factory):
    try:
        L.kernel()
    except Exception as e:                       # setup.sh fetches it: its absence is a failure
        pytest.fail(str(e))
    return L.build_initrd(tmp_path_factory.mktemp("linux") / "initrd.cpio")


COMMANDS = ["cat /proc/cpuinfo",
            "echo written-by-linux-on-popek > /mnt/hello.txt && sync && echo SYNCED",
            "uname -m", "nproc"]


def check_session(s, seen):
    out = s.output
    assert s.exit_code == 0, out[-3000:]
    assert "popek-initramfs: /dev/vda mounted on /mnt" in out
    assert "isa\t\t: rv64imafdc" in out                  # /proc/cpuinfo: F and D (issue 15)
    assert "riscv64" in out.split("uname -m", 1)[1].split("nproc", 1)[0]
    assert "reboot: Power down" in out
    assert not L.TROUBLE.search(out), L.TROUBLE.search(out).group(0)
    # On the host's file as soon as the guest's sync returned, before any unmount.
    assert seen["after_sync"] == b"written-by-linux-on-popek\n"


def sync_watch(disk, seen):
    return [(r"\n(\[vm0\] )?SYNCED\r?\n",               # ([vm0]: beside another VM)
             lambda: seen.update(after_sync=L.read_ext4_file(disk, "/hello.txt")))]


# Each NIC's interface, by its driver: "NIC eth0 virtio_net", "NIC eth1 e1000".
FIND_NICS = ("for n in /sys/class/net/eth*; do echo NIC $(basename $n) "
             "$(basename $(readlink $n/device/driver)); done; "
             "E=$(for n in /sys/class/net/eth*; do [ $(basename $(readlink $n/device/driver)) "
             "= e1000 ] && basename $n; done); V=$(for n in /sys/class/net/eth*; do "
             "[ $(basename $(readlink $n/device/driver)) = virtio_net ] && basename $n; done)")
NICS = {"devices": [parse_device("e1000,netdev=n0"), parse_device("virtio-net-pci,netdev=n1")],
        "netdevs": [parse_netdev("switch,id=n0"), parse_netdev("switch,id=n1")]}


def boot_with_two_cpus(run, initrd, tmp_path, net_commands=(), watches=(), nics=None, **kw):
    """Boot with ``run`` (bare or under the VMM) on two harts or vCPUs, with ``nics``
    (NICS unless told), type COMMANDS (and ``net_commands``), and check the session, and
    that Linux brought up and counts both CPUs."""
    disk = L.make_ext4(tmp_path / "disk.img")
    seen = {}
    s = run(initrd, disk, COMMANDS + list(net_commands),
            watches=[*sync_watch(disk, seen), *watches], smp=2, **(nics or NICS), **kw)
    check_session(s, seen)
    out = s.output
    assert "smp: Brought up 1 node, 2 CPUs" in out
    assert out.count("processor\t: ") == 2
    assert re.search(r"nproc\r?\n(\[vm0\] )?2\r?\n", out)     # ([vm0]: beside another VM)
    return s


def nic_stats(stats: dict, model: str) -> dict:
    return next(v for k, v in stats.items() if k.startswith(model + " "))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_peer(initrd, log_path, ports):
    """Debian's Linux again, in a popek process of its own, as a guest of `--vmm hw`, its
    e1000 and virtio-net each on a TCP link (a socket netdev) to the machine under test:
    a second machine to ping, which brings its NICs up itself (popek.ip=)."""
    args = [sys.executable, "-m", "popek", "run", "--vmm", "hw", "--kernel", L.kernel().image,
            "--initrd", str(initrd), "-m", "512M", "--append",
            f"{L.APPEND} {L.QUICK_BOOT} popek.ip=e1000:10.0.0.2/24,virtio_net:10.0.1.2/24",
            "--netdev", f"socket,id=a,connect=127.0.0.1:{ports[0]}",
            "--device", "e1000,netdev=a,mac=52:54:00:00:00:02",
            "--netdev", f"socket,id=b,connect=127.0.0.1:{ports[1]}",
            "--device", "virtio-net-pci,netdev=b,mac=52:54:00:00:01:02"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(log_path, "wb") as log:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env)


def wait_for_prompt(peer, log_path, minutes=20):
    """Block (the machine under test stands still meanwhile) until the peer's shell is up."""
    end = time.monotonic() + 60 * minutes
    while time.monotonic() < end:
        text = log_path.read_bytes().decode(errors="replace")
        if L.PROMPT in text:
            return
        if peer.poll() is not None:
            raise AssertionError(f"the peer stopped ({peer.returncode}):\n{text[-3000:]}")
        time.sleep(1)
    raise AssertionError("the peer did not reach its prompt in time")


def test_linux_boots_bare_with_two_harts_to_a_shell_and_writes_its_disk(initrd, tmp_path):
    """--smp 2: OpenSBI starts the second hart for Linux through SBI HSM; both run (in
    popek's deterministic round robin), and the shell counts two processors.  It pings a
    second Linux machine, in a popek process of its own as a guest of the VMM (`--vmm
    hw`), over an e1000 and over a virtio-net, each end driven by Linux's own module,
    each link a TCP socket netdev (QEMU's framing)."""
    ports = free_ports(2)
    log_path = tmp_path / "peer.log"
    peer = start_peer(initrd, log_path, ports)
    nics = {"devices": [parse_device("e1000,netdev=a"), parse_device("virtio-net-pci,netdev=b")],
            "netdevs": [parse_netdev(f"socket,id=a,listen=127.0.0.1:{ports[0]}"),
                        parse_netdev(f"socket,id=b,listen=127.0.0.1:{ports[1]}")]}
    try:
        s = boot_with_two_cpus(L.run_bare, initrd, tmp_path, [
            FIND_NICS,
            "ip link set $E up; ip link set $V up; ip addr add 10.0.0.1/24 dev $E; "
            "ip addr add 10.0.1.1/24 dev $V; echo WAIT-$((3*7))",
            "ping -c 3 10.0.0.2; ping -c 3 10.0.1.2"],
            watches=[(r"\nWAIT-21\r?\n", lambda: wait_for_prompt(peer, log_path))], nics=nics)
    finally:
        peer.terminate()
        peer.wait(timeout=60)
    assert all(h.instret > 10_000_000 for h in s.machine.harts)     # the second one worked
    out, peer_out = s.output, log_path.read_bytes().decode(errors="replace")
    assert "e1000 0000:00:01.0 eth" in out and "NIC Link is Up 1000 Mbps Full Duplex" in out
    assert "(e1000) is 10.0.0.2/24" in peer_out and "(virtio_net) is 10.0.1.2/24" in peer_out
    assert "64 bytes from 10.0.0.2" in out and "64 bytes from 10.0.1.2" in out
    assert out.count("3 packets transmitted, 3 packets received") == 2
    for model in ("e1000", "virtio-net"):
        nic = nic_stats(s.stats, model)
        assert nic["tx_packets"] >= 3 and nic["rx_packets"] >= 3 and not nic["guest_errors"]


SNAPS: dict[str, dict] = {}


def snapshot(name):
    """A machine watch: vm0's ledger details now, as SNAPS[name]."""
    return lambda hv: SNAPS.__setitem__(name, dict(hv.vms[0].ledger.details))


def test_linux_runs_as_a_guest_of_the_trap_and_emulate_vmm(initrd, tmp_path):
    """The same, deprivileged: the kernel runs in the hart's U-mode on shadow page tables,
    its SBI calls (timer, IPIs, remote fences, console, shutdown, hart start) served by
    the VMM; the VM has two vCPUs, multiplexed on the VMM's hart.  Beside it a second VM,
    our guest OS's network responder, with an e1000 and a virtio-net too: Linux pings it
    over each (10.0.0.2 answers on its e1000, 10.0.1.2 on its virtio-net), and the
    ledger counts the device registers each driver touched."""
    from popek.vmm.vm import VmConfig
    peer = VmConfig(kernel=str(ROOT / "guests" / "build" / "kernel.elf"), name="peer",
                    append="netecho", memory=32 << 20, netdevs=[parse_netdev("switch,id=p0"),
                                                               parse_netdev("switch,id=p1")],
                    devices=[parse_device("e1000,netdev=p0"),
                             parse_device("virtio-net-pci,netdev=p1")])
    s = boot_with_two_cpus(L.run_vmm, initrd, tmp_path, [
        FIND_NICS,
        "ip link set $E up; ip link set $V up; ip addr add 10.0.0.1/24 dev $E; "
        "ip addr add 10.0.1.1/24 dev $V; sleep 2",
        # (each marker computed, so the typed line, wrapped, can never match it)
        "echo PINGS-$((3*7)); ping -c 3 10.0.0.2; echo E1000-$((3*7)); ping -c 3 10.0.1.2; "
        "echo NET-$((3*7))"],
        peers=[peer], peers_done=r"\[vm0\] NET-21\r?\n",
        machine_watches=[(r"\[vm0\] PINGS-21\r?\n", snapshot("start")),
                         (r"\[vm0\] E1000-21\r?\n", snapshot("e1000")),
                         (r"\[vm0\] NET-21\r?\n", snapshot("virtio"))])
    out = s.output
    assert "64 bytes from 10.0.0.2" in out and "64 bytes from 10.0.1.2" in out
    assert out.count("3 packets transmitted, 3 packets received") == 2
    for vm in s.machine.vms:
        stats = vm.platform.device_stats()
        for model in ("e1000", "virtio-net"):
            nic = nic_stats(stats, model)
            assert nic["rx_packets"] >= 3 and nic["tx_packets"] >= 3 and not nic["guest_errors"]
    # Linux's own drivers, per ping (3 echo requests and replies, and an ARP exchange):
    # the e1000's register exits against virtio-net's, from the ledger between the runs.
    per_ping = {nic: {k[1]: n - SNAPS[before].get(k, 0) for k, n in SNAPS[after].items()
                      if k[0].startswith("mmio") and k[1].startswith(nic)
                      and n > SNAPS[before].get(k, 0)}
                for nic, before, after in (("e1000", "start", "e1000"),
                                           ("virtio-net", "e1000", "virtio"))}
    print("Linux's drivers, register exits during three pings:", per_ping)
    details = s.machine.vms[0].ledger.details
    for access in (("mmio_write", "e1000 TDT"), ("mmio_read", "e1000 ICR"),
                   ("mmio_write", "e1000 RDT"), ("mmio_write", "virtio-net notify"),
                   ("mmio_read", "e1000 EECD"), ("mmio_write", "e1000 MDIC")):
        assert details.get(access, 0) > 0, access
    ledger = s.machine.vms[0].ledger
    counts = ledger.counts
    for reason in ("csr", "sret", "sbi", "sfence_vma", "page_fault_shadow", "page_fault_guest",
                   "ecall_user", "interrupt", "mmio_read", "mmio_write"):
        assert counts.get(reason, 0) > 0, reason
    assert ledger.details[("sbi", "time")] > 0               # its timer, through SBI
    assert ledger.details[("sbi", "base")] > 0               # probing the SBI extensions
    assert ledger.details[("sbi", "hsm")] > 0                # starting the second vCPU
    assert ledger.details[("sbi", "ipi")] > 0                # and talking to it


def test_linux_runs_in_vs_mode_under_hardware_assist(tmp_path):
    """Debian's kernel as a guest of `--vmm hw`: in the H extension's VS-mode, on nested
    paging; with a disk whose driver is in a driver domain that crashes mid-copy.  Its own traps, CSR accesses, sret, fences and page tables never exit: what
    does is SBI, the first touch of its memory, its devices and its idle wfi.  It is given
    a physical e1000 of the host (passthrough, behind the IOMMU), which its own e1000
    driver brings up and pings our guest OS's responder in a second VM through: not one
    of the NIC's register accesses exits.  (Kept to a few minutes: the virtio and e1000
    modules only, so the disk is written raw and read back from the host image after
    `sync`; and without the crypto self-tests (make run's quick command line), over half
    of a boot's instructions, which the two boots above run and check.)"""
    from popek.linux import initramfs
    from popek.files import write_atomically
    from popek.vmm.vm import VmConfig
    k = L.kernel()
    data, _ = initramfs.build(k.modules, busybox=k.busybox, arch="riscv64",
                              modules=["virtio_mmio", "virtio_blk", "e1000", "nvme"])
    initrd = tmp_path / "lean.cpio"
    write_atomically(str(initrd), data)
    disk = tmp_path / "raw.img"
    disk.write_bytes(bytes(4 << 20))
    seen = {}
    # (two VMs: each line of Linux's is prefixed with its name)
    watch = [(r"\[vm0\] RAW-SYNCED\r?\n",
              lambda: seen.update(after_sync=disk.read_bytes()[:16]))]
    peer = VmConfig(kernel=str(ROOT / "guests" / "build" / "kernel.elf"), name="peer",
                    append="netecho", memory=32 << 20, cpu="hw", paging="nested",
                    netdevs=[parse_netdev("switch,id=p1")],
                    devices=[parse_device("virtio-net-pci,netdev=p1")])
    nvme = tmp_path / "nvme.img"
    nvme.write_bytes(bytes(4 << 20))
    # A third disk, reached through an ordinary virtio-blk whose driver runs in a driver
    # domain, which crashes in its request 5 (the copy below's third write: before it,
    # Linux's probe reads two) and is restarted.
    domain_disk = tmp_path / "domain.img"
    domain_disk.write_bytes(bytes(8 << 20))
    host = {"host_devices": [parse_host_device("e1000,id=pnic,netdev=p0"),
                             parse_host_device(f"nvme,id=pdisk,drive={nvme}"),
                             parse_host_device(f"nvme,id=ddisk,drive={domain_disk}")],
            "netdevs": [parse_netdev("switch,id=p0")],
            "drivers": "domains", "faults": {"ddisk": 4}}
    # (what is copied: the start of busybox, whose bytes the test has; /dev/urandom would
    # wait for entropy, and seq's output is slow to make)
    copied = Path(k.busybox).read_bytes()[:256 << 10]
    s = L.run_vmm(initrd, disk, [
        "cat /proc/cpuinfo", "echo popek-vs-mode > /dev/vda && sync && echo RAW-SYNCED",
        "echo popek-nvme-passthrough > /dev/nvme0n1 && sync && echo NVME-$((3*7))",
        "for d in /sys/block/vd*; do [ $(cat $d/size) = 16384 ] && D=/dev/${d##*/}; done; "
        f"head -c {len(copied)} /bin/busybox > /tmp/f && dd if=/tmp/f of=$D bs=64k "
        f"oflag=direct conv=fsync && head -c {len(copied)} $D > /tmp/g && cmp /tmp/f /tmp/g "
        "&& echo DOMAIN-$((3*7))",
        FIND_NICS + "; ip link set $E up; ip addr add 10.0.0.1/24 dev $E; sleep 2; "
        "ping -c 3 10.0.0.2; echo NET-$((3*7))"],
        watches=watch, cpu="hw", append=L.APPEND + " " + L.QUICK_BOOT,
        passthrough=["pnic", "pdisk"], disks=["ddisk"], host=host, peers=[peer],
        peers_done=r"\[vm0\] NET-21\r?\n")
    out = s.output
    assert s.exit_code == 0, out[-3000:]
    assert "NIC eth0 e1000" in out and "64 bytes from 10.0.0.2" in out
    assert "3 packets transmitted, 3 packets received" in out
    linux = s.machine.vms[0]
    # Its registers are reached without exits; what exits is its I/O BAR (64 ports in
    # the VM's shared PCI I/O window, less than a page: trapped and forwarded, as VFIO
    # does port I/O), which Linux's driver uses to reset the chip.
    nic_exits = {d: n for (reason, d), n in linux.ledger.details.items()
                 if reason.startswith("mmio") and d.startswith("e1000")}
    print("Linux's passed-through e1000, exits:", nic_exits)
    assert set(nic_exits) <= {"e1000 IOADDR", "e1000 IODATA"} and sum(nic_exits.values()) < 20
    assert linux.ledger.counts["passthrough_irq"] > 0
    assert linux.ledger.counts["passthrough_map"] < 64
    iommu = s.stats["iommu"]
    assert iommu["translations"] > 10 and iommu["faults"] == 0
    # Its NVMe disk too, with Linux's own nvme driver: the bytes are on the host file.
    assert "NVME-21" in out and "nvme0n1" in out
    assert nvme.read_bytes()[:23] == b"popek-nvme-passthrough\n"
    assert s.stats["host pdisk"]["writes"] >= 1
    # The copy through the driver domain survived its crash: Linux's cmp of what it
    # wrote with the disk, the bytes on the host file, one crash, one restart.
    assert "[domain-ddisk] blkback: crashing in request 5" in out
    assert "DOMAIN-21" in out and "cmp:" not in out
    assert domain_disk.read_bytes()[:len(copied)] == copied
    ddisk = s.stats["driver ddisk"]
    assert ddisk["crashes"] == ddisk["restarts"] == 1 and ddisk["replayed"] >= 1
    assert "isa\t\t: rv64imafdc_" in out                  # the guest's hart has no H
    assert seen["after_sync"] == b"popek-vs-mode\n" + bytes(2)
    assert "reboot: Power down" in out
    assert not L.TROUBLE.search(out), L.TROUBLE.search(out).group(0)
    counts = s.machine.vms[0].ledger.counts
    for reason in ("sbi", "page_fault_nested", "mmio_read", "mmio_write", "wfi"):
        assert counts.get(reason, 0) > 0, reason
    for reason in ("csr", "sret", "sfence_vma", "page_fault_shadow", "page_fault_guest",
                   "ecall_user", "interrupt", "counter", "exception_reflected"):
        assert reason not in counts, reason
    assert sum(counts.values()) < 100_000                  # trap-and-emulate: millions
