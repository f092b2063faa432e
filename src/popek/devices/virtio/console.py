"""virtio-console (virtio v1.2, section 5.3): one port, without MULTIPORT: receiveq0
(queue 0, host to guest) and transmitq0 (queue 1, guest to host).

Config space (5.3.4): cols u16 @0, rows u16 @2, max_nr_ports u32 @4, emerg_wr u32 @8.
Features offered: VIRTIO_CONSOLE_F_SIZE (80x25) and VIRTIO_CONSOLE_F_EMERG_WRITE (a
byte written to emerg_wr goes out at once, before the queues exist).

The port is the machine's console: what the guest transmits is written to it, and
host input waits in a bounded buffer (``MAX_INPUT``) for the guest's receive buffers.
Where both a 16550 and a virtio console exist, output from either reaches the
terminal, and input goes to the virtio console once its driver is ready (QEMU gives
stdio to one device, the one its ``-chardev stdio`` names).
"""

from __future__ import annotations

import struct

F_SIZE, F_EMERG_WRITE = 1 << 0, 1 << 2
RX, TX = 0, 1
MAX_INPUT = 64 << 10
MAX_WRITE = 64 << 10          # bytes of one transmit chain taken (the rest ignored)


class VirtioConsole:
    device_id = 3
    name = "console"
    num_queues = 2
    queue_max = 64
    features = F_SIZE | F_EMERG_WRITE

    def __init__(self, mem, output):
        self.mem = mem
        self.output = output                     # callable(bytes): the machine's console
        self.input = bytearray()
        self.kick = lambda queue: None            # the transport's: a queue has work
        self.stats = {"tx_bytes": 0, "rx_bytes": 0, "tx_requests": 0, "input_dropped": 0}
        self.ready_for_input = False

    def describe(self) -> str:
        return "virtio-console"

    def reset(self) -> None:
        self.ready_for_input = False

    def negotiated(self, features: int) -> None:
        pass

    def started(self, driver_ok: bool) -> None:
        """Host input comes here once the driver is up (DRIVER_OK), not before."""
        self.ready_for_input = driver_ok

    def read_config(self, off: int, size: int) -> int:
        config = struct.pack("<HHII", 80, 25, 1, 0)
        return int.from_bytes(config[off:off + size], "little") if off + size <= len(config) else 0

    def write_config(self, off: int, size: int, value: int) -> None:
        if off == 8:                              # emerg_wr: one character, now
            self.output(bytes([value & 0xFF]))
            self.stats["tx_bytes"] += 1

    def push_input(self, data: bytes) -> None:
        """Host input (the machine's console) for the guest."""
        room = MAX_INPUT - len(self.input)
        self.input += data[:room]
        self.stats["input_dropped"] += max(0, len(data) - room)
        if self.input:
            self.kick(RX)

    def ready(self, queue: int) -> bool:
        return queue != RX or bool(self.input)

    def process(self, queue: int, chain) -> int:
        if queue == TX:
            budget, out = MAX_WRITE, []
            for addr, length in chain.readable:
                n = min(length, budget)
                out.append(self.mem.read(addr, n))
                budget -= n
                if not budget:
                    break
            data = b"".join(out)
            self.output(data)
            self.stats["tx_bytes"] += len(data)
            self.stats["tx_requests"] += 1
            return 0
        written = 0
        for addr, length in chain.writable:
            piece = bytes(self.input[:length])
            if not piece:
                break
            self.mem.write(addr, piece)
            del self.input[:len(piece)]
            written += len(piece)
        self.stats["rx_bytes"] += written
        return written
