"""What a NIC does for its driver's offloads: Internet checksums inserted into a
frame, and TCP segmentation (TSO): one large TCP packet cut into MSS-sized frames,
each with its own IP length, IP ID, TCP sequence number, flags and checksums.

Described by an e1000 TCP/IP context descriptor (:class:`Context`): where the IP
header starts (IPCSS), where its checksum goes (IPCSO) and where the summed range
ends (IPCSE, 0: the packet's end); the same three for TCP/UDP (TUCSS, TUCSO,
TUCSE); TUCMD (TCP or UDP, IPv4 or IPv6, TSE); HDRLEN and MSS for segmentation.
The driver seeds the TCP/UDP checksum field with the pseudo-header's sum (for TSO,
without the length, which differs per segment and is added here).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

TUCMD_TCP, TUCMD_IP = 1 << 0, 1 << 1


class OffloadError(Exception):
    """A context the packet cannot be segmented by (fields the guest made up)."""
POPTS_IXSM, POPTS_TXSM = 1 << 0, 1 << 1
MIN_MSS = 64                    # fewer bytes per segment is a driver's mistake: one frame
TCP_FIN, TCP_PSH = 0x01, 0x08


@dataclass(frozen=True)
class Context:
    ipcss: int
    ipcso: int
    ipcse: int
    tucss: int
    tucso: int
    tucse: int
    tucmd: int
    hdrlen: int
    mss: int

    @classmethod
    def unpack(cls, raw: bytes) -> "Context":
        ipcss, ipcso, ipcse, tucss, tucso, tucse = struct.unpack_from("<BBHBBH", raw)
        return cls(ipcss, ipcso, ipcse, tucss, tucso, tucse, raw[11], raw[13],
                   int.from_bytes(raw[14:16], "little"))


def ones_sum(data: bytes, start: int = 0) -> int:
    """The 16-bit ones'-complement sum of ``data`` (big-endian words, odd byte padded)."""
    n = len(data)
    total = start + sum(struct.unpack(f"!{n // 2}H", data[:n & ~1]))
    if n & 1:
        total += data[-1] << 8
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _insert(frame: bytearray, start: int, end: int, at: int, extra: int = 0) -> None:
    """Sum ``frame[start:end]`` (plus ``extra``) and store its complement at ``at``."""
    if not (0 <= start < end <= len(frame) and 0 <= at <= len(frame) - 2):
        return                              # offsets past the frame: nothing to insert
    frame[at:at + 2] = struct.pack("!H", ~ones_sum(bytes(frame[start:end]), extra) & 0xFFFF)


def _checksums(frame: bytearray, ctx: Context, popts: int, tcp_len_extra: int = 0) -> None:
    if popts & POPTS_IXSM:
        end = ctx.ipcse + 1 if ctx.ipcse else len(frame)
        if 0 <= ctx.ipcso <= len(frame) - 2:
            frame[ctx.ipcso:ctx.ipcso + 2] = b"\0\0"
        _insert(frame, ctx.ipcss, end, ctx.ipcso)
    if popts & POPTS_TXSM:
        end = ctx.tucse + 1 if ctx.tucse else len(frame)
        _insert(frame, ctx.tucss, end, ctx.tucso, tcp_len_extra)


def checksum(packet: bytes, ctx: Context, popts: int) -> bytes:
    """``packet`` with the checksums ``popts`` asks for inserted."""
    frame = bytearray(packet)
    _checksums(frame, ctx, popts)
    return bytes(frame)


def segment(packet: bytes, ctx: Context, popts: int) -> list[bytes]:
    """TCP segmentation: the frames an MSS-sized cut of ``packet``'s payload makes."""
    hdrlen, mss = ctx.hdrlen, ctx.mss
    if not ctx.tucmd & TUCMD_TCP or mss < MIN_MSS or not 0 < hdrlen < len(packet) \
            or not ctx.ipcss < ctx.tucss <= hdrlen - 20:
        return [checksum(packet, ctx, popts)]
    header, payload = packet[:hdrlen], packet[hdrlen:]
    ip, tcp = ctx.ipcss, ctx.tucss
    ipv4 = bool(ctx.tucmd & TUCMD_IP)
    # Every segment's IP length must fit its 16 bits (and IPv6's 40-byte header be there).
    if (hdrlen - ip + mss > 0xFFFF) if ipv4 else not 40 <= hdrlen - ip <= 0xFFFF - mss + 40:
        raise OffloadError(f"TSO context: header {hdrlen}, IP at {ip}, MSS {mss} make no "
                           "valid segment")
    ip_id = int.from_bytes(header[ip + 4:ip + 6], "big")
    seq = int.from_bytes(header[tcp + 4:tcp + 8], "big")
    frames = []
    for i, at in enumerate(range(0, len(payload), mss)):
        chunk = payload[at:at + mss]
        last = at + mss >= len(payload)
        f = bytearray(header)
        if ipv4:
            f[ip + 2:ip + 4] = struct.pack("!H", hdrlen - ip + len(chunk))
            f[ip + 4:ip + 6] = struct.pack("!H", (ip_id + i) & 0xFFFF)
        else:                               # IPv6: the payload length after its 40 bytes
            f[ip + 4:ip + 6] = struct.pack("!H", hdrlen - ip - 40 + len(chunk))
        f[tcp + 4:tcp + 8] = struct.pack("!I", (seq + at) & 0xFFFFFFFF)
        if not last:
            f[tcp + 13] &= ~(TCP_FIN | TCP_PSH) & 0xFF
        f += chunk
        # The driver's seed lacks the TCP length (it differs per segment): add it.
        _checksums(f, Context(ctx.ipcss, ctx.ipcso, ctx.ipcse, ctx.tucss, ctx.tucso, 0,
                              ctx.tucmd, hdrlen, mss), popts, len(f) - tcp)
        frames.append(bytes(f))
    return frames
