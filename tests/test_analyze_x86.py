"""popek analyze x86: Robin and Irvine's sensitive, unprivileged instructions, counted in
an x86-64 binary with capstone."""

from __future__ import annotations

import pytest

from popek import cli
from popek.analyze import x86
from popek.linux import debian

# Each instruction's encoding, and the kind it is (None: not sensitive).
CASES = [("0f0100", "sgdt/sidt"), ("0f0108", "sgdt/sidt"), ("0f0000", "sldt/str"),
         ("0f0008", "sldt/str"), ("0f01e0", "smsw"), ("9c", "pushf"), ("9d", "popf"),
         ("0f02c0", "lar/lsl"), ("0f03c0", "lar/lsl"), ("0f0020", "verr/verw"),
         ("0f0028", "verr/verw"), ("0fa0", "push/pop seg"), ("0fa9", "push/pop seg"),
         ("8ed8", "mov seg"), ("8cd8", "mov seg"), ("ff18", "far control"),
         ("ff28", "far control"), ("cd80", "far control"), ("cb", "far control"),
         ("648b042528000000", None),        # mov eax, fs:[0x28]: a segment override only
         ("cc", None), ("0f05", None), ("ff10", None), ("ff20", None), ("c3", None),
         ("50", None), ("0f0018", None)]    # ltr: privileged (traps at CPL > 0)


@pytest.mark.parametrize("hexcode, kind", CASES)
def test_kinds(hexcode, kind):
    import capstone
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    (_, _, mnemonic, operands), = md.disasm_lite(bytes.fromhex(hexcode), 0)
    assert x86.kind_of(mnemonic, operands) == kind, (mnemonic, operands)


def test_not_an_elf_is_one_line(tmp_path, capsys):
    bad = tmp_path / "notelf"
    bad.write_bytes(b"\x7fELF" + bytes(60))
    assert cli.main(["analyze", "x86", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("popek: error: ") and err.count("\n") == 1


@pytest.mark.slow
def test_debian_kernel(capsys):
    """Debian's x86-64 kernel (the bzImage: its vmlinux unpacked): what a 2000-era VMM
    would have had to find and rewrite in it."""
    image = debian.find("x86_64").image
    assert cli.main(["analyze", "x86", image]) == 0
    out = capsys.readouterr().out
    counts = {}
    for kind in x86.KINDS:
        line = next(ln for ln in out.splitlines() if ln.startswith(f"  {kind} "))
        counts[kind] = int(line[2 + 14:2 + 22].replace(",", ""))
    assert counts["pushf"] > 100           # local_save_flags: paravirt's alternatives
    assert counts["popf"] > 0 and counts["mov seg"] > 0 and counts["sgdt/sidt"] > 0
    assert counts["verr/verw"] > 0         # verw: the MDS buffer clearing
    assert "exported (__ksymtab)" in out   # a stripped vmlinux: the exported symbols
    assert "functions with the most" in out
