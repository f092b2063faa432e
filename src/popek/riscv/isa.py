"""The RV64IMAC + Zicsr + Zifencei + privileged instruction set, defined once.

Each :class:`Insn` carries its encoding (match/mask), its operand format and its
semantics as a short Python snippet over these names:

    x                the register file (a list; index 32 swallows writes to x0)
    h                the hart (memory access, CSRs, privileged operations)
    rd rs1 rs2 imm   operands, decoded once (imm already sign-extended, as an
                     unsigned 64-bit value where the ISA sign-extends)
    csr              the CSR number of Zicsr instructions
    PC NPC INSN      this instruction's address, the next one's, and its bits
    M S W SW         2**64-1, 2**63, 2**32-1, 2**31

From this one table come the decoder (:func:`decode`), the disassembler
(:func:`disassemble`) and the interpreter's per-instruction closures
(:func:`make_op`); the block translator (translate.py) joins the same
snippets into whole-block functions.  Registers hold unsigned 64-bit ints;
signed views are ``(v ^ S) - S``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from popek.riscv.traps import Trap

M = (1 << 64) - 1
S = 1 << 63
W = (1 << 32) - 1
SW = 1 << 31
SX = M ^ W               # the bits a negative 32-bit value gets when sign-extended

# Instruction classes: they decide block boundaries and the cost model's class.
ALU, BRANCH, JUMP, LOAD, STORE, AMO, CSR, SYSTEM, FENCE, MULDIV = (
    "alu", "branch", "jump", "load", "store", "amo", "csr", "system", "fence", "muldiv")
# Not in any table: what a VMM's rewrite makes of a sensitive instruction (a call of
# its emulation, vmm/cpu/bt.py), which sets the pc itself.
CALLOUT = "callout"


@dataclass
class Insn:
    name: str
    fmt: str                 # R I S B U J SH6 SH5 CSR CSRI AMO LR NONE FENCE SFENCE
    match: int
    mask: int
    body: str
    pre: str = ""            # evaluated once at decode time (constant folding)
    kind: str = ALU
    ends_block: bool = False
    may_trap: bool = False
    alone: bool = False      # gets a block of its own (exact counters for CSR reads)
    mem: tuple | None = None  # loads/stores: (address expression, size in bytes)


def sext32(expr: str) -> str:
    """Snippet text: sign-extend the low 32 bits of ``expr`` to an unsigned 64-bit value.

    As a conditional (``sx`` is a scratch name): on CPython 3.11 it is 40 % faster
    than the branch-free ``(((e & W) ^ SW) - SW) & M``, and 32-bit arithmetic is a
    tenth of a boot's time."""
    return f"(sx if (sx := ({expr}) & W) < SW else sx | SX)"


# ---------------------------------------------------------------------------
# Encoding helpers: build match/mask from named fields.
_FIELDS = {  # name: (lsb, width)
    "op": (0, 7), "rd": (7, 5), "f3": (12, 3), "rs1": (15, 5), "rs2": (20, 5),
    "f7": (25, 7), "f6": (26, 6), "f5": (27, 5), "f12": (20, 12), "fmt": (25, 2),
}


def _enc(**fields) -> tuple[int, int]:
    match = mask = 0
    for name, value in fields.items():
        lsb, width = _FIELDS[name]
        assert 0 <= value < (1 << width), (name, value)
        match |= value << lsb
        mask |= ((1 << width) - 1) << lsb
    return match, mask


INSNS: list[Insn] = []


def insn(name, fmt, enc, body, *, pre="", kind=ALU, ends=False, trap=False, alone=False, mem=None):
    match, mask = enc
    INSNS.append(Insn(name, fmt, match, mask, body, pre, kind, ends, trap, alone, mem))


def interpreter_body(i: Insn) -> str:
    """The statement(s) the interpreter runs for ``i``: memory access through the hart."""
    if i.kind == LOAD:
        ea, size = i.mem
        return f"v = h.load{8 * size}({ea}); {i.body}"
    if i.kind == STORE:
        ea, size = i.mem
        return f"h.store{8 * size}({ea}, {i.body})"
    return i.body


# --- RV64I -----------------------------------------------------------------
insn("lui", "U", _enc(op=0x37), "x[rd] = imm")
insn("auipc", "U", _enc(op=0x17), "x[rd] = v", pre="v = (PC + imm) & M")
insn("jal", "J", _enc(op=0x6F), "x[rd] = NPC; h.pc = t", pre="t = (PC + imm) & M",
     kind=JUMP, ends=True)
insn("jalr", "I", _enc(op=0x67, f3=0),
     "t = (x[rs1] + imm) & 0xFFFFFFFFFFFFFFFE; x[rd] = NPC; h.pc = t", kind=JUMP, ends=True)
for _n, _f3, _cond in (("beq", 0, "x[rs1] == x[rs2]"), ("bne", 1, "x[rs1] != x[rs2]"),
                       ("blt", 4, "(x[rs1] ^ S) < (x[rs2] ^ S)"),
                       ("bge", 5, "(x[rs1] ^ S) >= (x[rs2] ^ S)"),
                       ("bltu", 6, "x[rs1] < x[rs2]"), ("bgeu", 7, "x[rs1] >= x[rs2]")):
    # Not block ends: blocks run on through not-taken branches (taken: a side exit).
    insn(_n, "B", _enc(op=0x63, f3=_f3), f"if {_cond}: h.pc = t", pre="t = (PC + imm) & M",
         kind=BRANCH)

# Loads and stores are given as an address, a size, and what to do with the loaded
# value ``v`` (or which value to store), so that each engine can generate its own
# memory access around them (the interpreter calls h.loadN, the translator inlines
# the TLB fast path).
_EA = "(x[rs1] + imm) & M"
for _n, _f3, _size, _expr in (("lb", 0, 1, "v if v < 0x80 else v | 0xFFFFFFFFFFFFFF00"),
                              ("lh", 1, 2, "v if v < 0x8000 else v | 0xFFFFFFFFFFFF0000"),
                              ("lw", 2, 4, "v if v < SW else v | SX"),
                              ("ld", 3, 8, "v"),
                              ("lbu", 4, 1, "v"),
                              ("lhu", 5, 2, "v"),
                              ("lwu", 6, 4, "v")):
    insn(_n, "I", _enc(op=0x03, f3=_f3), f"x[rd] = {_expr}", kind=LOAD, trap=True,
         mem=(_EA, _size))
for _n, _f3, _size in (("sb", 0, 1), ("sh", 1, 2), ("sw", 2, 4), ("sd", 3, 8)):
    insn(_n, "S", _enc(op=0x23, f3=_f3), "x[rs2]", kind=STORE, trap=True, mem=(_EA, _size))

insn("addi", "I", _enc(op=0x13, f3=0), "x[rd] = (x[rs1] + imm) & M")
insn("slti", "I", _enc(op=0x13, f3=2), "x[rd] = 1 if (x[rs1] ^ S) < simm else 0", pre="simm = imm ^ S")
insn("sltiu", "I", _enc(op=0x13, f3=3), "x[rd] = 1 if x[rs1] < imm else 0")
insn("xori", "I", _enc(op=0x13, f3=4), "x[rd] = x[rs1] ^ imm")
insn("ori", "I", _enc(op=0x13, f3=6), "x[rd] = x[rs1] | imm")
insn("andi", "I", _enc(op=0x13, f3=7), "x[rd] = x[rs1] & imm")
insn("slli", "SH6", _enc(op=0x13, f3=1, f6=0), "x[rd] = (x[rs1] << imm) & M")
insn("srli", "SH6", _enc(op=0x13, f3=5, f6=0), "x[rd] = x[rs1] >> imm")
insn("srai", "SH6", _enc(op=0x13, f3=5, f6=0x10), "x[rd] = (((x[rs1] ^ S) - S) >> imm) & M")

for _n, _f3, _f7, _expr in (
        ("add", 0, 0, "(x[rs1] + x[rs2]) & M"), ("sub", 0, 0x20, "(x[rs1] - x[rs2]) & M"),
        ("sll", 1, 0, "(x[rs1] << (x[rs2] & 63)) & M"),
        ("slt", 2, 0, "1 if (x[rs1] ^ S) < (x[rs2] ^ S) else 0"),
        ("sltu", 3, 0, "1 if x[rs1] < x[rs2] else 0"), ("xor", 4, 0, "x[rs1] ^ x[rs2]"),
        ("srl", 5, 0, "x[rs1] >> (x[rs2] & 63)"),
        ("sra", 5, 0x20, "(((x[rs1] ^ S) - S) >> (x[rs2] & 63)) & M"),
        ("or", 6, 0, "x[rs1] | x[rs2]"), ("and", 7, 0, "x[rs1] & x[rs2]")):
    insn(_n, "R", _enc(op=0x33, f3=_f3, f7=_f7), f"x[rd] = {_expr}")

insn("addiw", "I", _enc(op=0x1B, f3=0), "x[rd] = " + sext32("x[rs1] + imm"))
insn("slliw", "SH5", _enc(op=0x1B, f3=1, f7=0), "x[rd] = " + sext32("x[rs1] << imm"))
insn("srliw", "SH5", _enc(op=0x1B, f3=5, f7=0), "x[rd] = " + sext32("(x[rs1] & W) >> imm"))
insn("sraiw", "SH5", _enc(op=0x1B, f3=5, f7=0x20),
     "x[rd] = ((((x[rs1] & W) ^ SW) - SW) >> imm) & M")
insn("addw", "R", _enc(op=0x3B, f3=0, f7=0), "x[rd] = " + sext32("x[rs1] + x[rs2]"))
insn("subw", "R", _enc(op=0x3B, f3=0, f7=0x20), "x[rd] = " + sext32("x[rs1] - x[rs2]"))
insn("sllw", "R", _enc(op=0x3B, f3=1, f7=0), "x[rd] = " + sext32("x[rs1] << (x[rs2] & 31)"))
insn("srlw", "R", _enc(op=0x3B, f3=5, f7=0), "x[rd] = " + sext32("(x[rs1] & W) >> (x[rs2] & 31)"))
insn("sraw", "R", _enc(op=0x3B, f3=5, f7=0x20),
     "x[rd] = ((((x[rs1] & W) ^ SW) - SW) >> (x[rs2] & 31)) & M")

# --- M ---------------------------------------------------------------------
for _n, _f3, _expr in (
        ("mul", 0, "(x[rs1] * x[rs2]) & M"),
        ("mulh", 1, "((((x[rs1] ^ S) - S) * ((x[rs2] ^ S) - S)) >> 64) & M"),
        ("mulhsu", 2, "((((x[rs1] ^ S) - S) * x[rs2]) >> 64) & M"),
        ("mulhu", 3, "(x[rs1] * x[rs2]) >> 64"),
        ("div", 4, "div64(x[rs1], x[rs2])"),
        ("divu", 5, "x[rs1] // x[rs2] if x[rs2] else M"),
        ("rem", 6, "rem64(x[rs1], x[rs2])"),
        ("remu", 7, "x[rs1] % x[rs2] if x[rs2] else x[rs1]")):
    insn(_n, "R", _enc(op=0x33, f3=_f3, f7=1), f"x[rd] = {_expr}", kind=MULDIV)
for _n, _f3, _expr in (
        ("mulw", 0, sext32("x[rs1] * x[rs2]")),
        ("divw", 4, "div32(x[rs1], x[rs2])"),
        ("divuw", 5, "divu32(x[rs1], x[rs2])"),
        ("remw", 6, "rem32(x[rs1], x[rs2])"),
        ("remuw", 7, "remu32(x[rs1], x[rs2])")):
    insn(_n, "R", _enc(op=0x3B, f3=_f3, f7=1), f"x[rd] = {_expr}", kind=MULDIV)

# --- A ---------------------------------------------------------------------
for _sfx, _f3, _size in (("w", 2, 4), ("d", 3, 8)):
    insn(f"lr.{_sfx}", "LR", _enc(op=0x2F, f3=_f3, f5=0x02, rs2=0),
         f"x[rd] = h.load_reserved(x[rs1], {_size})", kind=AMO, trap=True)
    insn(f"sc.{_sfx}", "AMO", _enc(op=0x2F, f3=_f3, f5=0x03),
         f"x[rd] = h.store_conditional(x[rs1], {_size}, x[rs2])", kind=AMO, trap=True)
    for _n, _f5 in (("amoswap", 0x01), ("amoadd", 0x00), ("amoxor", 0x04), ("amoand", 0x0C),
                    ("amoor", 0x08), ("amomin", 0x10), ("amomax", 0x14), ("amominu", 0x18),
                    ("amomaxu", 0x1C)):
        insn(f"{_n}.{_sfx}", "AMO", _enc(op=0x2F, f3=_f3, f5=_f5),
             f"x[rd] = h.amo(x[rs1], {_size}, '{_n[3:]}', x[rs2])", kind=AMO, trap=True)

# --- fences, Zifencei ------------------------------------------------------
insn("fence", "FENCE", _enc(op=0x0F, f3=0), "pass", kind=FENCE)
insn("fence.i", "NONE", _enc(op=0x0F, f3=1), "h.fence_i()", kind=FENCE, ends=True)

# --- Zicsr -----------------------------------------------------------------
# x[rd] is assigned after the access, so csrrw x5, csr, x5 reads the old value first.
# The fourth argument says whether the value read goes anywhere (rd is not x0, whose
# writes go to slot 32): reads have no side effects here, so only a hole looks at it.
# PC tells a read of the time CSR where it was made (clock.py: polling loops).
for _n, _f3, _body in (
        ("csrrw", 1, "x[rd] = h.csr_access(csr, 0, x[rs1], rd != 32, True, PC)"),
        ("csrrs", 2, "x[rd] = h.csr_access(csr, 1, x[rs1], rd != 32, rs1 != 0, PC)"),
        ("csrrc", 3, "x[rd] = h.csr_access(csr, 2, x[rs1], rd != 32, rs1 != 0, PC)"),
        ("csrrwi", 5, "x[rd] = h.csr_access(csr, 0, imm, rd != 32, True, PC)"),
        ("csrrsi", 6, "x[rd] = h.csr_access(csr, 1, imm, rd != 32, imm != 0, PC)"),
        ("csrrci", 7, "x[rd] = h.csr_access(csr, 2, imm, rd != 32, imm != 0, PC)")):
    insn(_n, "CSRI" if _n.endswith("i") else "CSR", _enc(op=0x73, f3=_f3), _body,
         kind=CSR, ends=True, trap=True, alone=True)

# --- privileged ------------------------------------------------------------
insn("ecall", "NONE", _enc(op=0x73, f12=0x000, rs1=0, f3=0, rd=0), "h.ecall()",
     kind=SYSTEM, ends=True, trap=True)
insn("ebreak", "NONE", _enc(op=0x73, f12=0x001, rs1=0, f3=0, rd=0), "raise Trap(3, PC)",
     kind=SYSTEM, ends=True, trap=True)
insn("sret", "NONE", _enc(op=0x73, f12=0x102, rs1=0, f3=0, rd=0), "h.sret()",
     kind=SYSTEM, ends=True, trap=True)
insn("mret", "NONE", _enc(op=0x73, f12=0x302, rs1=0, f3=0, rd=0), "h.mret()",
     kind=SYSTEM, ends=True, trap=True)
insn("wfi", "NONE", _enc(op=0x73, f12=0x105, rs1=0, f3=0, rd=0), "h.wfi()",
     kind=SYSTEM, ends=True, trap=True)
insn("sfence.vma", "SFENCE", _enc(op=0x73, f7=0x09, f3=0, rd=0), "h.sfence_vma(x[rs1], rs1, x[rs2], rs2)",
     kind=SYSTEM, ends=True, trap=True)

# The one "instruction" every undecodable encoding becomes.
ILLEGAL = Insn("illegal", "NONE", 0, 0, "raise Trap(2, None)", kind=SYSTEM,
               ends_block=True, may_trap=True)

_BY_NAME = {i.name: i for i in INSNS}


def by_name(name: str) -> Insn:
    return _BY_NAME[name]


# ---------------------------------------------------------------------------
# Operand extraction.

def _sx(value: int, bits: int) -> int:
    """Sign-extend a ``bits``-wide field to an unsigned 64-bit value."""
    value &= (1 << bits) - 1
    if value >> (bits - 1):
        value -= 1 << bits
    return value & M


def imm_i(w):
    return _sx(w >> 20, 12)


def imm_s(w):
    return _sx(((w >> 25) << 5) | ((w >> 7) & 0x1F), 12)


def imm_b(w):
    return _sx(((w >> 31) << 12) | (((w >> 7) & 1) << 11) | (((w >> 25) & 0x3F) << 5)
               | (((w >> 8) & 0xF) << 1), 13)


def imm_u(w):
    return _sx(w & 0xFFFFF000, 32)


def imm_j(w):
    return _sx(((w >> 31) << 20) | (((w >> 12) & 0xFF) << 12) | (((w >> 20) & 1) << 11)
               | (((w >> 21) & 0x3FF) << 1), 21)


@dataclass(frozen=True)
class Decoded:
    """One decoded instruction: what it is and its operands (architectural numbering)."""
    insn: Insn
    word: int        # the instruction bits (16-bit form for compressed instructions)
    length: int      # 2 or 4
    rd: int = 0
    rs1: int = 0
    rs2: int = 0
    imm: int = 0
    csr: int = 0


class Isa:
    """One CPU variant's instruction set: its table of instructions, ``misa`` and ISA
    string, and a decoder with a bounded cache of its own (so machines of different
    variants can live in one process).  A variant (an extension more, a hole) is a
    different table, not a change to the hart."""

    def __init__(self, name: str, insns: list[Insn], extensions: str = "ACIMSU",
                 isa_string: str = "rv64imac_zicsr_zifencei", holes: tuple = ()):
        self.name = name
        self.insns = insns
        self.extensions = extensions
        # Virtualization holes (riscv/holes.py): parts of the CSR file that behave
        # differently from U-mode instead of trapping.  Invisible in misa and the ISA string.
        self.holes = holes
        self.isa_string = isa_string
        # misa: MXL=2 (RV64) and exactly the extensions implemented.
        self.misa = (2 << 62) | sum(1 << (ord(e) - ord("A")) for e in extensions)
        self.by_opcode: dict[int, list[Insn]] = {}
        for i in insns:
            assert i.mask & 0x7F == 0x7F, i.name
            self.by_opcode.setdefault(i.match & 0x7F, []).append(i)
        # Bounded: firmware and kernels reuse a small set of encodings.
        self.decode = functools.lru_cache(maxsize=1 << 16)(self._decode)
        ISAS[name] = self

    def decode32(self, w: int, length: int = 4, raw: int | None = None) -> Decoded:
        """Decode a 32-bit instruction word (compressed ones arrive expanded)."""
        raw = w if raw is None else raw
        for i in self.by_opcode.get(w & 0x7F, ()):
            if w & i.mask == i.match:
                break
        else:
            return Decoded(ILLEGAL, raw, length)
        rd, rs1, rs2 = (w >> 7) & 0x1F, (w >> 15) & 0x1F, (w >> 20) & 0x1F
        fmt = i.fmt
        imm = csr = 0
        if fmt == "I":
            imm = imm_i(w)
        elif fmt == "S":
            imm = imm_s(w)
        elif fmt == "B":
            imm = imm_b(w)
        elif fmt == "U":
            imm = imm_u(w)
        elif fmt == "J":
            imm = imm_j(w)
        elif fmt == "SH6":
            imm = (w >> 20) & 0x3F
        elif fmt == "SH5":
            imm = (w >> 20) & 0x1F
        elif fmt == "CSR":
            csr = w >> 20
        elif fmt == "CSRI":
            csr, imm = w >> 20, rs1
        elif fmt == "FI":
            imm = imm_i(w)
        elif fmt == "FS":
            imm = imm_s(w)
        return Decoded(i, raw, length, rd, rs1, rs2, imm, csr)

    def _decode(self, word: int) -> Decoded:
        """Decode the instruction whose first bytes are ``word`` (at least 16 bits valid)."""
        from popek.riscv.rvc import expand

        if word & 3 != 3:
            half = word & 0xFFFF
            full = expand(half)
            if full is None and "D" in self.extensions:
                from popek.riscv.rvc import expand_fp
                full = expand_fp(half)
            if full is None:
                return Decoded(ILLEGAL, half, 2)
            return self.decode32(full, 2, half)
        return self.decode32(word & 0xFFFFFFFF)


ISAS: dict[str, Isa] = {}          # by name: what a compile worker decodes with


def variant(name: str) -> Isa:
    """The ISA variant ``name`` (the variants beyond the base are defined in modules
    of their own, imported here on first use, also in a compile worker)."""
    name = ALIASES.get(name, name)
    if name not in ISAS:
        import importlib
        importlib.import_module("popek.riscv.fd")       # rv64imafdc
        importlib.import_module("popek.riscv.hext")     # rv64imafdch
        importlib.import_module("popek.riscv.holes")    # rv64imafdc-readhole, -writehole
    if name not in ISAS:
        raise KeyError(name)
    return ISAS[name]
# The base variant: RV64IMAC with Zicsr and Zifencei, S and U modes.
BASE = Isa("rv64imac", INSNS)
# What a machine is unless told otherwise: RV64GC (riscv/fd.py), as QEMU's virt
# board and Debian's riscv64 userland (lp64d) expect.
DEFAULT_VARIANT = "rv64imafdc"
ALIASES = {"rv64gc": "rv64imafdc", "rv64gch": "rv64imafdch",
           "rv64gc-readhole": "rv64imafdc-readhole", "rv64gc-writehole": "rv64imafdc-writehole"}
decode = BASE.decode
decode32 = BASE.decode32


# ---------------------------------------------------------------------------
# Disassembly (for traces and test failure messages).

ABI = ("zero ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 a6 a7 "
       "s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 t3 t4 t5 t6").split()


def _simm(v):
    return v - (1 << 64) if v >> 63 else v


def disassemble(d: Decoded, pc: int = 0) -> str:
    i, r = d.insn, ABI
    f = i.fmt
    if i is ILLEGAL:
        return f"illegal {d.word:#x}"
    if f == "R" or f == "AMO":
        return f"{i.name} {r[d.rd]}, {r[d.rs1]}, {r[d.rs2]}" if f == "R" else \
            f"{i.name} {r[d.rd]}, {r[d.rs2]}, ({r[d.rs1]})"
    if f == "LR":
        return f"{i.name} {r[d.rd]}, ({r[d.rs1]})"
    if f == "I":
        if i.kind == LOAD or i.name == "jalr":
            return f"{i.name} {r[d.rd]}, {_simm(d.imm)}({r[d.rs1]})"
        return f"{i.name} {r[d.rd]}, {r[d.rs1]}, {_simm(d.imm)}"
    if f == "S":
        return f"{i.name} {r[d.rs2]}, {_simm(d.imm)}({r[d.rs1]})"
    if f == "B":
        return f"{i.name} {r[d.rs1]}, {r[d.rs2]}, {(pc + d.imm) & M:#x}"
    if f == "U":
        return f"{i.name} {r[d.rd]}, {(d.imm >> 12) & 0xFFFFF:#x}"
    if f == "J":
        return f"{i.name} {r[d.rd]}, {(pc + d.imm) & M:#x}"
    if f in ("SH6", "SH5"):
        return f"{i.name} {r[d.rd]}, {r[d.rs1]}, {d.imm}"
    if f == "CSR":
        return f"{i.name} {r[d.rd]}, {d.csr:#x}, {r[d.rs1]}"
    if f == "CSRI":
        return f"{i.name} {r[d.rd]}, {d.csr:#x}, {d.imm}"
    if f == "SFENCE":
        return f"{i.name} {r[d.rs1]}, {r[d.rs2]}"
    if f == "FI":
        return f"{i.name} f{d.rd}, {_simm(d.imm)}({r[d.rs1]})"
    if f == "FS":
        return f"{i.name} f{d.rs2}, {_simm(d.imm)}({r[d.rs1]})"
    if f == "FR":
        return f"{i.name} f{d.rd}, f{d.rs1}, f{d.rs2}"
    return i.name


# ---------------------------------------------------------------------------
# Semantics → closures.

def _div64(a, b):
    if b == 0:
        return M
    a, b = (a ^ S) - S, (b ^ S) - S
    if a == -(1 << 63) and b == -1:
        return S
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & M


def _rem64(a, b):
    if b == 0:
        return a
    a, b = (a ^ S) - S, (b ^ S) - S
    if a == -(1 << 63) and b == -1:
        return 0
    r = abs(a) % abs(b)
    return (-r if a < 0 else r) & M


def _s32(v):
    return ((v & W) ^ SW) - SW


def _div32(a, b):
    a, b = _s32(a), _s32(b)
    if b == 0:
        return M
    if a == -(1 << 31) and b == -1:
        return _s32(a) & M
    q = abs(a) // abs(b)
    return _s32(-q if (a < 0) != (b < 0) else q) & M


def _divu32(a, b):
    a, b = a & W, b & W
    return M if b == 0 else _s32(a // b) & M


def _rem32(a, b):
    a, b = _s32(a), _s32(b)
    if b == 0:
        return a & M
    if a == -(1 << 31) and b == -1:
        return 0
    r = abs(a) % abs(b)
    return _s32(-r if a < 0 else r) & M


def _remu32(a, b):
    a, b = a & W, b & W
    return _s32(a) & M if b == 0 else _s32(a % b) & M


SEMANTICS_GLOBALS = {
    "M": M, "S": S, "W": W, "SW": SW, "SX": SX, "Trap": Trap,
    "div64": _div64, "rem64": _rem64, "div32": _div32, "divu32": _divu32,
    "rem32": _rem32, "remu32": _remu32,
}

# A jal that its block followed (see Hart.build_block) only links.
FOLLOWED_JAL = "x[rd] = NPC"

_HART_CALL = re.compile(r"\bh\.(\w+)\(")
_FACTORIES: dict[str, object] = {}


def _factory(i: Insn, side_exit: bool = False, followed: bool = False):
    """Compile (once per instruction kind) a function that makes closures for ``i``.

    ``side_exit``: a conditional branch in the middle of a block, which leaves the
    block when taken: it sets the pc and returns True, which ends the interpreter's
    loop over the block.
    ``followed``: a jal in the middle of a block (the block continues at its
    target), which only writes the link register.
    """
    key = (i.name, i.body, i.pre, i.may_trap, side_exit, followed)
    fn = _FACTORIES.get(key)
    if fn is not None:
        return fn
    src = FOLLOWED_JAL if followed else interpreter_body(i)
    if side_exit:
        src = src.replace("h.pc = t", "h.pc = t; return True")
    methods = sorted(set(_HART_CALL.findall(src)))
    body = _HART_CALL.sub(lambda m: f"h_{m.group(1)}(", src)
    stmts = [s.strip() for s in body.split(";")]
    lines = ["def factory(h, x, rd, rs1, rs2, imm, csr, PC, NPC, INSN, FRD, FRS1, FRS2):"]
    lines += [f"    h_{m} = h.{m}" for m in methods]
    lines += [f"    {s.strip()}" for s in i.pre.split(";") if s.strip()]
    lines.append("    def op():")
    if i.may_trap:
        lines.append("        try:")
        lines += [f"            {s}" for s in stmts]
        lines.append("        except Trap as t:")
        lines.append("            t.pc = PC")
        lines.append("            if t.tval is None: t.tval = INSN")
        lines.append("            raise")
    else:
        if side_exit:       # one if-suite: "if c: h.pc = t; return True"
            lines.append(f"        {body}")
        else:
            lines += [f"        {s}" for s in stmts]
    lines.append("    return op")
    ns = dict(SEMANTICS_GLOBALS)
    exec(compile("\n".join(lines), f"<semantics {i.name}>", "exec"), ns)
    fn = _FACTORIES[key] = ns["factory"]
    return fn


def make_op(hart, d: Decoded, pc: int, last: bool = True):
    """A zero-argument closure that executes ``d`` at ``pc`` on ``hart``.

    ``last``: whether it ends its block; a branch that does not leaves the block
    through a side exit when taken.  An op does not know where in its block it
    is (the interpreter does), so blocks that overlap share their ops.
    """
    rd = d.rd or 32            # writes to x0 land in the spare slot 32
    side_exit = not last and d.insn.kind == BRANCH
    followed = not last and d.insn.name == "jal"
    return _factory(d.insn, side_exit, followed)(hart, hart.x, rd, d.rs1, d.rs2, d.imm, d.csr,
                                                 pc, (pc + d.length) & M, d.word,
                                                 d.rd, d.rs1, d.rs2)
