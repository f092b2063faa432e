"""Guest addresses by name: which function a pc is in, for ``--profile``.

Symbols come from an ELF image's symbol table (OpenSBI, our own OS, a test program:
their functions, and the labels of hand-written assembly; the addresses are the
link addresses, so U-Boot's hold only until it relocates itself), or from a symbol
map in the format of ``nm`` (also ``nm -S``), ``System.map`` and ``/proc/kallsyms``:
one ``ADDRESS TYPE NAME [MODULE]`` a line.  Debian's riscv64 kernel ships a stub
System.map; its own ``/proc/kallsyms`` (read in the guest as root) names the
kernel's functions and those of every module it has loaded.
"""

from __future__ import annotations

import bisect
import os

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from popek.errors import ConfigError

TEXT_TYPES = {b"T", b"t", b"W", b"w"}     # a map's code symbols (nm's types; W/w: weak)
MAX_MAP_BYTES = 64 << 20        # a kernel's kallsyms, with its modules', is 10-20 MB


class Symbols:
    """Function start addresses and names; :meth:`function` finds the one a pc is in."""

    def __init__(self, entries=()):
        self._starts: list[int] = []
        self._names: list[str] = []
        self._ends: list[int] = []       # 0: size unknown (a map), the next symbol ends it
        self.add(entries)

    def add(self, entries) -> None:
        """Add ``(start, end or 0, name)`` entries."""
        merged = sorted(set(zip(self._starts, self._ends, self._names)) | set(entries))
        self._starts = [s for s, _, _ in merged]
        self._ends = [e for _, e, _ in merged]
        self._names = [n for _, _, n in merged]

    def merge(self, other: "Symbols") -> None:
        self.add(zip(other._starts, other._ends, other._names))

    def __len__(self) -> int:
        return len(self._starts)

    def function(self, pc: int) -> str | None:
        """The name of the function ``pc`` is in, or None."""
        i = bisect.bisect_right(self._starts, pc) - 1
        if i < 0:
            return None
        end = self._ends[i]
        return self._names[i] if end == 0 or pc < end else None

    @classmethod
    def from_file(cls, path: str) -> "Symbols":
        """The code symbols of ``path``: an ELF image, or a symbol map (see above)."""
        try:
            entries = _elf_or_none(path)
            what = "an ELF image without a symbol table (stripped?)"
            if entries is None:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if size > MAX_MAP_BYTES:
                        raise ConfigError(f"{path}: {size >> 20} MiB is no symbol map (at "
                                          f"most {MAX_MAP_BYTES >> 20} MiB)")
                    entries, zeros = _map_functions(f)
                    what = ("a map whose addresses are all 0 (read /proc/kallsyms as root)"
                            if zeros else "no lines of 'ADDRESS TYPE NAME' naming code, as "
                            "in System.map or /proc/kallsyms")
        except OSError as e:
            raise ConfigError(f"{path}: cannot read symbols ({e.strerror or e})") from None
        if not entries:
            raise ConfigError(f"{path}: no code symbols: {what}")
        return cls(entries)


def of_images(paths) -> Symbols:
    """The functions of those of ``paths`` that are ELF images (firmware, kernel): what
    ``--profile`` names without being told, as well as it can (an image it cannot read
    symbols from is run all the same)."""
    symbols = Symbols()
    for path in paths:
        try:
            symbols.add(_elf_or_none(path) or ())
        except (OSError, ConfigError):
            continue                        # (the loader says what is wrong with it)
    return symbols


def _elf_or_none(path: str) -> list | None:
    """The functions of ``path`` if it is an ELF image; None if it is not one."""
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
        f.seek(0)
        return _elf_functions(path, f)


def _elf_functions(path: str, f):
    """Functions (and labels in code sections) of an ELF image's symbol table."""
    try:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".symtab")
        if table is None:
            return []
        code = {i for i, s in enumerate(elf.iter_sections())
                if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR}
        out = []
        for sym in table.iter_symbols():
            kind, shndx, name = sym["st_info"]["type"], sym["st_shndx"], sym.name
            if shndx == "SHN_UNDEF" or not sym["st_value"]:
                continue                    # (a function of a library, not in the image)
            if kind == "STT_FUNC" or (kind == "STT_NOTYPE" and shndx in code and name
                                       and not name.startswith((".L", "$"))):
                size = sym["st_size"]
                out.append((sym["st_value"], sym["st_value"] + size if size else 0, name))
        return out
    except OSError:
        raise
    except Exception as e:          # (ELFError; pyelftools on a malformed file: anything)
        raise ConfigError(f"{path}: not an ELF image it can read symbols from ({e})") from None


def _map_functions(f) -> tuple[list, int]:
    """The code symbols of a map, read a line at a time; and how many were at 0."""
    out, zeros = [], 0
    for raw in f:
        parts = raw[:512].split()
        size = 0
        if len(parts) >= 4 and parts[2] in TEXT_TYPES:      # nm -S: ADDRESS SIZE TYPE NAME
            size = parts.pop(1)
        if len(parts) < 3 or parts[1] not in TEXT_TYPES:
            continue
        try:
            addr = int(parts[0], 16)
            size = int(size, 16) if size else 0
        except ValueError:
            continue
        if not addr:                        # (kallsyms read without the right to see)
            zeros += 1
            continue
        name = parts[2] + (b" " + parts[3] if len(parts) > 3 else b"")   # [module]
        out.append((addr, addr + size if size else 0, name.decode(errors="replace")))
    return out, zeros
