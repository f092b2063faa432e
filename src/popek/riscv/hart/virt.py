"""The hart's H extension: the virtualization mode V, two-stage translation, and the
hypervisor's instructions (HLV/HLVX/HSV, HFENCE).

* **V and the register banks.**  VS-mode runs on the very supervisor registers
  HS-mode runs on; the set not in use waits in ``vs_bank`` and the two are swapped
  when V changes (:meth:`set_virt`; riscv/hcsrs.py says why).  Trap entry, sret,
  the CSRs and the walk are thus written once for S-mode and serve both.
* **TLBs.**  The software TLBs and dispatch caches are per *mode key*: the
  privilege, plus 4 when V=1 (VU=4, VS=5), so a guest's translations and the
  hypervisor's never mix, and translated code runs in VS-mode exactly as in
  S-mode, at the same speed once its translations are cached.  V=1 entries are
  dropped together (:meth:`flush_virtual_tlbs`) at vsatp and hgatp writes, HFENCE,
  and a VS-mode sfence.vma: VMIDs and ASIDs are not kept, which the spec allows (a
  TLB may always hold less).
* **Two-stage translation** (:meth:`translate_virtual`): the VS-stage walk through
  vsatp, its every page-table access and its result put through the G-stage walk
  of hgatp (mmu.walk both times, ``g_stage`` the second).  A G-stage fault is a
  guest-page fault of the original access, with the guest-physical address for
  htval/mtval2 (``Trap.gpa``).

Trap routing with V (M, HS or VS; hstatus.SPV/SPVP, mstatus.MPV, GVA) is
hart/privileged.py's; interrupts, riscv/privilege.py's.
"""

from __future__ import annotations

from popek.riscv import hcsrs, mmu, traps
from popek.riscv.csrs import MSTATUS_FS, MSTATUS_MXR, MSTATUS_SUM, MSTATUS_TVM, MSTATUS_TW, S, U
from popek.riscv.hcsrs import (MSTATUS_GVA, MSTATUS_MPV, HSTATUS_HU, HSTATUS_SPVP, HSTATUS_VSXL, HSTATUS_VTSR,
                               HSTATUS_VTVM, HSTATUS_VTW, SSTATUS_BANKED, VsBank)
from popek.riscv.mmu import ACCESS_FAULT, FETCH, GUEST_PAGE_FAULT, LOAD, STORE
from popek.riscv.traps import Trap

M64 = (1 << 64) - 1
VIRTUAL = 4                 # added to the privilege in a mode key when V=1
VU, VS = U | VIRTUAL, S | VIRTUAL
_BANKED = ("stvec", "sscratch", "sepc", "scause", "stval", "satp")


class HartVirtualization:
    """Mixed into :class:`~popek.riscv.hart.Hart`."""

    def init_virtualization(self) -> None:
        self.has_h = "H" in self.isa.extensions
        self.mstatus_h = (MSTATUS_MPV | MSTATUS_GVA) if self.has_h else 0  # writable with H
        self.virt = False
        self.hstatus = HSTATUS_VSXL
        self.hedeleg = self.hideleg = 0
        self.hcounteren = self.htimedelta = self.henvcfg = 0
        self.htval = self.htinst = self.hgatp = 0
        self.mtval2 = self.mtinst = 0
        self.vs_bank = VsBank()
        # The mode keys whose TLBs hold translations (hart/memory.py's flushes go through
        # them): VU and VS only on a hart with H.
        self.translated_modes = (U, S, VU, VS) if self.has_h else (U, S)
        if self.has_h:
            self.mideleg |= hcsrs.VS_INTERRUPTS     # read-only one

    # ------------------------------------------------------------------ V
    def set_virt(self, v: bool) -> None:
        """Enter (V=1) or leave (V=0) the virtual modes: swap the supervisor registers
        with the bank, and use the TLBs of the new mode."""
        if v == self.virt:
            return
        bank, ms = self.vs_bank, self.mstatus
        incoming = bank.status
        if not v and ms & MSTATUS_FS == MSTATUS_FS:
            incoming |= MSTATUS_FS          # the guest's FP work dirtied the one FP file
        bank.status = ms & SSTATUS_BANKED
        self.mstatus = (ms & ~SSTATUS_BANKED) | incoming
        for name in _BANKED:
            live = getattr(self, name)
            setattr(self, name, getattr(bank, name))
            setattr(bank, name, live)
        self.virt = v
        self.set_priv(self.priv)            # (the mode key, and the data TLBs, follow V)

    def flush_virtual_tlbs(self) -> None:
        """Drop every V=1 translation (VS-stage and G-stage alike)."""
        self.stats["tlb_flushes"] += 1
        for key in (VU, VS):
            self.itlbs[key].clear()
            self.rtlbs[key].clear()
            self.wtlbs[key].clear()
            self.vcaches[key].clear()

    # ------------------------------------------------------- translation
    def translate_virtual(self, va: int, access: int, priv: int, perm: int | None = None,
                          vsatp: int | None = None) -> int:
        """Guest virtual → host physical for ``access`` at virtual privilege ``priv``:
        the VS-stage (vsatp), then the G-stage (hgatp) of every address it produces.
        ``perm``: the permission needed when not ``access``'s (HLVX: execute)."""
        bank = self.vs_bank
        if self.virt:
            vs_status, hs_status = self.mstatus, bank.status
        else:
            vs_status, hs_status = bank.status, self.mstatus
        if vsatp is None:
            vsatp = self.satp if self.virt else bank.satp
        perm = access if perm is None else perm
        hgatp, ram, stats = self.hgatp, self.ram, self.walk_stats
        hs_mxr = bool(hs_status & MSTATUS_MXR)

        def g_stage(gpa: int, need: int, implicit: bool) -> int:
            if not hgatp >> 60:
                return gpa                  # Bare: guest-physical is host-physical
            try:
                # (MXR makes execute-only pages readable to explicit loads only, not to
                # the VS-stage walk's own reads.)
                return mmu.walk(ram, hgatp, gpa, need, U, False, hs_mxr and not implicit,
                                stats, g_stage=True)[0]
            except Trap as t:
                # Reported as the original access's fault, at the guest virtual address;
                # a fault of the VS-stage walk's own access says which (htinst).
                if t.cause in _GUEST_PAGE_FAULTS:
                    tinst = 0 if not implicit else \
                        traps.TINST_PTE_WRITE if need == STORE else traps.TINST_PTE_READ
                    raise Trap(GUEST_PAGE_FAULT[access], va, gpa=gpa, tinst=tinst) from None
                raise Trap(ACCESS_FAULT[access], va) from None

        if not vsatp >> 60:
            return g_stage(va, perm, False)  # Bare VS-stage: the address is guest-physical
        return mmu.walk(ram, vsatp, va, access, priv, bool(vs_status & MSTATUS_SUM),
                        bool((vs_status | hs_status) & MSTATUS_MXR), stats,
                        stage2=g_stage, perm=perm)[0]

    def two_stage_walk(self, va: int, access: int, priv: int, perm: int | None = None) -> int:
        """:meth:`translate_virtual` for the hart's own accesses: every reference of the
        two-dimensional walk charged (up to 15 for Sv39 over Sv39x4, 24 for Sv48 over
        Sv48x4: (n+1)(m+1) - 1) and counted for --stats."""
        refs = self.walk_stats.pte_reads
        try:
            return self.translate_virtual(va, access, priv, perm)
        finally:
            refs = self.walk_stats.pte_reads - refs
            self.cycle_extra += refs * self.costs.PAGE_WALK_REF
            self.stats["two_stage_walks"] += 1
            self.stats["two_stage_pte_reads"] += refs

    # ------------------------------------------ the hypervisor's instructions
    def _hypervisor_only(self) -> None:
        """HLV/HSV/HFENCE: virtual-instruction from V=1, illegal from U-mode (HLV and
        HSV may be let through by hstatus.HU: ``hu``)."""
        if self.virt:
            raise Trap(traps.VIRTUAL_INSN, None)

    def _hlv_hsv_allowed(self) -> None:
        self._hypervisor_only()
        if self.priv == U and not self.hstatus & HSTATUS_HU:
            raise Trap(traps.ILLEGAL_INSN, None)

    def _guest_address(self, va: int, size: int, access: int, perm: int) -> int:
        """The host-physical address of an HLV/HSV: as VS- or VU-mode would access it
        (hstatus.SPVP), never cached; its faults say the address is a guest's (GVA)."""
        priv = S if self.hstatus & HSTATUS_SPVP else U
        if va & (size - 1):
            raise Trap(traps.LOAD_MISALIGNED if access == LOAD else traps.STORE_MISALIGNED,
                       va, gva=True)
        try:
            return self.two_stage_walk(va, access, priv, perm)
        except Trap as t:
            t.gva = True
            raise

    def hlv(self, va: int, size: int, signed: bool, execute: bool) -> int:
        self._hlv_hsv_allowed()
        pa = self._guest_address(va, size, LOAD, FETCH if execute else LOAD)
        try:
            v = self.read_physical(va, pa, size)
        except Trap as t:                   # (a device's access fault: a guest's address)
            t.gva = True
            raise
        if signed and v >> (8 * size - 1):
            v |= M64 ^ ((1 << (8 * size)) - 1)
        return v

    def hsv(self, va: int, size: int, v: int) -> None:
        self._hlv_hsv_allowed()
        pa = self._guest_address(va, size, STORE, STORE)
        try:
            self.write_physical(va, pa, size, v & ((1 << (8 * size)) - 1))
        except Trap as t:
            t.gva = True
            raise

    def hfence_vvma(self, va, rs1, asid, rs2):
        self._hypervisor_only()
        if self.priv == U:
            raise Trap(traps.ILLEGAL_INSN, None)
        self.cycle_extra += self.costs.TLB_FLUSH
        self.flush_virtual_tlbs()

    def hfence_gvma(self, gpa, rs1, vmid, rs2):
        self._hypervisor_only()
        if self.priv == U or (self.priv == S and self.mstatus & MSTATUS_TVM):
            raise Trap(traps.ILLEGAL_INSN, None)
        self.cycle_extra += self.costs.TLB_FLUSH
        self.flush_virtual_tlbs()

    # ------------------------------------- what the virtual modes may not do
    def virtual_sret(self) -> None:
        """sret with V=1: VU-mode may not; VS-mode may unless hstatus.VTSR."""
        if self.priv == U or self.hstatus & HSTATUS_VTSR:
            raise Trap(traps.VIRTUAL_INSN, None)

    def virtual_wfi(self) -> None:
        """wfi with V=1: mstatus.TW makes it illegal; else VU-mode, or VS-mode under
        hstatus.VTW, may not."""
        if self.mstatus & MSTATUS_TW:
            raise Trap(traps.ILLEGAL_INSN, None)
        if self.priv == U or self.hstatus & HSTATUS_VTW:
            raise Trap(traps.VIRTUAL_INSN, None)

    def virtual_sfence(self, va: int, rs1: int) -> None:
        """sfence.vma with V=1: VU-mode may not, nor VS-mode under hstatus.VTVM; in
        VS-mode it fences the guest's own (VS-stage) translations: all of them, or
        (rs1 ≠ x0) those of one address, as in HS-mode (Linux fences one address
        after each page it maps: flushing all there walked both stages again and
        again)."""
        if self.priv == U or self.hstatus & HSTATUS_VTVM:
            raise Trap(traps.VIRTUAL_INSN, None)
        self.cycle_extra += self.costs.TLB_FLUSH
        if rs1:
            self.flush_page(va)
        else:
            self.flush_virtual_tlbs()


_GUEST_PAGE_FAULTS = frozenset(GUEST_PAGE_FAULT.values())

__all__ = ["HartVirtualization", "VIRTUAL", "VU", "VS", "hcsrs"]
