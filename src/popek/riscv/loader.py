"""Loading firmware and kernels into guest RAM: ELF (pyelftools) or raw binaries.

Every failure is an :class:`ImageError` naming the file and what is wrong with
it; the CLI prints it as one line.
"""

from __future__ import annotations

import os
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


def read_file(path: str) -> bytes:
    """The bytes of an image file; a missing, unreadable or directory path is an ImageError."""
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ImageError(f"{path}: cannot read: {e.strerror}") from None


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    return bool(head) and all(b in b"\t\n\r" or 0x20 <= b < 0x7F for b in head)


def load_image(path: str, ram, raw_addr: int, machine: str = "EM_RISCV") -> LoadedImage:
    """Load ``path`` into ``ram``: an ELF at its physical addresses, else raw at ``raw_addr``.

    ``machine`` is the ELF machine expected (EM_RISCV, or EM_X86_64 for the KVM backend)."""
    data = read_file(path)
    if not data:
        raise ImageError(f"{path}: empty file")
    if data[:4] == ELF_MAGIC:
        return _load_elf(path, data, ram, machine)
    if _looks_like_text(data):
        raise ImageError(f"{path}: not an ELF or raw binary image (it looks like text)")
    _place(path, ram, raw_addr, data, "raw image")
    return LoadedImage(path, raw_addr, raw_addr, raw_addr + len(data), False)


def _place(path, ram, addr, data, what):
    if not ram.contains(addr, len(data)):
        raise ImageError(
            f"{path}: {what} at {addr:#x}-{addr + len(data):#x} does not fit in RAM "
            f"{ram.base:#x}-{ram.end:#x} (give more memory with -m)")
    ram.write(addr, data)


ARCH_NAMES = {"EM_RISCV": "RISC-V", "EM_X86_64": "x86-64"}


def _load_elf(path: str, data: bytes, ram, want: str) -> LoadedImage:
    import io
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        if machine != want:
            raise ImageError(f"{path}: ELF for {machine.removeprefix('EM_')}, "
                             f"not {ARCH_NAMES.get(want, want)}")
        if elf.elfclass != 64:
            raise ImageError(f"{path}: 32-bit ELF; popek runs 64-bit guests")
        low, high = None, None
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                continue
            addr, filesz, memsz = seg["p_paddr"], seg["p_filesz"], seg["p_memsz"]
            body = seg.data()[:filesz] + bytes(memsz - filesz)
            _place(path, ram, addr, body, "segment")
            low = addr if low is None else min(low, addr)
            high = addr + memsz if high is None else max(high, addr + memsz)
        if low is None:
            raise ImageError(f"{path}: ELF has nothing to load")
        symbols = {}
        for sec in elf.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym.name in ("tohost", "fromhost"):
                        symbols[sym.name] = sym["st_value"]
        return LoadedImage(path, elf["e_entry"], low, high, True, symbols)
    except ELFError as e:
        raise ImageError(f"{path}: malformed ELF: {e}") from None
    except (ValueError, KeyError, IndexError, AssertionError) as e:
        raise ImageError(f"{path}: malformed ELF ({type(e).__name__}: {e})") from None
