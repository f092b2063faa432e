"""Where a taken branch goes inside its own block: the *skips* of a block.

Compiled C is full of short forward branches over a few instructions (``if (c)
x++;``, a carry, a loop's early-out test).  A block runs on through a branch not
taken; a taken one used to be a side exit, back to the dispatcher and into a
block that starts at the target, though the block that branched holds the target
already.  In a loop that made every iteration two blocks and two trips through the
dispatcher: a tenth of a Linux boot's dispatches were such exits.

A *skip* is a conditional branch forward to an instruction of the same block.
Both engines continue there, inside the block (the interpreter by jumping to that
instruction's op, the translator with an ``if``/``else`` around the instructions
skipped over), so the dispatcher looks at interrupts and the budget at the same
instructions whichever engine runs the block; the block shape stays one for both.

The translator writes skips as nested ``if``s, so skips must nest: a branch
inside another skip's range that jumps past that range's end stays a side exit;
so does one nested deeper than ``MAX_DEPTH`` (a guest can write a block of a
hundred branches to one target, and CPython compiles at most 100 nested blocks).
"""

from __future__ import annotations

from popek.riscv import isa

MAX_DEPTH = 16


def skips(insns: list[tuple[int, isa.Decoded]]) -> dict[int, int] | None:
    """``{index of a branch: index of its target}`` for the block's skips, or None."""
    where = None
    found: dict[int, int] = {}
    open_ends: list[int] = []           # the ends of the skips around this instruction
    for k, (pc, d) in enumerate(insns):
        while open_ends and open_ends[-1] <= k:
            open_ends.pop()
        if d.insn.kind != isa.BRANCH:
            continue
        target = (pc + d.imm) & isa.M
        if where is None:
            where = {ipc: j for j, (ipc, _) in enumerate(insns)}
        j = where.get(target)
        if j is None or j <= k + 1:     # out of the block, backwards, or to the next one
            continue
        if open_ends and j > open_ends[-1] or len(open_ends) >= MAX_DEPTH:
            continue                    # it would cross its skip's end, or nest too deep
        found[k] = j
        open_ends.append(j)
    return found or None
