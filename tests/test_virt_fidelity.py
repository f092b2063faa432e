"""Guests written for QEMU's virt board run unmodified: behaviours of QEMU 7.2's
board that such guests rely on, shown by one program (tests/riscv/virt/fidelity.c)
that prints what it finds, run under qemu-system-riscv64 and under popek, whose
outputs must be the same line for line:

- the virtio-mmio identity registers (magic, version 2, DeviceID, VendorID "QEMU":
  drivers check the vendor and refuse others), and all eight slots there, empty
  ones answering DeviceID 0 (a program probing slot by slot faulted on popek);
- FEATURES_OK kept for a modern-transport driver that did not accept VERSION_1;
- PCIe through ECAM: QEMU's host bridge at 00:00.0, a modern virtio-rng-pci in the
  first free slot with INTA#, nothing after it;
- the PLIC latching a request when the UART raises its line and not again at
  completion while the line stays high, and the 16550 making a new request at a
  state change while its line is already high (a received byte while a THR-empty
  interrupt is unacknowledged): before, popek stormed in the first case and missed
  the byte in the second.

QEMU 7.2's virtio-mmio is legacy (version 1) unless told otherwise; QEMU runs with
force-legacy=false, as teaching kernels run it (popek implements version 2 only;
docs/virt-fidelity.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import fdt
import pytest

from popek.console import ScriptedConsole
from popek.devices.options import parse_device
from popek.riscv.board import BoardConfig, DriveSpec, VirtBoard
from tests.conftest import ROOT

QEMU = "qemu-system-riscv64"
VIRT_DIR = ROOT / "tests" / "riscv" / "virt"
EXPECTED = """virtio: magic=74726976 version=2 device=2 vendor=554d4551
virtio: FEATURES_OK without VERSION_1: kept
plic: uart raised: pending=1 claim=a
plic: completed, line still high: pending=0 claim=0
plic: a byte received while high: pending=1 claim=a byte=78
pci: 00:00.0 id=81b36 class=6000000 pin=0
pci: 00:01.0 id=10441af4 class=ff0001 pin=1
pci: 00:02.0 id=ffffffff
fidelity: done
"""


@pytest.fixture(scope="module")
def fidelity(tmp_path_factory):
    r = subprocess.run(["make", "-s", "-C", str(VIRT_DIR)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"building tests/riscv/virt failed:\n{r.stdout}{r.stderr}")
    disk = tmp_path_factory.mktemp("virt") / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    return VIRT_DIR / "build" / "fidelity.elf", disk


def popek_output(elf, disk) -> tuple[int | None, str]:
    con = ScriptedConsole()
    board = VirtBoard(BoardConfig(bios=None, kernel=str(elf), drives=[DriveSpec(str(disk))],
                                  devices=[parse_device("virtio-rng-pci")],
                                  max_instructions=5_000_000), console=con)
    code = board.run()
    board.close()
    return code, con.text().replace("\r\n", "\n")


def test_popek_behaves_as_qemus_virt_board(fidelity):
    code, out = popek_output(*fidelity)
    assert code == 0
    assert out == EXPECTED


@pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} is not installed")
def test_qemu_prints_the_same(fidelity):
    """The expectations above are QEMU's own, not popek's idea of them."""
    elf, disk = fidelity
    r = subprocess.run([QEMU, "-M", "virt", "-m", "128M", "-bios", "none", "-kernel", str(elf),
                        "-nographic", "-global", "virtio-mmio.force-legacy=false",
                        "-drive", f"file={disk},if=none,format=raw,id=d0",
                        "-device", "virtio-blk-device,drive=d0",
                        "-device", "virtio-rng-pci,disable-legacy=on"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.replace("\r\n", "\n") == EXPECTED


def _hart_wiring(dtb: bytes) -> tuple[list, list, list]:
    """Per hart (by the cpu node's reg): the causes the PLIC and the CLINT wire to its
    interrupt controller, in the order of their interrupts-extended cells."""
    tree = fdt.parse_dtb(dtb)
    intc = {}
    for cpu in tree.get_node("/cpus").nodes:
        if cpu.name.startswith("cpu@"):
            ph = cpu.get_subnode("interrupt-controller").get_property("phandle").value
            intc[ph] = cpu.get_property("reg").value
    cells = {}
    for node in tree.get_node("/soc").nodes:
        for kind in ("plic", "clint"):
            if node.name.startswith(kind + "@"):
                d = list(node.get_property("interrupts-extended").data)
                cells[kind] = [(intc[d[i]], d[i + 1]) for i in range(0, len(d), 2)]
    return sorted(intc.values()), cells["plic"], cells["clint"]


def test_harts_are_wired_as_on_qemu(fidelity, tmp_path):
    """--smp 4: four cpu nodes, and the PLIC's contexts (M then S, hart by hart) and the
    CLINT's msip/mtimecmp wired to each hart's interrupt controller in QEMU's order."""
    qemu_dtb = tmp_path / "qemu.dtb"
    r = subprocess.run([QEMU, "-M", f"virt,dumpdtb={qemu_dtb}", "-smp", "4", "-m", "128M",
                        "-nographic", "-bios", "none"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    board = VirtBoard(BoardConfig(bios=None, kernel=str(fidelity[0]), smp=4),
                      console=ScriptedConsole())
    board.close()
    ours = _hart_wiring(board.dtb)
    assert ours == _hart_wiring(qemu_dtb.read_bytes())
    assert ours[0] == [0, 1, 2, 3]
    assert ours[1][:4] == [(0, 11), (0, 9), (1, 11), (1, 9)]


@pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} is not installed")
@pytest.mark.parametrize("model", ["e1000", "virtio-net-pci"])
def test_our_os_on_qemu_talks_to_our_os_on_popek(guest_build, model):
    """The same NIC on both boards, linked by a socket netdev (QEMU's framing): our guest
    OS's benchmark client on QEMU (its PCI code, its driver on QEMU's device model) and
    its responder on popek exchange every frame of the benchmark."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kernel = str(guest_build / "kernel.elf")
    popek = subprocess.Popen([sys.executable, "-m", "popek", "run", "--kernel", kernel,
                              "--append", "netecho", "--stats", "--netdev",
                              f"socket,id=n0,listen=127.0.0.1:{port}", "--device",
                              f"{model},netdev=n0"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        for _ in range(300):                           # QEMU connects once: popek must listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        qemu = subprocess.run([QEMU, "-M", "virt", "-m", "128M", "-kernel", kernel, "-append",
                               "netbench", "-nographic", "-netdev",
                               f"socket,id=n0,connect=127.0.0.1:{port}", "-device",
                               f"{model},netdev=n0,mac=52:54:00:00:00:99"
                               + (",disable-legacy=on" if model.startswith("virtio") else "")],
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        out, _ = popek.communicate(timeout=60)
    finally:
        popek.kill()
    assert "BENCH net_pingpong_net0 iters=200" in qemu.stdout, qemu.stdout[-2000:]
    assert "BENCH DONE" in qemu.stdout
    assert "netecho: done" in out, out[-2000:]
    rx = int(re.search(r"rx_packets=([\d,]+)", out).group(1).replace(",", ""))
    assert rx >= 714                                   # HELLO(s), 200 pings, 512 bulk, QUIT
