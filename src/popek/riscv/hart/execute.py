"""The hart's run loop: the dispatcher, and the translations compiled elsewhere.

``run`` executes blocks until ``instret`` reaches ``limit`` (anything may set
``limit = 0`` to make it return at the next block boundary).  Interrupts, the
instruction budget and the clock are looked at only between blocks.  A block
runs as interpreter closures until it is hot, then as its translation
(riscv/translate.py), compiled in-process or by a background worker
(riscv/compiler.py) whose replies are installed between slices.
"""

from __future__ import annotations

from popek.riscv import translate
from popek.riscv.traps import Trap


class HartExecution:
    """Mixed into :class:`~popek.riscv.hart.Hart`."""

    def run(self) -> None:
        """Execute blocks until ``instret`` reaches ``limit`` (or limit is zeroed)."""
        if self.awaiting:
            self.install_translations()
        self.slice_traps = 0
        while self.instret < self.limit:
            if self.mip & self.mie and self.check_interrupts():
                continue
            blk = self.vcache.get(self.pc)
            if blk is None:
                blk = self._find_block(self.pc)
                if blk is None:
                    continue                    # the fetch trapped
            fn = blk.fn
            if fn is not None:                      # translated: the common case
                try:
                    fn()                            # it sets the pc on every way out
                except Trap as t:
                    self.instret += t.idx
                    self.take_trap(t.cause, t.tval, t.pc, False, t.gpa, t.gva, t.tinst)
                continue
            if blk.skips is not None:
                self._interpret_skipping(blk)
            else:
                self.pc = blk.next_pc               # ops set it only at a jump or branch
                ops = blk.ops
                try:
                    for op in ops:
                        if op():                    # a taken branch left the block
                            self.instret += ops.index(op) + 1
                            break
                    else:
                        self.instret += blk.n
                except Trap as t:
                    self.instret += blk.index_of(t.pc)  # the instructions before it retired
                    self.take_trap(t.cause, t.tval, t.pc, False, t.gpa, t.gva, t.tinst)
            if blk.heat:
                blk.heat -= 1
                if not blk.heat:
                    translate.translate_hot(self, blk, self.flavour)

    def _interpret_skipping(self, blk) -> None:
        """Interpret a block with skips (blockshape.py): a taken branch whose target is
        in the block goes on at the target's op."""
        next_pc = self.pc = blk.next_pc
        ops, skips, n = blk.ops, blk.skips, blk.n
        i = done = 0                # the op to run, and the instructions retired so far
        try:
            while i < n:
                taken = ops[i]()
                done += 1
                if taken:
                    i = skips.get(i, n)
                    if i == n:
                        break                       # a side exit
                    self.pc = next_pc               # (the op set the pc to its target)
                else:
                    i += 1
        except Trap as t:
            self.instret += done                    # the instructions before it retired
            self.take_trap(t.cause, t.tval, t.pc, False, t.gpa, t.gva, t.tinst)
            return
        self.instret += done

    def stop_translating(self) -> None:
        """At power-off: collect what the worker is still compiling if it is to be
        kept on disk (the next run finds it), stop the worker, and save the code cache."""
        cache = self.code_cache
        if self.compiler is not None:
            if any(h.awaiting for h in self.peers) and cache is not None and cache.path:
                self.install_translations(wait=1.0)
            self.compiler.close()
        if cache is not None:
            cache.save()

    def install_translations(self, wait: float = 0.0) -> None:
        """Give blocks the code the background worker has compiled for them (waiting
        up to ``wait`` seconds for what is still outstanding); blocks it failed on
        are translated here."""
        c = self.compiler
        done, failed = c.drain(wait) if wait else c.poll()
        for h in self.peers:            # a reply is for the hart that asked (each keeps its own)
            awaiting = h.awaiting
            for key, code, loop, lines in done:
                if key in awaiting:
                    translate.install(h, key, code, loop, lines, awaiting.pop(key))
            for key in failed:
                for blk in awaiting.pop(key, ()):
                    blk.fn = translate.translate(h, blk.insns, blk.pc, h.tstats, h.flavour)
