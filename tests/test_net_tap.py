"""`--netdev tap`: our guest OS's responder answers ICMP echo from the host through a
TAP interface, over an e1000 and over virtio-net.  The TAP lives in a network
namespace the test makes (`unshare -n`), so the host's own networking is untouched;
it needs the rights to make one (root, or user namespaces) and /dev/net/tun."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _can_make_a_namespace() -> str | None:
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun on this host"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2)"
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if r.returncode != 0:
        return f"cannot make a network namespace here: {r.stderr.decode().strip()}"
    return None


REASON = _can_make_a_namespace()


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
@pytest.mark.parametrize("model", ["e1000", "virtio-net-pci"])
def test_the_guest_answers_ping_through_a_tap(guest_build, model):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run(["unshare", "-n", sys.executable, str(ROOT / "tests" / "tap_ping.py"),
                        model], capture_output=True, text=True, timeout=180, env=env)
    assert "REPLIES 3" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    assert "netecho: 1 NICs" in r.stdout
