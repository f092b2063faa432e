"""Dynamic binary translation of guest blocks into Python functions.

A block that has run a few times is translated: the semantics snippets of its
instructions (from :mod:`popek.riscv.isa`, the same ones the interpreter uses)
are joined into the source of one Python function, with every operand, pc and
folded constant written in as a literal, the software-TLB fast path of each load
and store inlined, guest registers held in Python locals, and compiled once.
The function lives on its block in the hart's block cache, so it is found, and
invalidated, exactly as the block is.

Rules that keep translated code exactly equal to the interpreter:

* Only slow paths can trap (a TLB miss, MMIO, a fault, a CSR or system
  instruction).  A slow path is told the instruction's index (``h.tidx``); the
  function's one ``except`` writes the register locals back to ``x`` and fills in
  the trap's pc, index and instruction bits from that index.  ``instret`` is
  added on the way out (and at each loop back-edge), so a trap leaves it exactly
  as the interpreter would.
* Blocks have the same shape in both engines (the builder is shared): a taken
  branch in the middle is a side exit (a ``return``); a branch back to the
  block's start makes the function loop, and it leaves the loop exactly where the
  dispatcher would look at interrupts and the budget: at every iteration it
  stops if ``instret`` reached ``h.limit`` or ``mip & mie`` is set.  Those (and
  ``instret``) live in locals inside a loop, since only a slow path can change
  them: a loop hands ``instret`` back before a slow path and reads the others
  again after one.
"""

from __future__ import annotations

import re

from popek.riscv import isa

MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: (1 << 64) - 1}
VIEWS = {1: ("m8", ""), 2: ("m16", " >> 1"), 4: ("m32", " >> 2"), 8: ("m64", " >> 3")}
_BRANCH = re.compile(r"^if (.+): h\.pc = t$")
_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")
_REG = re.compile(r"x\[(0x[0-9a-f]+|\d+)\]")
_REG_WRITE = re.compile(r"^\s*x\[(0x[0-9a-f]+|\d+)\] = ")

# Keep guest registers in Python locals inside a translated block.
CACHE_REGISTERS = True


class TranslationStats:
    __slots__ = ("translated", "self_loops", "source_lines")

    def __init__(self):
        self.translated = self.self_loops = self.source_lines = 0


def _literalize(text: str, values: dict) -> str:
    """Write constants in: each operand name in ``values`` becomes its literal value."""
    return _IDENT.sub(lambda m: values.get(m.group(0), m.group(0)), text)


def _constants(d: isa.Decoded, pc: int, idx: int) -> dict:
    """Operands and the instruction's folded ``pre`` values, as source literals."""
    ops = {"rd": d.rd or 32, "rs1": d.rs1, "rs2": d.rs2, "imm": d.imm, "csr": d.csr, "PC": pc,
           "NPC": (pc + d.length) & isa.M, "INSN": d.word, "IDX": idx}
    if d.insn.pre:
        ns = dict(isa.SEMANTICS_GLOBALS)
        ns.update(ops)
        for stmt in d.insn.pre.split(";"):
            if stmt.strip():
                exec(stmt.strip(), ns)
                name = stmt.split("=")[0].strip()
                ops[name] = ns[name]
    return {k: (hex(v) if isinstance(v, int) and v > 9 else repr(v)) for k, v in ops.items()}


def _statements(text: str) -> list[str]:
    return [s.strip() for s in text.split(";") if s.strip()]


def _branch_target(d: isa.Decoded, pc: int) -> int | None:
    if d.insn.kind == isa.BRANCH or d.insn.name == "jal":
        return (pc + d.imm) & isa.M
    return None


# Around a slow path inside a loop: instret goes back to the hart first (a device
# may read the clock), and the loop's limit is read again after (a device may have
# changed limit or raised an interrupt).  A pending enabled interrupt makes the
# limit 0, so the loop's one test (ic < lim) also hands interrupts to the dispatcher.
_LOOP_BEFORE_SLOW = "h.instret = ic"
_LOOP_LIMIT = "lim = 0 if h.mip & h.mie else h.limit"
_LOOP_AFTER_SLOW = _LOOP_LIMIT
_FORGET = "FORGET_PAGES"           # replaced by "p0 = p3 = -1" for the block's access sites


def _memory_access(d: isa.Decoded, values: dict, idx: int, loop: bool) -> list[str]:
    """A load or store: the TLB fast path inline, the hart's slow path otherwise.

    In a loop, each access site also remembers the last page it hit (``pN``, its
    RAM offset ``oN``), so an access to the same page as last time, the common case
    of a loop walking memory, costs a comparison instead of a TLB lookup.  The TLBs
    cannot change inside a loop except through a slow path, after which every site
    forgets its page (``_LOOP_AFTER_SLOW`` plus the block's ``forget`` statement)."""
    ea, size = d.insn.mem
    view, shift = VIEWS[size]
    if d.imm == 0:               # registers are already 64-bit: the register is the address
        va, lines = _literalize("x[rs1]", values), []
    else:
        va, lines = "va", [f"va = {_literalize(ea, values)}"]
    align = f" and not {va} & {size - 1}" if size > 1 else ""
    fast = f"{view}[(o | ({va} & 4095)){shift}]"
    remembered = f"{view}[(o{idx} | ({va} & 4095)){shift}]"
    same_page = f"if {va} >> 12 == p{idx}{align}: "
    remember = f"p{idx} = {va} >> 12; o{idx} = o; "
    after_slow = f"{_LOOP_AFTER_SLOW}; {_FORGET}"
    if d.insn.kind == isa.LOAD:
        slow = f"h.load_at({idx}, {va}, {size})"
        if loop:
            lines += [same_page + f"v = {remembered}",
                      f"elif (o := rget({va} >> 12)) is not None{align}: {remember}v = {fast}",
                      f"else: {_LOOP_BEFORE_SLOW}; v = {slow}; {after_slow}"]
        else:
            lines.append(f"v = {fast} if (o := rget({va} >> 12)) is not None{align} else {slow}")
        return lines + _statements(_literalize(d.insn.body, values))
    value = f"({_literalize(d.insn.body, values)}) & {MASKS[size]:#x}"
    slow = f"h.store_at({idx}, {va}, {size}, {value})"
    if loop:
        lines += [same_page + f"{remembered} = {value}",
                  f"elif (o := wget({va} >> 12)) is not None{align}: {remember}{fast} = {value}",
                  f"else: {_LOOP_BEFORE_SLOW}; {slow}; {after_slow}"]
    else:
        lines.append(f"if (o := wget({va} >> 12)) is not None{align}: {fast} = {value}")
        lines.append(f"else: {slow}")
    return lines


def block_source(insns: list[tuple[int, isa.Decoded]], start_pc: int) -> tuple[str, bool]:
    """Python source of the function for a block of ``(pc, decoded)``; and whether it loops."""
    n = len(insns)
    # A block that branches back to its own start loops inside its function.
    loop = any(_branch_target(d, pc) == start_pc
               and (d.insn.kind == isa.BRANCH or (d.rd == 0 and k == n - 1))
               for k, (pc, d) in enumerate(insns))

    def retire(k: int) -> str:
        return f"h.instret = ic + {k}" if loop else f"h.instret += {k}"

    body: list[str] = []
    for idx, (pc, d) in enumerate(insns):
        values = _constants(d, pc, idx)
        i = d.insn
        last = idx == n - 1
        body.append(f"# {pc:#x}: {isa.disassemble(d, pc)}")
        if i.mem is not None:
            body += _memory_access(d, values, idx, loop)
            continue
        if i.name == "jal" and not last:           # followed by the block: only links
            body += _statements(_literalize(isa.FOLLOWED_JAL, values))
            continue
        stmts = _statements(_literalize(i.body, values))
        target = _branch_target(d, pc)
        back_edge = target == start_pc
        m = _BRANCH.match(i.body) if i.kind == isa.BRANCH else None
        if m and (back_edge or not last):
            # A taken branch leaves the block here: back to its start (a loop, which
            # goes round again while the dispatcher would let it) or out (a side exit).
            body.append(f"if {_literalize(m.group(1), values)}:")
            if back_edge:
                body += [f"    ic += {idx + 1}",
                         "    if ic < lim: continue",
                         "    h.instret = ic"]
            else:
                body.append("    " + retire(idx + 1))
            body += [f"    h.pc = {target:#x}", "    return"]
            continue
        if last and back_edge and i.name == "jal" and d.rd == 0:   # `j .` and friends
            body += [f"ic += {n}",
                     "if ic < lim: continue",
                     "h.instret = ic",
                     f"h.pc = {start_pc:#x}",
                     "return"]
            continue
        if i.may_trap:
            body.append(f"h.tidx = {idx}")
            if loop:
                body += [_LOOP_BEFORE_SLOW] + stmts + [_LOOP_AFTER_SLOW]
                continue
        body += stmts
    if body[-1] != "return":
        body.append(retire(n))
        if loop:
            body.append("return")

    prologue, body, store = _cache_registers(body) if CACHE_REGISTERS else ([], body, "")
    indent = " " * (16 if loop else 12)
    lines = ["def make(h, x, m8, m16, m32, m64, PCS, WORDS):",
             "    def tb():",
             "        rget = h.rtlb.get",          # the TLBs stay the same objects in a block
             "        wget = h.wtlb.get"]
    lines += ["        " + p for p in prologue]
    if loop:
        lines.append("        ic = h.instret; " + _LOOP_LIMIT)
        sites = [idx for idx, (_, d) in enumerate(insns) if d.insn.mem is not None]
        forget = " = ".join(f"p{i}" for i in sites) + " = -1" if sites else "pass"
        lines.append("        " + forget)
        body = [line.replace(_FORGET, forget) for line in body]
    lines.append("        try:")
    if loop:
        lines.append("            while True:")
    lines += [indent + s for s in body]
    lines.append("        except Trap as t:")
    if store:
        lines.append("            " + store)
    lines += ["            i = h.tidx",
              "            t.pc = PCS[i]",
              "            t.idx = i",
              "            if t.tval is None: t.tval = WORDS[i]",
              "            raise",
              "    return tb"]
    return "\n".join(lines), loop


def _cache_registers(body: list[str]) -> tuple[list[str], list[str], str]:
    """Keep guest registers in Python locals for the length of the block.

    Each register the block uses is read into ``rN`` on entry; x0 becomes the
    literal 0, writes to it go to ``_``.  Registers the block writes are stored
    back to ``x`` before every ``return`` and, by the caller, in the ``except``
    that a trap leaves through (the locals are exact at any instruction
    boundary).  Returns the prologue, the new body and that store statement.
    """
    used, written = set(), set()
    for line in body:
        if line.lstrip().startswith("#"):
            continue
        used.update(int(n, 0) for n in _REG.findall(line))
        m = _REG_WRITE.match(line)
        if m:
            written.add(int(m.group(1), 0))
    used -= {0, 32}
    written -= {0, 32}
    store = "; ".join(f"x[{n}] = r{n}" for n in sorted(written))

    def local(m):
        n = int(m.group(1), 0)
        return "0" if n == 0 else "_" if n == 32 else f"r{n}"

    out = []
    for line in body:
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        stripped = line.lstrip()
        if store and stripped == "return":
            out.append(line[:len(line) - len(stripped)] + store)
        out.append(_REG.sub(local, line))
    if store and out[-1].strip() != "return":
        out.append(store)
    return [f"r{n} = x[{n}]" for n in sorted(used)], out, store


def translate(hart, insns: list[tuple[int, isa.Decoded]], start_pc: int, stats: TranslationStats):
    """Compile the block ``insns`` into a zero-argument function bound to ``hart``."""
    src, loop = block_source(insns, start_pc)
    ns = dict(isa.SEMANTICS_GLOBALS)
    exec(compile(src, f"<block {start_pc:#x}>", "exec"), ns)
    stats.translated += 1
    stats.self_loops += loop
    stats.source_lines += src.count("\n") + 1
    return ns["make"](hart, hart.x, hart.m8, hart.m16, hart.m32, hart.m64,
                      tuple(pc for pc, _ in insns), tuple(d.word for _, d in insns))
