"""F and D instructions in translated blocks (translate.py).

An FP instruction's snippet (fd.py) calls the hart's FP unit (hart/fp.py), which
checks mstatus.FS, resolves the rounding mode, reads and NaN-unboxes registers,
calls softfloat's fast path, accrues the flags and marks FS Dirty.  The interpreter
does all that every time; a translated block writes the hot instructions inline
instead (loads and stores through the TLB fast path, arithmetic as one call of the
softfloat function with its operands and a literal rounding mode), and does each
check once where the interpreter's first instance of it would have done it:

* FS: before the first FP instruction of the block (in its order, which is the
  order of execution: a block is straight-line code with side exits, and a loop
  starts again from the top; where a skip (blockshape.py) rejoins, only what held
  both before and after the instructions it skipped is known).  Nothing inside a
  block can turn FS Off (only a CSR
  write, which has a block of its own, or a trap, which leaves the block), so the
  instructions after it need no check; an instruction left to the hart checks for
  itself.  (Any other instruction that calls the hart, should a rewrite ever put a
  CSR write's emulation inside a block, makes the checks start afresh after it.)
* Dirty: after the first instruction that writes an FP register (FP work only ever
  raises FS to Dirty, so once is exact).
* the dynamic rounding mode: frm is read, and a reserved value trapped on, at the
  first instruction that says "dynamic" (frm, too, changes only by a CSR write).

A check that fails traps exactly as the hart would: the instruction's index in
``h.tidx`` and an illegal-instruction trap, which the block's ``except`` completes.
Instructions not written here (conversions, compares, min/max, class, single-
precision moves, a reserved static rounding mode) stay calls of the hart, as in the
interpreter.  FP registers are used in ``h.f`` itself (``fr``); holding them in
locals across the block was measured and did not pay (see the commit that added this).
"""

from __future__ import annotations

import re

from popek.riscv import softfloat as sf
from popek.riscv import traps
from popek.riscv.fd import FD_INSNS
from popek.riscv.csrs import MSTATUS_FS
from popek.riscv.mmu import TLB_KEY

# The softfloat functions translated code calls (names apart from isa.SEMANTICS_GLOBALS,
# which has integer div64 and the like).
GLOBALS = {f"sf_{op}{w}": getattr(sf, f"{op}{w}") for op in ("add", "sub", "mul", "div",
                                                                "sqrt", "fma") for w in (32, 64)}

_CALL = re.compile(r"^(?:x\[rd\] = )?h\.(\w+)\((.*)\)$")
_HART_CALL = re.compile(r"\bh\.\w+\(")
_FP_NAMES = {i.name for i in FD_INSNS}          # (the compressed FP loads/stores expand to these)
_BOX = "0xffffffff00000000"
_M = "0xffffffffffffffff"
_VIEW = {4: ("m32", 2), 8: ("m64", 3)}
_ILLEGAL = f"raise Trap({traps.ILLEGAL_INSN}, None)"


def _unboxed(reg: str) -> str:
    """A single-precision operand: the register's low half if NaN-boxed, else the canonical NaN."""
    return f"(u & 0xffffffff if (u := {reg}) >= {_BOX} else {sf.F32.canonical_nan:#x})"


class FpBlock:
    """What a block's FP instructions have established so far, in the block's order."""

    def __init__(self, slow):
        self.fs_on = False          # an earlier FP instruction checked FS
        self.dirty = False          # an earlier inline instruction made FS Dirty
        self.frm = False            # ``frmode`` holds frm, checked
        self.slow = slow            # writes a statement that may take a slow path or trap

    def state(self) -> tuple:
        return self.fs_on, self.dirty, self.frm

    def join(self, before: tuple) -> None:
        """The end of a skip (blockshape.py): what held ``before`` the skipped
        instructions and what holds after them both hold, or the check is made again."""
        self.fs_on, self.dirty, self.frm = (a and b for a, b in zip(before, self.state()))

    def _trap_if(self, cond: str, idx: int) -> str:
        return f"if {cond}: " + self.slow(f"h.tidx = {idx}; {_ILLEGAL}")

    def statements(self, d, idx: int, values: dict) -> list[str] | None:
        """The lines for the instruction ``d`` (index ``idx``), or None to run its
        snippet (a call of the hart) as every other instruction's."""
        m = _CALL.match(d.insn.body) if d.insn.name in _FP_NAMES else None
        if m is None:                                   # not an FP instruction
            if _HART_CALL.search(d.insn.body):          # (a rewrite could emulate a CSR
                self.fs_on = self.dirty = self.frm = False      # write here: check afresh)
            return None
        write = getattr(self, "_" + m.group(1), None)
        body = write(d, idx, values, m.group(2).split(", ")) if write else None
        if body is None:
            self.fs_on = True                           # the hart's method checks FS
            return None
        check = [] if self.fs_on else [self._trap_if(f"not h.mstatus & {MSTATUS_FS:#x}", idx)]
        self.fs_on = True
        lines = check + body
        if not self.dirty and m.group(1) not in ("fstore", "fmv_to_x"):
            lines.append(f"h.mstatus |= {MSTATUS_FS:#x}")
            self.dirty = True
        return lines

    def _rounding(self, d, idx: int) -> tuple[list[str], str] | None:
        """The statements that make the rounding mode known, and its expression."""
        rm = d.word >> 12 & 7
        if rm < 5:
            return [], str(rm)
        if rm < 7:
            return None                                 # reserved: the hart traps
        if self.frm:
            return [], "frmode"
        self.frm = True
        return ["frmode = h.frm", self._trap_if("frmode > 4", idx)], "frmode"

    # -- one method per hart method written inline -------------------------------------------
    def _address(self, d, values: dict) -> list[str]:
        base = values["XRS1"]
        return [f"va = {base}" if d.imm == 0 else f"va = ({base} + {d.imm:#x}) & {_M}"]

    def _fload(self, d, idx, values, args):
        size = int(args[2])
        view, shift = _VIEW[size]
        box = f" | {_BOX}" if size == 4 else ""
        reg = f"fr[{d.rd}]"
        return self._address(d, values) + [
            f"if (o := rget(va & {TLB_KEY[size]:#x})) is not None: "
            f"{reg} = {view}[(va + o) >> {shift}]{box}",
            "else: " + self.slow(f"{reg} = h.load_at({idx}, va, {size}){box}")]

    def _fstore(self, d, idx, values, args):
        size = int(args[2])
        view, shift = _VIEW[size]
        value = f"fr[{d.rs2}]" + (" & 0xffffffff" if size == 4 else "")
        return self._address(d, values) + [
            f"if (o := wget(va & {TLB_KEY[size]:#x})) is not None: "
            f"{view}[(va + o) >> {shift}] = {value}",
            "else: " + self.slow(f"h.store_at({idx}, va, {size}, {value})")]

    def _call(self, d, idx, width: int, fn: str, regs: list[int], negate=()) -> list[str] | None:
        """rd = fn(operands..., rounding mode, flags raised so far), flags accrued; the
        operands are FP registers, NaN-unboxed for singles, then negated if in ``negate``."""
        rounding = self._rounding(d, idx)
        if rounding is None:
            return None
        setup, rm = rounding
        operands = []
        for k, r in enumerate(regs):
            op = f"fr[{r}]" if width == 64 else _unboxed(f"fr[{r}]")
            operands.append(f"{op} ^ {1 << (width - 1):#x}" if k in negate else op)
        call = f"sf_{fn}{width}({', '.join(operands)}, {rm}, h.fflags)"
        result = ([f"fr[{d.rd}], fl = {call}"] if width == 64 else
                  [f"v, fl = {call}", f"fr[{d.rd}] = v | {_BOX}"])
        return setup + result + ["if fl: h.fflags |= fl"]

    def _farith(self, d, idx, values, args):
        return self._call(d, idx, int(args[1]), args[0].strip("'"), [d.rs1, d.rs2])

    def _fsqrt(self, d, idx, values, args):
        return self._call(d, idx, int(args[0]), "sqrt", [d.rs1])

    def _ffma(self, d, idx, values, args):
        """fmadd, fmsub, fnmsub, fnmadd: the product's and the addend's signs as the hart's."""
        negate = [k for k, flag in ((0, args[5]), (2, args[6])) if flag == "1"]
        return self._call(d, idx, int(args[0]), "fma", [d.rs1, d.rs2, d.word >> 27], negate)

    def _fsgnj(self, d, idx, values, args):
        if args[0] != "64":
            return None
        sign, a, b = 1 << 63, f"fr[{d.rs1}]", f"fr[{d.rs2}]"
        if d.rs1 == d.rs2:                              # fmv.d, fneg.d, fabs.d
            value = [a, f"{a} ^ {sign:#x}", f"{a} & {sign - 1:#x}"][int(args[4])]
        else:
            s = [f"{b} & {sign:#x}", f"~{b} & {sign:#x}", f"({a} ^ {b}) & {sign:#x}"][int(args[4])]
            value = f"{a} & {sign - 1:#x} | {s}"
        return [f"fr[{d.rd}] = {value}"]

    def _fmv_to_x(self, d, idx, values, args):
        return [f"{values['XRD']} = fr[{d.rs1}]"] if args[0] == "64" else None

    def _fmv_from_x(self, d, idx, values, args):
        return [f"fr[{d.rd}] = {values['XRS1']}"] if args[0] == "64" else None
