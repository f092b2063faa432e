"""Where the holes came from: Robin and Irvine's sensitive-but-unprivileged x86
instructions, counted in an x86-64 binary (``popek analyze x86 FILE``).

Robin & Irvine (2000) found 17 instructions that make x86 (before VT-x) fail Popek
and Goldberg's condition: they read or depend on privileged state in user mode
without trapping.  This module disassembles every executable section of an ELF
(capstone, a linear sweep) and counts them by kind, by section and, where there are
symbols (the ELF's own, or a System.map), by function:

    kind          instructions                why sensitive, unprivileged
    sgdt/sidt     sgdt, sidt                  reveal the real descriptor tables' addresses
    sldt/str      sldt, str                   reveal the LDT and task register selectors
    smsw          smsw                        reveals CR0's low bits (PE, MP, EM, TS, ...)
    pushf         pushf/pushfd/pushfq         reveals IF and IOPL
    popf          popf/popfd/popfq            changes IF only at CPL 0: silently not in
                                              a deprivileged kernel
    lar/lsl       lar, lsl                    descriptor checks against the CPL
    verr/verw     verr, verw                  likewise
    push/pop seg  push/pop cs ds es fs gs ss  selectors carry the RPL (the real CPL)
    mov seg       mov to or from a segment    likewise
                  register
    far control   far call, far jmp, retf,    descriptor privilege checks against the
                  int n                       CPL; the CPL pushed

A deprivileged x86 kernel (ring 1 under a 1990s VMM) executing these sees or does
the wrong thing instead of trapping: VMware's binary translator rewrote them, Xen's
PV kernels replaced them, VT-x made the CPU trap what matters.
"""

from __future__ import annotations

import bisect
import io
from collections import Counter
from dataclasses import dataclass, field

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from popek.errors import ConfigError

SEGMENT_REGS = {"cs", "ds", "es", "fs", "gs", "ss"}
BY_MNEMONIC = {"sgdt": "sgdt/sidt", "sidt": "sgdt/sidt", "sldt": "sldt/str", "str": "sldt/str",
               "smsw": "smsw", "pushf": "pushf", "pushfd": "pushf", "pushfq": "pushf",
               "popf": "popf", "popfd": "popf", "popfq": "popf", "lar": "lar/lsl",
               "lsl": "lar/lsl", "verr": "verr/verw", "verw": "verr/verw", "retf": "far control",
               "retfq": "far control",
               "lcall": "far control", "ljmp": "far control"}
KINDS = ("sgdt/sidt", "sldt/str", "smsw", "pushf", "popf", "lar/lsl", "verr/verw",
         "push/pop seg", "mov seg", "far control")


def kind_of(mnemonic: str, operands: str) -> str | None:
    """The Robin–Irvine kind of one instruction (capstone's Intel syntax), or None."""
    kind = BY_MNEMONIC.get(mnemonic)
    if kind is not None:
        return kind
    if mnemonic in ("push", "pop"):
        return "push/pop seg" if operands in SEGMENT_REGS else None
    if mnemonic == "mov":
        ops = operands.split(", ")
        return "mov seg" if len(ops) == 2 and (ops[0] in SEGMENT_REGS
                                               or ops[1] in SEGMENT_REGS) else None
    if mnemonic in ("call", "jmp") and operands.startswith("ptr "):     # m16:64, far
        return "far control"
    if mnemonic == "int":                                 # int n (not int3, into)
        return "far control"
    return None


@dataclass
class Report:
    path: str
    instructions: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_section: dict = field(default_factory=dict)       # section -> Counter of kinds
    by_function: dict = field(default_factory=dict)      # function -> Counter of kinds
    by_mnemonic: Counter = field(default_factory=Counter)   # (kind, mnemonic) -> count
    symbols: str = "none"


def _symbols_from_elf(elf: ELFFile) -> list:
    out = []
    for sec in elf.iter_sections():
        if isinstance(sec, SymbolTableSection):
            for sym in sec.iter_symbols():
                if sym["st_info"]["type"] == "STT_FUNC" and sym["st_value"]:
                    out.append((sym["st_value"], sym.name))
    return out


def _symbols_from_ksymtab(elf: ELFFile) -> list:
    """(address, name) of the symbols a Linux vmlinux exports (``__ksymtab`` and
    ``__ksymtab_gpl``: x86-64's place-relative ``struct kernel_symbol``, three s32
    offsets, value, name and namespace, each from its own field): all a stripped
    vmlinux tells of its functions.  Empty if the tables are not of that form."""
    import struct

    strings = elf.get_section_by_name("__ksymtab_strings")
    if strings is None:
        return []
    s_addr, s_data = strings["sh_addr"], strings.data()
    out = []
    for name in ("__ksymtab", "__ksymtab_gpl"):
        sec = elf.get_section_by_name(name)
        if sec is None:
            continue
        base, data = sec["sh_addr"], sec.data()
        for off in range(0, len(data) - 11, 12):
            value_off, name_off, _ = struct.unpack_from("<iii", data, off)
            at = base + off + 4 + name_off - s_addr
            if not 0 <= at < len(s_data):
                return []                        # not the layout assumed
            end = s_data.find(b"\0", at)
            out.append(((base + off + value_off) & ((1 << 64) - 1),
                        s_data[at:end].decode(errors="replace")))
    return out


def _symbols_from_map(path: str) -> list:
    """(address, name) of the text symbols of a System.map (``ADDR TYPE NAME``)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tTwW":
                    try:
                        out.append((int(parts[0], 16), parts[2]))
                    except ValueError:
                        continue
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the symbol map: {e.strerror}") from None
    return out


def analyze(path: str, data: bytes, system_map: str | None = None, progress=None) -> Report:
    import capstone

    try:
        elf = ELFFile(io.BytesIO(data))
    except Exception:
        raise ConfigError(f"{path}: not an x86-64 ELF file") from None
    if elf["e_machine"] != "EM_X86_64":
        raise ConfigError(f"{path}: not an x86-64 ELF ({elf['e_machine']})")
    rep = Report(path)
    symbols = _symbols_from_elf(elf)
    rep.symbols = f"{len(symbols):,} from the ELF" if symbols else "none in the ELF"
    if system_map:
        mapped = _symbols_from_map(system_map)
        if mapped:
            symbols = mapped
            rep.symbols = f"{len(symbols):,} from {system_map}"
    if not symbols:
        symbols = _symbols_from_ksymtab(elf)
        if symbols:
            rep.symbols = (f"{len(symbols):,} exported (__ksymtab): each instruction is "
                           f"named by the nearest exported symbol before it")
    symbols.sort()
    addrs = [a for a, _ in symbols]
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.skipdata = True                    # past bytes that are no instruction, on
    sections = [s for s in elf.iter_sections()
                if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s["sh_type"] == "SHT_PROGBITS"]
    total = sum(s["sh_size"] for s in sections) or 1
    done = 0
    for sec in sections:
        counts = Counter()
        code = sec.data()
        lo, hi = sec["sh_addr"], sec["sh_addr"] + sec["sh_size"]
        first = bisect.bisect_left(addrs, lo)          # the section's own symbols only
        for addr, _size, mnemonic, operands in md.disasm_lite(code, lo):
            rep.instructions += 1
            kind = kind_of(mnemonic, operands)
            if kind is None:
                continue
            counts[kind] += 1
            rep.by_mnemonic[(kind, mnemonic)] += 1
            i = bisect.bisect_right(addrs, addr) - 1
            fn = symbols[i][1] if first <= i and addrs[i] < hi else f"({sec.name})"
            rep.by_function.setdefault(fn, Counter())[kind] += 1
        rep.by_section[sec.name] = counts
        rep.by_kind.update(counts)
        done += sec["sh_size"]
        if progress is not None:
            progress(done, total)
    return rep


def format_report(rep: Report, top: int = 15) -> str:
    n = sum(rep.by_kind.values())
    lines = [f"Robin–Irvine sensitive, unprivileged x86 instructions in {rep.path}: "
             f"{n:,} in {rep.instructions:,} instructions (symbols: {rep.symbols})", "",
             f"  {'kind':14s}{'count':>8s}   instructions"]
    for kind in KINDS:
        mn = ", ".join(f"{m} {c:,}" for (k, m), c in rep.by_mnemonic.most_common() if k == kind)
        lines.append(f"  {kind:14s}{rep.by_kind.get(kind, 0):8,d}   {mn}")
    lines += ["", "  by section: " + ", ".join(f"{s} {sum(c.values()):,}"
                                              for s, c in rep.by_section.items() if c)]
    if rep.by_function:
        lines += ["", f"  functions with the most ({len(rep.by_function):,} have some):"]
        ranked = sorted(rep.by_function.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        for fn, c in ranked[:top]:
            kinds = ", ".join(f"{k} {v}" for k, v in c.most_common())
            lines.append(f"    {fn:40s} {sum(c.values()):5,d}   {kinds}")
    return "\n".join(lines)
