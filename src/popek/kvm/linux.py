"""The Linux x86 boot protocol (Documentation/arch/x86/boot.rst), two ways in:

* **bzImage, 64-bit entry.**  The protected-mode part of the image goes to 1 MiB;
  a zero page (``struct boot_params``) carries the setup header copied from the
  image, the e820 memory map, the command line and the initrd; the vCPU starts
  in long mode at load address + 0x200 with ``rsi`` pointing at the zero page.
* **PVH entry of an uncompressed vmlinux.**  The ELF's segments are loaded at their
  physical addresses; the ``XEN_ELFNOTE_PHYS32_ENTRY`` note gives a 32-bit entry
  point, entered in flat protected mode with ``ebx`` pointing at an
  ``hvm_start_info`` (command line, initrd as module 0, memory map).

Debian ships only bzImages; :func:`extract_vmlinux` gets the vmlinux out of one
(as the kernel's scripts/extract-vmlinux does) for the PVH path.
"""

from __future__ import annotations

import io
import lzma
import struct
import zlib
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from popek.errors import ImageError
from popek.kvm import layout

HDRS = b"HdrS"
MIN_VERSION = 0x20C             # 2.12: xloadflags, so the 64-bit entry is announced
XLF_KERNEL_64 = 1
LOADED_HIGH, CAN_USE_HEAP = 0x01, 0x80
LOADER_UNDEFINED = 0xFF         # type_of_loader: "not one of the registered boot loaders"
# Offsets in the setup header / boot_params (boot.rst, zero-page.rst).
SETUP_SECTS, SYSSIZE, HEADER, VERSION = 0x1F1, 0x1F4, 0x202, 0x206
TYPE_OF_LOADER, LOADFLAGS = 0x210, 0x211
RAMDISK_IMAGE, RAMDISK_SIZE, HEAP_END_PTR, CMD_LINE_PTR = 0x218, 0x21C, 0x224, 0x228
INITRD_ADDR_MAX, XLOADFLAGS, CMDLINE_SIZE = 0x22C, 0x236, 0x238
PAYLOAD_OFFSET, PAYLOAD_LENGTH, INIT_SIZE = 0x248, 0x24C, 0x260
E820_ENTRIES, E820_TABLE, E820_MAX = 0x1E8, 0x2D0, 128
EXT_RAMDISK_IMAGE, EXT_RAMDISK_SIZE, EXT_CMD_LINE_PTR = 0xC0, 0xC4, 0xC8

XEN_ELFNOTE_PHYS32_ENTRY = 18
HVM_START_MAGIC = 0x336EC578


@dataclass
class Boot:
    """How to start the vCPU once the kernel is in memory."""
    kind: str                   # "bzimage-64" or "pvh"
    entry: int
    arg: int                    # rsi (boot_params) or ebx (hvm_start_info)
    kernel_end: int


HEADER_END = 0x300               # the setup header lies well within this
MAX_VMLINUX = 512 << 20         # what a kernel payload may unpack to (Debian's: ~70 MiB)


def is_bzimage(data: bytes) -> bool:
    return len(data) > HEADER_END and data[HEADER:HEADER + 4] == HDRS


def file_is_bzimage(path: str) -> bool:
    """Whether the file at ``path`` is a bzImage, from its header alone (an
    unreadable file is not: the loader will say what is wrong with it)."""
    try:
        with open(path, "rb") as f:
            return is_bzimage(f.read(HEADER_END + 1))
    except OSError:
        return False


def _u(data, off, size):
    return int.from_bytes(data[off:off + size], "little")


def _setup_size(path: str, data: bytes) -> int:
    sects = data[SETUP_SECTS] or 4
    size = (sects + 1) * 512
    if size >= len(data):
        raise ImageError(f"{path}: truncated bzImage (setup is {size} bytes of {len(data)})")
    return size


def _check_complete(path: str, data: bytes) -> int:
    """The setup size of a bzImage whose file holds all the header announces: the
    protected-mode part (``syssize`` 16-byte units) and, from protocol 2.08, the
    compressed payload inside it.  A cut file would otherwise be booted, and its
    decompressor (which lies after the payload) would be zeros or garbage."""
    setup = _setup_size(path, data)
    have = len(data) - setup
    need = _u(data, SYSSIZE, 4) * 16
    if _u(data, VERSION, 2) >= 0x208:
        need = max(need, _u(data, PAYLOAD_OFFSET, 4) + _u(data, PAYLOAD_LENGTH, 4))
    if have < need:
        raise ImageError(f"{path}: truncated bzImage: its header announces {need} bytes of "
                         f"kernel after the setup, the file has {have} (is the file complete?)")
    return setup


def _place_initrd(ram, path: str, initrd: bytes | None, low: int, limit: int) -> int:
    """Put the initrd at the top of RAM (below ``limit``); its address, or 0."""
    if not initrd:
        return 0
    top = min(ram.end, limit + 1)
    addr = (top - len(initrd)) & ~0xFFF
    if addr < low:
        raise ImageError(f"{path}: kernel and initrd ({len(initrd) >> 20} MiB) do not fit in "
                         f"{ram.size >> 20} MiB of RAM (give more with -m)")
    ram.write(addr, initrd)
    return addr


def _write_cmdline(ram, path: str, cmdline: str, limit: int) -> None:
    raw = cmdline.encode() + b"\0"
    if len(raw) > min(limit, layout.CMDLINE_MAX):
        raise ImageError(f"{path}: kernel command line too long ({len(raw)} bytes, "
                         f"the kernel takes {limit})")
    ram.write(layout.CMDLINE, raw)


def load_bzimage(ram, path: str, data: bytes, cmdline: str, initrd: bytes | None,
                 vmlinux: bytes | None = None) -> Boot:
    """Load a bzImage for its 64-bit entry.  Given ``vmlinux`` (what
    :func:`extract_vmlinux` unpacked from it), popek has done the decompressor's
    work itself: the vmlinux is loaded at its physical addresses and entered at its
    own 64-bit entry (``startup_64``, which takes the same zero page), as
    Firecracker boots a vmlinux."""
    version = _u(data, VERSION, 2)
    if version < MIN_VERSION or not _u(data, XLOADFLAGS, 2) & XLF_KERNEL_64:
        raise ImageError(f"{path}: boot protocol {version >> 8}.{version & 0xFF} without a "
                         "64-bit entry point (popek needs 2.12+, a 64-bit kernel)")
    setup = _check_complete(path, data)
    if vmlinux is not None:
        from popek.riscv.loader import load_elf_data
        image = load_elf_data(path, vmlinux, ram, "EM_X86_64")
        entry, end, kind = image.entry, image.high, "bzimage-64, unpacked by popek"
    else:
        kernel = data[setup:]
        end = layout.HIMEM + max(len(kernel), _u(data, INIT_SIZE, 4))
        if end > ram.end:
            raise ImageError(f"{path}: the kernel needs {end >> 20} MiB of RAM to unpack "
                             f"(give more with -m)")
        ram.write(layout.HIMEM, kernel)
        entry, kind = layout.HIMEM + 0x200, "bzimage-64"

    zero = bytearray(4096)
    hdr_end = 0x202 + data[0x201]                         # the header says how long it is
    zero[SETUP_SECTS:hdr_end] = data[SETUP_SECTS:hdr_end]
    zero[TYPE_OF_LOADER] = LOADER_UNDEFINED
    zero[LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP
    struct.pack_into("<H", zero, HEAP_END_PTR, 0xFE00)
    struct.pack_into("<I", zero, CMD_LINE_PTR, layout.CMDLINE)
    _write_cmdline(ram, path, cmdline, _u(data, CMDLINE_SIZE, 4) or 255)
    addr = _place_initrd(ram, path, initrd, end, _u(data, INITRD_ADDR_MAX, 4) or 0x37FFFFFF)
    struct.pack_into("<II", zero, RAMDISK_IMAGE, addr, len(initrd or b""))
    memmap = layout.e820(ram.size)
    zero[E820_ENTRIES] = len(memmap)
    for i, (a, size, e820_type) in enumerate(memmap):
        struct.pack_into("<QQI", zero, E820_TABLE + 20 * i, a, size, e820_type)
    ram.write(layout.BOOT_PARAMS, bytes(zero))
    return Boot(kind, entry, layout.BOOT_PARAMS, end)


def pvh_entry(path: str, data: bytes) -> int | None:
    """The PVH entry point of an x86-64 vmlinux, or None if it has none."""
    try:
        elf = ELFFile(io.BytesIO(data))
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_NOTE":
                continue
            for note in seg.iter_notes():
                if note["n_name"] == "Xen" and note["n_type"] == XEN_ELFNOTE_PHYS32_ENTRY:
                    desc = note["n_desc"]
                    raw = desc if isinstance(desc, bytes) else desc.encode("latin-1")
                    return int.from_bytes(raw[:4], "little")
    except ELFError as e:
        raise ImageError(f"{path}: malformed ELF: {e}") from None
    return None


def start_pvh(ram, path: str, entry: int, kernel_end: int, cmdline: str,
              initrd: bytes | None) -> Boot:
    """Write hvm_start_info (version 1), its memory map and module list."""
    _write_cmdline(ram, path, cmdline, 2048)
    addr = _place_initrd(ram, path, initrd, kernel_end, 0xFFFFFFFF)
    memmap = layout.e820(ram.size)
    memmap_at = layout.START_INFO + 0x100
    for i, (a, size, kind) in enumerate(memmap):
        ram.write(memmap_at + 24 * i, struct.pack("<QQII", a, size, kind, 0))
    modlist = layout.START_INFO + 0x80
    nr_modules = 0
    if addr:
        ram.write(modlist, struct.pack("<QQQQ", addr, len(initrd), 0, 0))
        nr_modules = 1
    ram.write(layout.START_INFO, struct.pack(
        "<IIIIQQQQII", HVM_START_MAGIC, 1, 0, nr_modules, modlist if nr_modules else 0,
        layout.CMDLINE, 0, memmap_at, len(memmap), 0))
    return Boot("pvh", entry, layout.START_INFO, kernel_end)


def extract_vmlinux(path: str, data: bytes) -> bytes:
    """The uncompressed vmlinux ELF inside a bzImage."""
    if not is_bzimage(data):
        raise ImageError(f"{path}: not a bzImage (no HdrS header)")
    start = _check_complete(path, data) + _u(data, PAYLOAD_OFFSET, 4)
    payload = data[start:start + _u(data, PAYLOAD_LENGTH, 4)]
    if not payload:
        raise ImageError(f"{path}: the bzImage carries no compressed kernel payload")
    try:
        if payload[:6] == b"\xfd7zXZ\x00":
            d = lzma.LZMADecompressor(lzma.FORMAT_XZ)
        elif payload[:2] == b"\x1f\x8b":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif payload[:3] == b"\x5d\x00\x00":
            d = lzma.LZMADecompressor(lzma.FORMAT_ALONE)
        elif payload[:3] == b"BZh":
            import bz2
            d = bz2.BZ2Decompressor()
        else:
            raise ImageError(f"{path}: kernel payload compressed in a format popek cannot "
                             f"unpack (magic {payload[:4].hex()}; xz, gzip, lzma, bzip2 work)")
        out = d.decompress(payload, MAX_VMLINUX)      # a small file cannot make gigabytes
    except (lzma.LZMAError, zlib.error, OSError, EOFError) as e:
        raise ImageError(f"{path}: corrupt kernel payload: {e}") from None
    if len(out) >= MAX_VMLINUX and not d.eof:
        raise ImageError(f"{path}: the kernel payload unpacks to more than "
                         f"{MAX_VMLINUX >> 20} MiB")
    if not d.eof:                          # the decompressors return what they had
        raise ImageError(f"{path}: corrupt kernel payload: the compressed stream ends early")
    if out[:4] != b"\x7fELF":
        raise ImageError(f"{path}: the unpacked payload is not an ELF")
    return out
