"""The H extension's instructions, and the ISA variant that has them: ``rv64imafdch``
(``--cpu rv64gch``), RV64GC plus the hypervisor extension (privileged spec, the
hypervisor chapter).

* HLV/HLVX/HSV: a load or store as VS- or VU-mode would make it (two-stage
  translation, privilege hstatus.SPVP), made from HS-mode, or from U-mode when
  hstatus.HU allows: how a hypervisor reads a guest's memory by guest virtual
  address.  HLVX needs execute permission instead of read (reading an instruction).
* HFENCE.VVMA / HFENCE.GVMA: fences for the VS-stage and G-stage translations.

Each is a call into the hart (hart/virt.py), which checks who may run it: from a
virtual mode they raise virtual-instruction, from U-mode without HU
illegal-instruction.  The CSRs are riscv/hcsrs.py; trap routing, the V bit and the
two-stage walk are the hart's (hart/privileged.py, hart/virt.py, mmu.py).
"""

from __future__ import annotations

from popek.riscv.fd import FD_INSNS
from popek.riscv.isa import INSNS, SYSTEM, Insn, Isa, _enc

H_INSNS: list[Insn] = []


def _h(name: str, enc, body: str, ends: bool = False) -> None:
    match, mask = enc
    H_INSNS.append(Insn(name, "R", match, mask, body, "", SYSTEM, ends, True, False, None))


# (name, funct7, rs2 field, size, sign-extended, execute permission)
for _n, _f7, _rs2, _size, _signed, _x in (
        ("hlv.b", 0x30, 0, 1, True, False), ("hlv.bu", 0x30, 1, 1, False, False),
        ("hlv.h", 0x32, 0, 2, True, False), ("hlv.hu", 0x32, 1, 2, False, False),
        ("hlvx.hu", 0x32, 3, 2, False, True),
        ("hlv.w", 0x34, 0, 4, True, False), ("hlv.wu", 0x34, 1, 4, False, False),
        ("hlvx.wu", 0x34, 3, 4, False, True),
        ("hlv.d", 0x36, 0, 8, False, False)):
    _h(_n, _enc(op=0x73, f3=4, f7=_f7, rs2=_rs2),
       f"x[rd] = h.hlv(x[rs1], {_size}, {_signed}, {_x})")
for _n, _f7, _size in (("hsv.b", 0x31, 1), ("hsv.h", 0x33, 2), ("hsv.w", 0x35, 4),
                       ("hsv.d", 0x37, 8)):
    _h(_n, _enc(op=0x73, f3=4, f7=_f7, rd=0), f"h.hsv(x[rs1], {_size}, x[rs2])")
# Fences change what translations hold: like sfence.vma, they end their block.
_h("hfence.vvma", _enc(op=0x73, f3=0, f7=0x11, rd=0), "h.hfence_vvma(x[rs1], rs1, x[rs2], rs2)",
   ends=True)
_h("hfence.gvma", _enc(op=0x73, f3=0, f7=0x31, rd=0), "h.hfence_gvma(x[rs1], rs1, x[rs2], rs2)",
   ends=True)

# RV64GC with the hypervisor extension (QEMU's virt board's CPUs have it by default).
RV64GCH = Isa("rv64imafdch", INSNS + FD_INSNS + H_INSNS, extensions="ACDFHIMSU",
              isa_string="rv64imafdch_zicsr_zifencei")
