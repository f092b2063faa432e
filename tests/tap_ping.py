"""Run inside a network namespace of its own (tests/test_net_tap.py starts it with
`unshare -n`): make a TAP interface, boot our guest OS's network responder on a NIC
whose netdev is that TAP (`popek run ... --nic tap,ifname=tap0,model=MODEL`), and ping
it from the host side with ICMP echo over a raw socket.  Prints "REPLIES n" and
popek's output."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checksum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ping(sock, seq: int, timeout: float) -> bool:
    body = struct.pack("!BBHHH", 8, 0, 0, 0x1234, seq) + b"popek-tap" * 4
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    sock.sendto(body, ("10.0.0.2", 0))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data, addr = sock.recvfrom(2048)
        except socket.timeout:
            return False
        icmp = data[(data[0] & 15) * 4:]
        if addr[0] == "10.0.0.2" and icmp[0] == 0 and struct.unpack("!H", icmp[6:8])[0] == seq:
            return True
    return False


def main():
    model = sys.argv[1]
    for cmd in ("ip link set lo up", "ip tuntap add dev tap0 mode tap", "ip link set tap0 up",
                "ip addr add 10.0.0.1/24 dev tap0"):
        subprocess.run(cmd.split(), check=True)
    popek = subprocess.Popen([sys.executable, "-m", "popek", "run", "--kernel",
                              os.path.join(ROOT, "guests", "build", "kernel.elf"),
                              "--append", "netecho", "--nic", f"tap,ifname=tap0,model={model}",
                              "--stats"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    replies = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ping(sock, 0, 1.0):   # until it is up
        if popek.poll() is not None:
            break
    for seq in range(1, 4):
        replies += ping(sock, seq, 2.0)
    popek.terminate()
    out, _ = popek.communicate(timeout=30)
    print(f"REPLIES {replies}")
    print(out)


if __name__ == "__main__":
    main()
