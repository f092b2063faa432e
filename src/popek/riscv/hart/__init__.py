"""One RV64 hart: its architectural state, assembled from one module per concern.

    hart/__init__.py    the state (registers, CSR state, caches) and what changes it
    hart/memory.py      software TLBs, loads and stores (fast and slow), atomics
    hart/privileged.py  CSR access, trap entry (the one place that knows delegation),
                        mret/sret/wfi/sfence.vma/fence.i
    hart/blocks.py      decoding code into blocks, finding them, invalidating them
    hart/execute.py     the run loop (dispatcher) and background-compiled translations
    hart/fp.py          the floating-point unit (F and D: riscv/fd.py, riscv/softfloat.py)
    hart/virt.py        the H extension: V, the VS register bank, two-stage translation,
                        HLV/HSV/HFENCE
    hart/debug.py       --profile and --trace

The class is one (its fast paths are attribute lookups on ``self``), split by
concern into mixins.  What S-mode does is written once in riscv/privilege.py and
riscv/csrs.py and shared with the VMM's virtual CPU; the page walk is riscv/mmu.py;
the instruction set (one table: encodings and semantics) is riscv/isa.py, and the
translator riscv/translate.py.  See docs/ARCHITECTURE.md for the picture.
"""

from __future__ import annotations

from popek import costmodel
from popek.clock import PollState
from popek.riscv import csrs, isa, mmu, translate
from popek.riscv.csrs import (M, MSTATUS_FS, MSTATUS_MPP, MSTATUS_MPRV, MSTATUS_MXR,
                              MSTATUS_SUM, S, U)
from popek.riscv.hcsrs import MSTATUS_MPV
from popek.riscv.hart.blocks import MAX_BLOCK, MAX_CACHED_BLOCKS, TRANSLATE_AFTER, Block, HartBlocks
from popek.riscv.hart.debug import HartDebug
from popek.riscv.hart.execute import HartExecution
from popek.riscv.hart.fp import HartFp
from popek.riscv.hart.memory import MAX_TLB_ENTRIES, HartMemory
from popek.riscv.hart.privileged import HartPrivileged
from popek.riscv.hart.virt import VIRTUAL, VS, VU, HartVirtualization

__all__ = ["Hart", "Block", "MAX_BLOCK", "MAX_CACHED_BLOCKS", "TRANSLATE_AFTER",
           "MAX_TLB_ENTRIES", "U", "S", "M"]

M64 = (1 << 64) - 1


class Hart(HartMemory, HartPrivileged, HartBlocks, HartExecution, HartFp, HartVirtualization,
           HartDebug):
    def __init__(self, machine, hartid: int = 0, isa_variant: isa.Isa = isa.BASE,
                 costs: costmodel.CostModel | None = None):
        self.machine = machine
        self.ram = machine.ram
        self.bus = machine.bus
        self.hartid = hartid
        self.isa = isa_variant
        self.csrs = csrs.csr_file(csrs.hart_parts(self.isa))   # its CSRs, from what it has
        # A VMM strategy may rewrite instructions as they are decoded (binary
        # translation: translate.py's rewrite hook); ``flavour`` names the ISA and the
        # rewrite, and is part of every translation's key.
        self.rewrite = None
        self.rewrite_name = None
        self.flavour = translate.flavour(self.isa)
        self.costs = costs or costmodel.CostModel()
        ram = self.ram
        self.m8, self.m16, self.m32, self.m64 = ram.m8, ram.m16, ram.m32, ram.m64
        # A page that becomes watched (code decoded from it, by this hart or another)
        # must leave this hart's write TLBs: its stores must be seen.
        ram.on_watch.append(self._forget_fast_stores)
        self.x = [0] * 33                 # x0..x31, and 32: where writes to x0 go
        self.pc = 0
        self.priv = M
        self.instret = 0
        self.cycle_offset = self.instret_offset = 0
        # Modelled cycles beyond one per instruction (costmodel.py): trap entries and
        # returns, page-walk memory references, TLB flushes; under the VMM, each
        # exit's cost.  The cycle counter counts them; instret does not.
        self.cycle_extra = 0
        # CSR state (csrs.py has the registered views of it).
        self.mstatus = csrs.MSTATUS_UXL | csrs.MSTATUS_SXL
        self.medeleg = self.mideleg = 0
        self.mie = 0
        self.irq_lines = 0                # MSIP/MTIP/MEIP/SEIP driven by devices
        self.mip_sw = 0                   # SSIP/STIP/SEIP written by software
        self.mip = 0
        self.mtvec = self.stvec = 0
        self.mepc = self.sepc = self.mcause = self.scause = self.mtval = self.stval = 0
        self.mscratch = self.sscratch = 0
        self.mcounteren = self.scounteren = self.mcountinhibit = 0
        self.menvcfg = self.senvcfg = 0
        self.satp = 0
        self.init_virtualization()        # H: V, the hypervisor CSRs, the VS bank
        # F and D: the FP registers and fcsr, and whether mstatus.FS exists.
        self.f = [0] * 32
        self.fflags = self.frm = 0
        self.fs_writable = csrs.MSTATUS_FS if "F" in self.isa.extensions else 0
        self.pmpcfg = [0] * (csrs.PMP_COUNT // 8)
        self.pmpaddr = [0] * csrs.PMP_COUNT
        self.reservation = None
        self.poll = PollState()           # its last read of the time CSR (clock.py: polling)
        self.csr_pc = 0                   # where the CSR instruction running now is
        # Run control: the executor runs while instret < limit; anything may set
        # limit = 0 to make it return at the next block boundary.
        self.limit = 0
        self.waiting = False              # in wfi with nothing pending
        self.slice_traps = 0              # traps taken in this slice (privileged.SLICE_TRAPS)
        # Caches, per mode key: the privilege, plus VIRTUAL when V=1 (hart/virt.py).
        self.blocks: dict[int, Block] = {}
        self.blocks_by_page: dict[int, list[Block]] = {}
        modes = (U, S, M, VU, VS)
        self.itlbs = {k: {} for k in modes}
        self.rtlbs = {k: {} for k in modes}
        self.wtlbs = {k: {} for k in modes}
        self.itlb = self.itlbs[M]
        # Virtual pc → block, per mode: what the dispatcher looks up.  It holds
        # only what the fetch TLB would translate, so it is flushed with it.
        self.vcaches = {k: {} for k in modes}
        self.vcache = self.vcaches[M]
        self.rtlb = self.rtlbs[M]
        self.wtlb = self.wtlbs[M]
        self.mode_key = self.data_key = M  # the TLBs' mode of fetches, and of loads/stores
        self.walk_stats = mmu.WalkStats()
        self.superpages: set = set()      # (va >> shift, level) of superpage leaves in the TLBs
        self.stats = {"traps": 0, "interrupts": 0, "blocks_built": 0, "tlb_flushes": 0,
                      "tlb_page_flushes": 0, "block_aliases": 0,
                      "code_invalidations": 0, "block_misses": 0, "fence_i": 0,
                      "two_stage_walks": 0, "two_stage_pte_reads": 0}
        self.trace = None                 # callable(pc, text) when --trace is on
        # The VMM stands where M-mode software would: with a hook set, a trap that
        # reaches M-mode calls it (cause, tval, epc, interrupt) instead of mtvec.
        self.m_trap_hook = None
        # A binary-translating VMM's emulation, which its rewritten instructions call
        # (privileged.py's callout).
        self.callout_hook = None
        self.translate_blocks = True      # False: interpret only (--engine interpret)
        self.tstats = translate.TranslationStats()
        self.code_cache = None            # codecache.CodeCache: compiled blocks, maybe kept on disk
        self.compiler = None              # compiler.BackgroundCompiler, if blocks compile elsewhere
        self.peers = [self]               # the harts sharing that compiler (its replies are theirs)
        self.awaiting: dict[tuple, list[Block]] = {}   # block key -> blocks awaiting its code
        self.tidx = 0                     # translated code: index of the instruction in a slow path
        self.op_cache: dict[tuple, object] = {}   # (pc, bits, ends block) -> interpreter op
        self.profile = None               # {block pc: [executions, seconds]} with --profile

    # ------------------------------------------------------------------ state
    def reset(self, pc: int) -> None:
        self.pc = pc
        self.set_priv(M)

    def set_priv(self, p: int) -> None:
        self.priv = p
        key = self.mode_key = p | VIRTUAL if self.virt and p != M else p
        self.itlb = self.itlbs[key]
        self.vcache = self.vcaches[key]
        self._select_data_tlbs()

    def set_mstatus(self, v: int) -> None:
        old = self.mstatus
        self.mstatus = v
        if self.virt and old & MSTATUS_FS == MSTATUS_FS and v & MSTATUS_FS != MSTATUS_FS:
            # (H) A guest cleaning its FS: the FP state it dirtied is HS-mode's to save
            # too (FP work dirties both FS fields; HS's waits in the bank meanwhile).
            self.vs_bank.status |= MSTATUS_FS
        if (old ^ v) & (MSTATUS_SUM | MSTATUS_MXR):
            self.flush_tlbs(data_only=True)
        if (old ^ v) & (MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_MPV):
            self._select_data_tlbs()

    def set_satp(self, v: int) -> None:
        self.satp = v
        self.flush_tlbs()

    def _recompute_mip(self) -> None:
        self.mip = self.irq_lines | self.mip_sw

    def set_mie(self, v):
        self.mie = v

    def set_mideleg(self, v):
        self.mideleg = v

    def set_mip_sw(self, v):
        self.mip_sw = v
        self._recompute_mip()

    def set_irq_line(self, bit: int, level: bool) -> None:
        """Devices (CLINT, PLIC) drive the hardware interrupt-pending bits here."""
        if level:
            self.irq_lines |= bit
        else:
            self.irq_lines &= ~bit
        self._recompute_mip()

    # ---------------------------------------------------------------- counters
    def read_time(self) -> int:
        t = self.machine.guest_time(self.poll, self.csr_pc, self.instret)
        return (t + self.htimedelta) & M64 if self.virt else t     # (H: a guest's offset)

    def read_cycle(self) -> int:
        return (self.instret + self.cycle_offset + self.cycle_extra) & M64

    def read_instret(self) -> int:
        return (self.instret + self.instret_offset) & M64
