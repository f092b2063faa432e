"""Loading firmware and kernels into guest RAM: ELF (pyelftools) or raw binaries.

Every failure is an :class:`ImageError` naming the file and what is wrong with
it; the CLI prints it as one line.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from popek.errors import ImageError

ELF_MAGIC = b"\x7fELF"


@dataclass
class LoadedImage:
    path: str
    entry: int
    low: int                  # lowest and highest+1 guest-physical address written
    high: int
    is_elf: bool
    symbols: dict = field(default_factory=dict)


CHUNK = 1 << 20                 # bytes copied or zeroed at a time: no segment is built whole
_ZEROS = bytes(CHUNK)
EI_DATA, ELFDATA2MSB = 5, 2
RISCV_IMAGE_MAGIC = b"RSC\x05"     # Documentation/arch/riscv/boot-image-header.rst
HINT_RAM = 16 << 30             # a segment beyond this much RAM is not a matter of -m


def _open(path: str):
    """``path`` opened for reading, and its size; only a regular file is an image (a
    device such as /dev/zero would be read without end)."""
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):     # before opening: a FIFO would block
            raise ImageError(f"{path}: not a regular file")
        f = open(path, "rb")
    except OSError as e:
        raise ImageError(f"{path}: cannot read: {e.strerror}") from None
    return f, os.fstat(f.fileno()).st_size


def read_file(path: str) -> bytes:
    """The bytes of an image file; a missing, unreadable, directory or device path is
    an ImageError."""
    f, _ = _open(path)
    with f:
        try:
            return f.read()
        except OSError as e:
            raise ImageError(f"{path}: cannot read: {e.strerror}") from None


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    return bool(head) and all(b in b"\t\n\r" or 0x20 <= b < 0x7F for b in head)


def load_image(path: str, ram, raw_addr: int, machine: str = "EM_RISCV") -> LoadedImage:
    """Load ``path`` into ``ram``: an ELF at its physical addresses, else raw at ``raw_addr``.

    ``machine`` is the ELF machine expected (EM_RISCV, or EM_X86_64 for the KVM backend).
    Everything is checked (inside the file, inside RAM) before a byte is written, and
    nothing is read or built whole: a file's claims cost nothing until they are found
    to fit."""
    f, size = _open(path)
    with f:
        try:
            head = f.read(512)
            if not head:
                raise ImageError(f"{path}: empty file")
            if head[:4] == ELF_MAGIC:
                return _load_elf(path, f, size, ram, machine)
            if _looks_like_text(head):
                raise ImageError(f"{path}: not an ELF or raw binary image (it looks like text)")
            _check_fits(path, ram, raw_addr, size, "raw image")
            _copy(path, f, 0, size, ram, raw_addr)
        except OSError as e:
            raise ImageError(f"{path}: cannot read: {e.strerror}") from None
    # A RISC-V Linux Image says how much memory it takes once running (its bss too):
    # what goes above it (an initrd, the device tree) must stay clear of all of that.
    span = size
    if head[0x38:0x3C] == RISCV_IMAGE_MAGIC:
        span = max(size, int.from_bytes(head[0x10:0x18], "little"))
    return LoadedImage(path, raw_addr, raw_addr, raw_addr + span, False)


def load_blob(path: str, ram, addr: int, what: str) -> LoadedImage:
    """Load ``path`` as it is at ``addr`` (an initrd): checked to fit first, then copied
    a chunk at a time."""
    f, size = _open(path)
    with f:
        if not size:
            raise ImageError(f"{path}: empty file")
        _check_fits(path, ram, addr, size, what)
        try:
            _copy(path, f, 0, size, ram, addr)
        except OSError as e:
            raise ImageError(f"{path}: cannot read: {e.strerror}") from None
    return LoadedImage(path, addr, addr, addr + size, False)


def _check_fits(path, ram, addr, length, what):
    """``length`` bytes at ``addr`` inside ``ram`` (Python integers: no wrap-around)."""
    if not ram.contains(addr, length):
        end = addr + length
        hint = " (give more memory with -m)" if ram.base <= addr and \
            end - ram.base <= HINT_RAM else ""
        raise ImageError(f"{path}: {what} at {addr:#x}-{end:#x} does not fit in RAM "
                         f"{ram.base:#x}-{ram.end:#x}{hint}")


def _copy(path, f, offset, length, ram, addr):
    """``length`` bytes of the file from ``offset`` to ``addr``, a chunk at a time."""
    f.seek(offset)
    while length:
        chunk = f.read(min(CHUNK, length))
        if not chunk:
            raise ImageError(f"{path}: file shrank while it was loaded")
        ram.write(addr, chunk)
        addr += len(chunk)
        length -= len(chunk)


def _zero(ram, addr, length):
    """Zero ``length`` bytes (a segment's bss) a chunk at a time: RAM is not always fresh
    (a VM's window, an image loaded over another)."""
    zeros = memoryview(_ZEROS)
    while length:
        n = min(CHUNK, length)
        ram.write(addr, zeros[:n])
        addr += n
        length -= n


ARCH_NAMES = {"EM_RISCV": "RISC-V", "EM_X86_64": "x86-64"}


def load_elf_data(path: str, data: bytes, ram, machine: str) -> LoadedImage:
    """An ELF already in memory (a vmlinux popek unpacked from a bzImage), checked and
    loaded as :func:`load_image` loads a file."""
    import io
    return _load_elf(path, io.BytesIO(data), len(data), ram, machine)


def _load_elf(path: str, f, size: int, ram, want: str) -> LoadedImage:
    f.seek(0)
    ident = f.read(16)
    if len(ident) == 16 and ident[EI_DATA] == ELFDATA2MSB:
        raise ImageError(f"{path}: big-endian ELF; popek runs little-endian guests")
    try:
        f.seek(0)
        elf = ELFFile(f)
        machine = elf["e_machine"]
        if machine != want:
            name = machine.removeprefix("EM_") if isinstance(machine, str) else \
                f"machine {machine:#x}"
            raise ImageError(f"{path}: ELF for {name}, not {ARCH_NAMES.get(want, want)}")
        if elf.elfclass != 64:
            raise ImageError(f"{path}: 32-bit ELF; popek runs 64-bit guests")
        segments = []
        for i, seg in enumerate(elf.iter_segments()):
            if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                continue
            segments.append((i, seg["p_offset"], seg["p_paddr"], seg["p_filesz"],
                             seg["p_memsz"]))
        entry = elf["e_entry"]
        symbols = {}
        for sec in elf.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym.name in ("tohost", "fromhost"):
                        symbols[sym.name] = sym["st_value"]
    except (ImageError, OSError):
        raise
    except ELFError as e:
        raise ImageError(f"{path}: malformed ELF: {e}") from None
    except Exception as e:        # pyelftools on a malformed file: anything at all
        raise ImageError(f"{path}: malformed ELF ({type(e).__name__}: {e})") from None
    if not segments:
        raise ImageError(f"{path}: ELF has nothing to load")
    # Every segment checked before a byte is written (Python integers: nothing wraps).
    # Apart and inside RAM, they write each byte of RAM at most once: a file of a few
    # kilobytes cannot make popek write gigabytes.
    for i, offset, addr, filesz, memsz in segments:
        if filesz > memsz:
            raise ImageError(f"{path}: segment {i}: file size {filesz:#x} is larger than "
                             f"its memory size {memsz:#x}")
        if offset + filesz > size:
            raise ImageError(f"{path}: segment {i} extends past the end of the file")
        _check_fits(path, ram, addr, memsz, f"segment {i}")
    in_order = sorted(segments, key=lambda s: s[2])
    for (i, _, addr, _, memsz), (j, _, next_addr, _, _) in zip(in_order, in_order[1:]):
        if next_addr < addr + memsz:
            raise ImageError(f"{path}: segments {min(i, j)} and {max(i, j)} overlap")
    for i, offset, addr, filesz, memsz in segments:
        _copy(path, f, offset, filesz, ram, addr)
        _zero(ram, addr + filesz, memsz - filesz)
    low = min(addr for _, _, addr, _, _ in segments)
    high = max(addr + memsz for _, _, addr, _, memsz in segments)
    return LoadedImage(path, entry, low, high, True, symbols)
