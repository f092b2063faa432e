"""Looking at a running hart: ``--profile`` (time every block) and ``--trace``
(every instruction that runs, and every trap)."""

from __future__ import annotations

import time


class HartDebug:
    """Mixed into :class:`~popek.riscv.hart.Hart`."""

    def cache_stats(self, harts=None) -> dict:
        """The caches of this hart (or of all ``harts``, summed) for --stats, each with
        its bound: every table a guest can grow has one (and is emptied, as QEMU's
        tb_flush, when it is reached).  The bounds are per hart."""
        from popek.riscv.hart.blocks import MAX_CACHED_BLOCKS, MAX_CACHED_OPS
        from popek.riscv.hart.memory import MAX_TLB_ENTRIES
        harts = harts or [self]
        each = "" if len(harts) == 1 else " per hart"
        tlbs = [t for h in harts for tlbs in (h.itlbs, h.rtlbs, h.wtlbs) for t in tlbs.values()]
        return {
            "blocks_cached": f"{sum(len(h.blocks) for h in harts):,} "
                             f"(at most {MAX_CACHED_BLOCKS:,}{each})",
            "interpreter_ops_cached": f"{sum(len(h.op_cache) for h in harts):,} "
                                      f"(at most {MAX_CACHED_OPS:,}{each})",
            "dispatch_cache_entries": f"{sum(len(v) for h in harts for v in h.vcaches.values()):,} "
                                      f"(at most {MAX_CACHED_BLOCKS:,} per privilege{each})",
            "tlb_entries": f"{sum(len(t) for t in tlbs):,} "
                           f"(at most {MAX_TLB_ENTRIES:,} in each of {len(tlbs) // len(harts)}"
                           f"{each})",
            "tlb_superpages": f"{sum(len(h.superpages) for h in harts):,} (at most "
                              f"{MAX_TLB_ENTRIES:,}{each}, then the TLBs are flushed)",
        }

    def start_tracing(self, write) -> None:
        """``--trace``: ``write(pc, text)`` for every instruction as it runs, in order,
        and for every trap.  A traced hart interprets only, so each instruction is
        written by the op that runs it (blocks.traced), never by re-reading code."""
        self.trace = write
        self.translate_blocks = False
        self.invalidate_all_code()

    def run_profiled(self) -> None:
        """:meth:`run`, one block at a time, timing each (``--profile``).

        Time and instructions go to the block at the pc where each step began.
        A device or wfi zeroing ``limit`` still ends the run.
        """
        prof = self.profile
        clock = time.perf_counter
        limit = self.limit
        while self.instret < limit:
            pc, before, t0 = self.pc, self.instret, clock()
            self.limit = self.instret + 1          # run() returns after one block
            self.run()
            stopped = self.limit == 0
            self.limit = 0 if stopped else limit
            blk = self.vcache.get(pc) or self.blocks.get(self.itlb.get(pc >> 12, -1) | (pc & 0xFFF))
            entry = prof.get(pc)
            if entry is None:
                entry = prof[pc] = [0, 0, 0.0, blk]
            entry[0] += 1
            entry[1] += self.instret - before
            entry[2] += clock() - t0
            if blk is not None:
                entry[3] = blk
            if stopped:
                return
