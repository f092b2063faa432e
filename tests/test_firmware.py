"""End to end: Debian's OpenSBI and U-Boot, unmodified, on the simulated board.

These boot real firmware (tens of millions of guest instructions each) and are
marked slow; CI runs them too.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from popek.console import ScriptedConsole
from popek.riscv.board import BoardConfig, DriveSpec, VirtBoard

pytestmark = pytest.mark.slow
PROMPT = r"=> "
DISK_MAGIC = b"POPEK-TEST-DISK!"


@pytest.fixture
def disk(tmp_path):
    img = tmp_path / "disk.img"
    img.write_bytes(DISK_MAGIC + bytes(range(256)) * 2 + bytes(1 << 20))
    return img


def session(bios, kernel, disk, steps, max_instructions=150_000_000):
    con = ScriptedConsole(steps)
    cfg = BoardConfig(bios=str(bios), kernel=str(kernel) if kernel else None,
                      drives=[DriveSpec(str(disk))], max_instructions=max_instructions)
    board = VirtBoard(cfg, console=con)
    code = board.run()
    board.close()
    return code, con.text(), con, board


COMMANDS = [
    ("Hit any key to stop autoboot", " "),
    (PROMPT, "version\n"),
    (PROMPT, "bdinfo\n"),
    (PROMPT, "virtio scan\n"),
    (PROMPT, "virtio info\n"),
    (PROMPT, "md 0x80000000 8\n"),
    (PROMPT, "virtio read 0x84000000 0 1\n"),
    (PROMPT, "md.b 0x84000000 0x10\n"),
    (PROMPT, "mw.b 0x85000000 0x5a 0x400\n"),
    (PROMPT, "virtio write 0x85000000 4 2\n"),
    (PROMPT, "poweroff\n"),
]


def check_uboot_session(code, text, con, disk):
    assert con.done(), f"session stalled; output ends with:\n{text[-2000:]}"
    assert code == 0
    assert "U-Boot 2023.01" in text
    assert "riscv64-linux-gnu-gcc" in text                         # `version`
    assert "-> start    = 0x0000000080000000" in text              # `bdinfo`
    assert "Capacity: 1.0 MB" in text and "Block Device" in text   # `virtio info`
    assert "1 blocks read: OK" in text
    assert "50 4f 50 45 4b 2d 54 45 53 54 2d 44 49 53 4b 21" in text  # DISK_MAGIC read back
    assert "2 blocks written: OK" in text
    data = disk.read_bytes()
    assert data[4 * 512:6 * 512] == b"\x5a" * 1024                 # the guest's write, on disk
    assert data[:16] == DISK_MAGIC                                  # and nothing else touched


def test_opensbi_then_smode_uboot(opensbi, uboot_smode, disk):
    code, text, con, board = session(opensbi, uboot_smode, disk, COMMANDS)
    assert "OpenSBI v1.1" in text
    assert "Boot HART Base ISA        : rv64imafdc" in text
    assert "Domain0 Next Mode         : S-mode" in text
    check_uboot_session(code, text, con, disk)
    assert board.drives[0].stats["flushes"] >= 0


def test_mmode_uboot_alone(uboot_mmode, disk):
    code, text, con, board = session(uboot_mmode, None, disk, COMMANDS)
    assert "OpenSBI" not in text
    check_uboot_session(code, text, con, disk)


def test_cli_boots_to_prompt_and_powers_off(opensbi, uboot_smode):
    """The README's command, through the real CLI and stdin/stdout pipes."""
    p = subprocess.Popen([sys.executable, "-m", "popek", "run", "--bios", str(opensbi),
                          "--kernel", str(uboot_smode), "--stats"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = b""
    deadline = time.time() + 300
    import os
    os.set_blocking(p.stdout.fileno(), False)
    sent = []
    script = [(b"Hit any key", b" "), (b"=> ", b"version\n"), (b"=> ", b"poweroff\n")]
    pos = 0
    while p.poll() is None and time.time() < deadline:
        chunk = p.stdout.read() or b""
        out += chunk
        if script and script[0][0] in out[pos:]:
            pos = out.index(script[0][0], pos) + len(script[0][0])
            p.stdin.write(script[0][1])
            p.stdin.flush()
            sent.append(script.pop(0))
        time.sleep(0.05)
    if p.poll() is None:
        p.kill()
        pytest.fail(f"popek did not power off; output ends with {out[-500:]!r}")
    out += p.stdout.read() or b""
    err = p.stderr.read().decode()
    assert p.returncode == 0, err
    assert b"OpenSBI v1.1" in out and b"U-Boot 2023.01" in out
    assert b"poweroff ..." in out
    assert "instructions" in err and "Traceback" not in err
