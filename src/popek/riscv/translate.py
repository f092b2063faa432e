"""Dynamic binary translation of guest blocks into Python functions.

A block that has run a few times is translated: the semantics snippets of its
instructions (from :mod:`popek.riscv.isa`, the same ones the interpreter uses)
are joined into the source of one Python function, with every operand, pc and
folded constant written in as a literal, the software-TLB fast path of each load
and store inlined, guest registers held in Python locals, and compiled once
(the compiled code is kept by the block's contents in the code cache,
codecache.py, so the same block is compiled once per machine, or once ever).
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
  branch in the middle is a side exit (a ``break`` to the epilogue); a branch back to the
  block's start makes the function loop, and it leaves the loop exactly where the
  dispatcher would look at interrupts and the budget: at every iteration it
  stops if ``instret`` reached ``h.limit`` or an interrupt can be taken.  Those (and
  ``instret``) live in locals inside a loop, since only a slow path can change
  them: a loop hands ``instret`` back before a slow path and reads the others
  again after one.
"""

from __future__ import annotations

import functools
import logging
import re

from popek.riscv import blockshape, isa, translate_fp
from popek.riscv.mmu import TLB_KEY

log = logging.getLogger(__name__)

MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: (1 << 64) - 1}
VIEWS = {1: ("m8", ""), 2: ("m16", " >> 1"), 4: ("m32", " >> 2"), 8: ("m64", " >> 3")}
_BRANCH = re.compile(r"^if (.+): h\.pc = t$")
_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")
_LOCAL = re.compile(r"\br(\d+)\b")
_LOCAL_WRITE = re.compile(r"\br(\d+) = ")


class TranslationStats:
    __slots__ = ("translated", "self_loops", "source_lines")

    def __init__(self):
        self.translated = self.self_loops = self.source_lines = 0


@functools.lru_cache(maxsize=None)
def _operand_names(text: str) -> str:
    """A snippet with its register operands as names: ``x[rs1]`` becomes ``XRS1``."""
    return text.replace("x[rs1]", "XRS1").replace("x[rs2]", "XRS2").replace("x[rd]", "XRD")


def _literalize(text: str, values: dict) -> str:
    """Write operands in: each name in ``values`` becomes its literal value, and
    each register operand the Python local that holds it (x0: the literal 0, a
    write to x0: the throwaway ``_``)."""
    return _IDENT.sub(lambda m: values.get(m.group(0), m.group(0)), _operand_names(text))


_PRE_CODE: dict[str, object] = {}
# The snippets' named constants, written in as literals: a literal is a LOAD_CONST,
# a name a global lookup (~15 % of a sign-extension's time).
_M = f"{isa.M:#x}"
_LITERAL_CONSTANTS = {"M": _M, "S": f"{isa.S:#x}", "W": f"{isa.W:#x}", "SW": f"{isa.SW:#x}",
                      "SX": f"{isa.SX:#x}"}


def _constants(d: isa.Decoded, pc: int) -> dict:
    """Operands and the instruction's folded ``pre`` values, as source literals."""
    ops = {"rd": d.rd or 32, "rs1": d.rs1, "rs2": d.rs2, "imm": d.imm, "csr": d.csr, "PC": pc,
           "NPC": (pc + d.length) & isa.M, "INSN": d.word,
           "FRD": d.rd, "FRS1": d.rs1, "FRS2": d.rs2}       # FP registers: f0 is real
    pre = d.insn.pre
    if pre:
        code = _PRE_CODE.get(pre)
        if code is None:
            code = _PRE_CODE[pre] = compile(pre, "<pre>", "exec")
        ns = dict(isa.SEMANTICS_GLOBALS)
        ns.update(ops)
        exec(code, ns)
        for stmt in pre.split(";"):
            name = stmt.split("=")[0].strip()
            if name:
                ops[name] = ns[name]
    values = {k: (hex(v) if isinstance(v, int) and v > 9 else repr(v)) for k, v in ops.items()}
    values.update(_LITERAL_CONSTANTS)
    values["XRS1"] = f"r{d.rs1}" if d.rs1 else "0"
    values["XRS2"] = f"r{d.rs2}" if d.rs2 else "0"
    values["XRD"] = f"r{d.rd}" if d.rd else "_"
    return values


def _statements(text: str) -> list[str]:
    return [s.strip() for s in text.split(";") if s.strip()]


def _branch_target(d: isa.Decoded, pc: int) -> int | None:
    if d.insn.kind == isa.BRANCH or d.insn.name == "jal":
        return (pc + d.imm) & isa.M
    return None


# Around a slow path inside a loop: instret goes back to the hart first (a device
# may read the clock), and the loop's limit is read again after (a device may have
# changed limit or raised an interrupt).  An interrupt the hart would take now makes
# the limit 0, so the loop's one test (ic < lim) also hands interrupts to the
# dispatcher; one pending but masked (mstatus.MIE/SIE off: Linux's early boot has
# SSIP so) does not, or every iteration would go back to the dispatcher for nothing.
_LOOP_BEFORE_SLOW = "h.instret = ic"
_LOOP_LIMIT = "lim = 0 if h.mip & h.mie and h.interrupt_due() else h.limit"
_LOOP_AFTER_SLOW = _LOOP_LIMIT
_FORGET = "FORGET_PAGES"           # replaced by "p0 = p3 = -1" for the block's access sites


def _slow_path(loop: bool):
    """How a statement that may take a slow path, or trap, is written: in a loop, with
    instret handed back before it and the limit and the pages read again after."""
    if not loop:
        return lambda stmt: stmt
    return lambda stmt: f"{_LOOP_BEFORE_SLOW}; {stmt}; {_LOOP_AFTER_SLOW}; {_FORGET}"


def _memory_access(d: isa.Decoded, values: dict, idx: int, loop: bool) -> list[str]:
    """A load or store: the TLB fast path inline, the hart's slow path otherwise.

    In a loop, each access site also remembers the last page it hit (``pN``, its
    TLB key, and ``oN``, its TLB entry), so an access to the same page as last time, the common case
    of a loop walking memory, costs a comparison instead of a TLB lookup.  The TLBs
    cannot change inside a loop except through a slow path, after which every site
    forgets its page (``_LOOP_AFTER_SLOW`` plus the block's ``forget`` statement)."""
    ea, size = d.insn.mem
    view, shift = VIEWS[size]
    if d.imm == 0:               # registers are already 64-bit: the register is the address
        va, lines = _literalize("x[rs1]", values), []
    else:
        va, lines = "va", [f"va = {_literalize(ea, values)}"]
    key = f"{va} & {TLB_KEY[size]:#x}"          # a misaligned va misses (mmu.py)
    fast = f"{view}[({va} + o){shift}]" if shift else f"{view}[{va} + o]"
    remembered = f"{view}[({va} + o{idx}){shift}]" if shift else f"{view}[{va} + o{idx}]"
    same_page = f"if {key} == p{idx}: "
    remember = f"p{idx} = {key}; o{idx} = o; "
    after_slow = f"{_LOOP_AFTER_SLOW}; {_FORGET}"
    if d.insn.kind == isa.LOAD:
        slow = f"h.load_at({idx}, {va}, {size})"
        v, rest = _load_target(d, values)
        if loop:
            lines += [same_page + f"{v} = {remembered}",
                      f"elif (o := rget({key})) is not None: {remember}{v} = {fast}",
                      f"else: {_LOOP_BEFORE_SLOW}; {v} = {slow}; {after_slow}"]
        else:
            lines.append(f"{v} = {fast} if (o := rget({key})) is not None else {slow}")
        return lines + rest
    value = _store_value(d, values)
    slow = f"h.store_at({idx}, {va}, {size}, {value})"
    if loop:
        lines += [same_page + f"{remembered} = {value}",
                  f"elif (o := wget({key})) is not None: {remember}{fast} = {value}",
                  f"else: {_LOOP_BEFORE_SLOW}; {slow}; {after_slow}"]
    else:
        lines.append(f"if (o := wget({key})) is not None: {fast} = {value}")
        lines.append(f"else: {slow}")
    return lines


def _load_target(d: isa.Decoded, values: dict) -> tuple[str, list[str]]:
    """Where a load puts the loaded value, and the statements that follow: a load
    that keeps the value as it is (ld, lbu, ...) loads straight into rd."""
    if d.insn.body == "x[rd] = v":
        return _literalize("x[rd]", values), []
    return "v", _statements(_literalize(d.insn.body, values))


def _store_value(d: isa.Decoded, values: dict) -> str:
    size = d.insn.mem[1]
    value = _literalize(d.insn.body, values)
    return value if size == 8 else f"({value}) & {MASKS[size]:#x}"   # registers are 64-bit


def _signed_imm(d: isa.Decoded) -> int:
    return d.imm - (1 << 64) if d.imm >> 63 else d.imm


def _access_groups(insns: list[tuple[int, isa.Decoded]]) -> dict[int, list[int]]:
    """Runs of two or more consecutive loads (or stores) of one size off one base
    register, at offsets equal modulo the size, that the run leaves unchanged (a
    load into the base may only end a run): ``{first index: [indices]}``.

    Such runs are everywhere: a function saving or restoring registers on the
    stack, reading a structure's fields, an unrolled memset or memcpy."""
    groups: dict[int, list[int]] = {}
    k, n = 0, len(insns)
    while k < n:
        d = insns[k][1]
        if d.insn.mem is None or d.rs1 == 0 or (d.insn.kind == isa.LOAD and d.rd == d.rs1):
            k += 1
            continue
        kind, size, base, first = d.insn.kind, d.insn.mem[1], d.rs1, _signed_imm(d)
        run = [k]
        for j in range(k + 1, n):
            e = insns[j][1]
            if e.insn.mem is None or e.insn.kind != kind or e.insn.mem[1] != size \
                    or e.rs1 != base or (_signed_imm(e) - first) % size:
                break
            run.append(j)
            if kind == isa.LOAD and e.rd == base:
                break
        if len(run) > 1:
            groups[k] = run
        k = run[-1] + 1
    return groups


def _group_access(insns, run: list[int], loop: bool) -> list[str]:
    """A run of ``_access_groups``: one test that all of it falls on one cached RAM page,
    aligned, then each access a plain index; otherwise (a run straddling two pages,
    a TLB miss, a device) each access as ``_memory_access`` does it on its own
    (exact: a trap at one leaves the ones before it done)."""
    d0 = insns[run[0]][1]
    kind, size, base = d0.insn.kind, d0.insn.mem[1], d0.rs1
    view, shift = VIEWS[size]
    offsets = [_signed_imm(insns[k][1]) for k in run]
    lo, span = min(offsets), max(offsets) - min(offsets) + size
    get = "rget" if kind == isa.LOAD else "wget"
    reg = f"r{base}"
    start = reg if lo == 0 else f"({reg} + {lo & isa.M:#x}) & {_M}"
    fast = [f"gb = {start}",
            f"if (gb & 4095) <= {4096 - span} and (go := {get}(gb & {TLB_KEY[size]:#x})) "
            "is not None:",
            f"    go = (gb + go){shift}" if shift else "    go += gb"]   # an index into the view
    slow = ["else:"]
    for k, off in zip(run, offsets):
        pc, d = insns[k]
        values = _constants(d, pc)
        rel = off - lo
        at = f"{view}[go + {rel // size}]" if rel else f"{view}[go]"
        comment = f"    # {pc:#x}: {isa.disassemble(d, pc)}"
        fast.append(comment)
        if kind == isa.LOAD:
            v, rest = _load_target(d, values)
            fast += [f"    {v} = {at}"] + [f"    {r}" for r in rest]
        else:
            fast.append(f"    {at} = {_store_value(d, values)}")
        slow.append(comment)
        slow += [f"    {line}" for line in _memory_access(d, values, k, loop)]
    return fast + slow


# Instructions that set the pc (or trap) whenever they complete.
_SETS_PC = {"jal", "jalr", "mret", "sret", "ecall", "ebreak", "illegal"}


def block_source(insns: list[tuple[int, isa.Decoded]], start_pc: int) -> tuple[str, bool]:
    """Python source of the function for a block of ``(pc, decoded)``; and whether it loops.

    The body sits in a ``while True``: a block that branches back to its start
    goes round with ``continue``; every way out (a taken side exit, the end, a
    loop stopping for the dispatcher) sets ``n``, the index it left at (or 0 after
    a loop's ``ic`` counted a round), and ``break``s to the one epilogue, which
    counts the instructions retired and writes the register locals back.  A skip
    (blockshape.py) is an ``if``/``else``: taken, it adds the instructions it
    jumped over to ``sk``, which the epilogue (and a trap's index) takes off ``n``."""
    n = len(insns)
    # A block that branches back to its own start loops inside its function.
    loop = any(_branch_target(d, pc) == start_pc
               and (d.insn.kind == isa.BRANCH or (d.rd == 0 and k == n - 1))
               for k, (pc, d) in enumerate(insns))
    skips = blockshape.skips(insns) or {}
    sk = " - sk" if skips else ""
    body: list[str] = []
    pc_set = False                  # the last instruction sets the pc on every path
    groups = _split_groups(_access_groups(insns), set(skips.values()))
    grouped = {k for run in groups.values() for k in run}
    fp = translate_fp.FpBlock(_slow_path(loop))      # F and D, written inline
    open_skips: list[tuple[int, tuple]] = []         # (where it rejoins, FP state before it)
    for idx, (pc, d) in enumerate(insns):
        while open_skips and open_skips[-1][0] == idx:
            fp.join(open_skips.pop()[1])
        pad = "    " * len(open_skips)
        lines: list[str] = []
        if idx in groups:
            lines += _group_access(insns, groups[idx], loop)
        if idx not in grouped:
            pc_set = _instruction(lines, insns, idx, start_pc, loop, fp, skips, sk)
        body += [pad + line for line in lines]
        if idx in skips:
            open_skips.append((skips[idx], fp.state()))
    if body[-1] != "n = 0":
        # Running off the end: the function sets the next pc itself (the dispatcher
        # does not, for translated blocks), unless the last instruction always has.
        last_pc, last = insns[-1]
        if not pc_set and last.insn.name not in _SETS_PC and last.insn.kind != isa.CALLOUT:
            body.append(f"h.pc = {(last_pc + last.length) & isa.M:#x}")
        body.append(f"n = {n}")
    body.append("break")

    prologue, body, store = _registers_as_locals(body, loop)
    lines = ["def make(h, x, m8, m16, m32, m64, PCS, WORDS):", "    def tb():"]
    # The TLBs stay the same objects for the length of a block.
    if any("rget(" in line for line in body):
        lines.append("        rget = h.rtlb.get")
    if any("wget(" in line for line in body):
        lines.append("        wget = h.wtlb.get")
    if any("fr[" in line for line in body):
        lines.append("        fr = h.f")
    lines += ["        " + p for p in prologue]
    if skips:
        lines.append("        sk = 0")
    if loop:
        lines.append("        ic = h.instret; " + _LOOP_LIMIT)
        sites = [idx for idx, (_, d) in enumerate(insns) if d.insn.mem is not None]
        forget = " = ".join(f"p{i}" for i in sites) + " = -1" if sites else "pass"
        lines.append("        " + forget)
        body = [line.replace(_FORGET, forget) for line in body]
    lines += ["        try:", "            while True:"]
    lines += ["                " + s for s in body]
    lines.append("        except Trap as t:")
    if store:
        lines.append("            " + store)
    lines += ["            i = h.tidx",
              "            t.pc = PCS[i]",
              f"            t.idx = i{sk}",
              "            if t.tval is None: t.tval = WORDS[i]",
              "            raise",
              f"        h.instret = ic + n{sk}" if loop else f"        h.instret += n{sk}"]
    if store:
        lines.append("        " + store)
    lines.append("    return tb")
    return "\n".join(lines), loop


def _instruction(body: list[str], insns, idx: int, start_pc: int, loop: bool, fp,
                 skips: dict, sk: str) -> bool:
    """Append the lines of instruction ``idx`` (not in an access group) to ``body``;
    returns whether it is the last and sets the pc on every path."""
    pc, d = insns[idx]
    n = len(insns)
    values = _constants(d, pc)
    i = d.insn
    last = idx == n - 1
    body.append(f"# {pc:#x}: {isa.disassemble(d, pc)}")
    if i.mem is not None:
        body += _memory_access(d, values, idx, loop)
        return False
    if i.name == "jal" and not last:           # followed by the block: only links
        body += _statements(_literalize(isa.FOLLOWED_JAL, values))
        return False
    fp_lines = fp.statements(d, idx, values)
    if fp_lines is not None:
        body += fp_lines
        return False
    stmts = _statements(_literalize(i.body, values))
    target = _branch_target(d, pc)
    back_edge = target == start_pc
    m = _BRANCH.match(i.body) if i.kind == isa.BRANCH else None
    if m and idx in skips:
        # A skip: taken, it goes on at its target in this block (the instructions
        # up to it are the else), counting those it jumped over.
        body += [f"if {_literalize(m.group(1), values)}:",
                 f"    sk += {skips[idx] - idx - 1}", "else:", "    pass"]
        return False
    if m and (back_edge or not last):
        # A taken branch leaves the block here: back to its start (a loop, which
        # goes round again while the dispatcher would let it) or out (a side exit).
        body.append(f"if {_literalize(m.group(1), values)}:")
        if back_edge:
            body += [f"    ic += {idx + 1}{sk}"] + (["    sk = 0"] if sk else []) \
                + ["    if ic < lim: continue", "    n = 0"]
        else:
            body.append(f"    n = {idx + 1}")
        body += [f"    h.pc = {target:#x}", "    break"]
        return False
    if m:                   # the last instruction, a branch out: either way sets the pc
        body.append(f"h.pc = {target:#x} if {_literalize(m.group(1), values)} "
                    f"else {(pc + d.length) & isa.M:#x}")
        return True
    if last and back_edge and i.name == "jal" and d.rd == 0:   # `j .` and friends
        body += [f"ic += {n}{sk}"] + (["sk = 0"] if sk else []) \
            + ["if ic < lim: continue", f"h.pc = {start_pc:#x}", "n = 0"]
        return False
    if i.may_trap:
        body.append(f"h.tidx = {idx}")
        if loop:
            body += [_LOOP_BEFORE_SLOW] + stmts + [_LOOP_AFTER_SLOW]
            return False
    body += stmts
    return False


def _split_groups(groups: dict[int, list[int]], cuts: set[int]) -> dict[int, list[int]]:
    """Access groups cut where a skip rejoins: the instructions before a skip's
    target may not have run, so no group reaches over one."""
    if not cuts:
        return groups
    out = {}
    for first, run in groups.items():
        part = [run[0]]
        for k in run[1:]:
            if k in cuts:
                if len(part) > 1:
                    out[part[0]] = part
                part = []
            part.append(k)
        if len(part) > 1:
            out[part[0]] = part
    return out


# An assignment; it is folded when its value is a constant once operands are
# written in (``li``, ``lui``, a link register).
_ASSIGN = re.compile(r"^(r\d+|_) = (.+)$")
# (sx, if, else: isa.sext32's conditional)
_CONSTANT_NAMES = {"M", "S", "W", "SW", "SX", "sx", "if", "else"}
# ``mv``: ``addi rd, rs, 0`` and ``add rd, zero, rs`` (registers are already 64-bit).
_MOVE = re.compile(r"^(r\d+) = \((?:0 \+ (r\d+)|(r\d+) \+ 0)\) & 0xffffffffffffffff$")


def _registers_as_locals(body: list[str], loop: bool) -> tuple[list[str], list[str], str]:
    """Guest registers live in Python locals ``rN`` for the length of the block.

    Each register the block uses is read into its local on entry.  Registers it
    writes are stored back to ``x`` in the epilogue and in the ``except`` that a
    trap leaves through (the locals are exact at any instruction boundary).  With
    operands written in, some statements have become constants (``li``, ``lui``,
    a link register) or moves, which are folded here.

    A local costs a load on entry (and, if written, a store on the way out) on
    every run, used or not: a block runs ~20 instructions between entry and exit
    and may use 15 registers.  So in a block that does not loop, a register used
    too little to pay for that (read once; written once and read at most twice;
    written twice and read once) is used in ``x`` directly.  Returns the
    prologue, the new body and that store statement.
    """
    out = []
    for line in body:
        text = line.lstrip()
        if not text.startswith("#"):
            pad = line[:len(line) - len(text)]          # (inside a skip's else)
            c = _ASSIGN.match(text)
            if c and set(_IDENT.findall(c.group(2))) <= _CONSTANT_NAMES:
                if c.group(1) == "_":
                    continue                            # a constant written to x0
                line = f"{pad}{c.group(1)} = " \
                    f"{eval(c.group(2), dict(isa.SEMANTICS_GLOBALS)):#x}"
            elif c:
                mv = _MOVE.match(text)
                if mv:
                    line = f"{pad}{mv.group(1)} = {mv.group(2) or mv.group(3)}"
        out.append(line)
    uses: dict[str, int] = {}
    writes: dict[str, int] = {}
    regs_of = []                                    # the registers each line names
    for line in out:
        regs = () if line.lstrip().startswith("#") else _LOCAL.findall(line)
        regs_of.append(regs)
        for n in regs:
            uses[n] = uses.get(n, 0) + 1
        if regs:
            for n in _LOCAL_WRITE.findall(line):
                writes[n] = writes.get(n, 0) + 1
    direct = set()
    if not loop:
        for n, count in uses.items():
            w = writes.get(n, 0)
            if 2 * (count - w) + 2.5 * w < (8 if w else 4):
                direct.add(n)
        if direct:
            def sub(m):
                return f"x[{m.group(1)}]" if m.group(1) in direct else m.group(0)
            out = [_LOCAL.sub(sub, line) if not direct.isdisjoint(regs) else line
                   for line, regs in zip(out, regs_of)]
    cached = sorted((n for n in uses if n not in direct), key=int)
    store = "; ".join(f"x[{n}] = r{n}" for n in cached if n in writes)
    return [f"r{n} = x[{n}]" for n in cached], out, store


# -- flavours: which ISA variant, and which rewrite of its instructions --------------
#
# A VMM strategy may rewrite an instruction before it runs (binary translation turns
# a sensitive instruction into a call of the VMM's emulation): the rewrite hook.
# A rewrite is a function ``(pc, Decoded) -> Decoded`` named ``"module:function"``
# (so a compile worker, which decodes the block's bits itself, can import it);
# the hart applies it as it decodes (hart/blocks.py), so both engines run the
# rewritten instruction.  It must depend on nothing but its arguments, and keep
# ``Decoded.word`` (the bits the key and the worker see).  The worker knows the ISA
# variants made when popek.riscv.isa is imported; a block of any other flavour it
# cannot decode is compiled in-process instead (correct, only slower).  A *flavour* names the ISA variant and the rewrite
# (``"rv64imac"``, ``"rv64imac+pkg.mod:fn"``); it is the first item of every
# translation's key, so code of one flavour is never found for another.


def flavour(variant: isa.Isa, rewrite: str | None = None) -> str:
    return variant.name if rewrite is None else f"{variant.name}+{rewrite}"


BASE_FLAVOUR = flavour(isa.BASE)


def rewrite_function(name: str):
    """The rewrite named ``"module:function"``."""
    import importlib
    module, _, fn = name.partition(":")
    return getattr(importlib.import_module(module), fn)


def decoder(flav: str):
    """``(decode, rewrite or None)`` of a flavour: what turns its bits into what runs."""
    name, _, rewrite = flav.partition("+")
    return isa.variant(name).decode, (rewrite_function(rewrite) if rewrite else None)


def _key(insns: list[tuple[int, isa.Decoded]], start_pc: int, flav: str) -> tuple:
    """What a block's code depends on: the flavour, its instructions and where they are."""
    return (flav, start_pc) + tuple(v for pc, d in insns for v in (pc, d.word))


def compile_block(insns: list[tuple[int, isa.Decoded]], start_pc: int) -> tuple:
    """The compiled code of a block: ``(code object, whether it loops, source lines)``.

    The same in-process and in the background worker (compiler.py)."""
    src, loop = block_source(insns, start_pc)
    return compile(src, f"<block {start_pc:#x}>", "exec"), loop, src.count("\n") + 1


_refusals = 0                     # blocks Python would not compile (the first is logged)


def _compile_here(hart, key: tuple, insns, start_pc: int, stats: TranslationStats):
    """:func:`compile_block` in this process, kept (:func:`_keep`) as a cache entry; or
    None where Python refuses the source (a limit of its compiler that a guest's code
    reached: the block then stays interpreted, which runs any block).  A guest must not
    be able to stop the machine this way."""
    global _refusals
    try:
        compiled = compile_block(insns, start_pc)
    except (SyntaxError, RecursionError, MemoryError, ValueError) as e:
        if not _refusals:
            log.warning("the block at %#x cannot be translated (%s: %s); it and any like it "
                        "run interpreted", start_pc, type(e).__name__, e)
        _refusals += 1
        return None
    return _keep(hart, key, compiled, stats)


def _keep(hart, key: tuple, compiled: tuple, stats: TranslationStats) -> tuple:
    """Freshly compiled code ``(code, loops, source lines)``: counted, put in the
    hart's code cache, and returned as a cache entry ``(code, loops)``."""
    code, loop, lines = compiled
    stats.source_lines += lines
    if hart.code_cache is not None:
        hart.code_cache.put(key, code, loop, lines)
    return code, loop


def translate(hart, insns: list[tuple[int, isa.Decoded]], start_pc: int, stats: TranslationStats,
              flav: str = BASE_FLAVOUR):
    """Compile the block ``insns`` into a zero-argument function bound to ``hart`` (None
    if Python will not compile it: the block stays interpreted).

    The compiled code comes from the hart's code cache when the same block
    (same instructions at the same addresses) was compiled before."""
    cache = hart.code_cache
    key = _key(insns, start_pc, flav)
    entry = cache.get(key) if cache is not None else None
    if entry is None:
        entry = _compile_here(hart, key, insns, start_pc, stats)
        if entry is None:
            return None
    return _instantiate(hart, entry, insns, stats)


RETRY_AFTER = 32            # runs before a hot block asks again when the worker was busy
MAX_WAITING = 16            # blocks waiting for one reply (copies of one block, rebuilt)


def translate_hot(hart, blk, flav: str) -> None:
    """Give a block that has become hot its function: at once if its code is in the
    code cache or there is no background worker (compiler.py); else when the
    worker's reply comes in (:func:`install`), the block running interpreted
    until then.  Blocks of the same key wait for one reply."""
    key = _key(blk.insns, blk.pc, flav)
    cache = hart.code_cache
    entry = cache.get(key) if cache is not None else None
    if entry is None and hart.compiler is not None:
        waiting = hart.awaiting.get(key)
        if waiting is not None:
            if len(waiting) < MAX_WAITING:      # (the same code rebuilt again and again:
                waiting.append(blk)             # the rest interpret on and ask later)
            else:
                blk.heat = RETRY_AFTER
            return
        if hart.compiler.busy():            # the backlog is full: interpret on, ask later
            blk.heat = RETRY_AFTER
            return
        pairs = tuple((pc, d.word) for pc, d in blk.insns)
        if hart.compiler.submit(key, blk.pc, pairs, flav):
            hart.awaiting[key] = [blk]
            return
    if entry is None:
        entry = _compile_here(hart, key, blk.insns, blk.pc, hart.tstats)
        if entry is None:
            return                      # (heat stays 0: interpreted from now on)
    blk.fn = _instantiate(hart, entry, blk.insns, hart.tstats)


def install(hart, key: tuple, code, loop: bool, lines: int, blocks: list) -> None:
    """The worker's code for ``key`` came in: cache it, and give it to the blocks
    waiting for it (a block dropped meanwhile gets it too, harmlessly: nothing
    reaches it any more)."""
    entry = _keep(hart, key, (code, loop, lines), hart.tstats)
    for blk in blocks:
        blk.fn = _instantiate(hart, entry, blk.insns, hart.tstats)


def translated_before(hart, insns: list[tuple[int, isa.Decoded]], start_pc: int,
                      stats: TranslationStats, flav: str):
    """The block's function if its code is in the code cache already, else None.

    A block whose code is at hand is worth running translated from its first run.
    Only code loaded from disk is looked for: a block built for the first time in
    this run cannot have been compiled in it (one rebuilt can: it finds its code
    when it gets hot again, without a compile), and the key costs ~2 % of a cold boot."""
    cache = hart.code_cache
    entry = cache.get(_key(insns, start_pc, flav)) if cache is not None and cache.loaded \
        else None
    return None if entry is None else _instantiate(hart, entry, insns, stats)


def _instantiate(hart, entry: tuple, insns, stats: TranslationStats):
    code, loop = entry[0], entry[1]
    ns = dict(isa.SEMANTICS_GLOBALS)
    ns.update(translate_fp.GLOBALS)
    exec(code, ns)
    stats.translated += 1
    stats.self_loops += loop
    return ns["make"](hart, hart.x, hart.m8, hart.m16, hart.m32, hart.m64,
                      tuple(pc for pc, _ in insns), tuple(d.word for _, d in insns))
