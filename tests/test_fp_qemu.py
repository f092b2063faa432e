"""QEMU as the oracle for F and D: the same program, run under qemu-system-riscv64
and under popek (--cpu rv64imafdc), executes every FP instruction on thousands of
generated operands in all five rounding modes, and prints, per instruction and
mode, a hash of every result's bits and every fflags value.  The lines must be
equal; where one differs the test reruns that instruction printing each case, and
names the first operands that disagree.

Operands (seeded): the values edge cases live at (zeros, subnormals and the
normal boundary, ones, halfway points, the largest finite, infinities, quiet and
signalling NaNs, integer limits for conversions) and random bit patterns, and
random pairs near each other (cancellation).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from popek.console import ScriptedConsole
from popek.riscv.board import BoardConfig, VirtBoard
from tests.conftest import ROOT

QEMU = "qemu-system-riscv64"
CASES = 3000                        # operand sets per instruction (× 5 rounding modes)

# (mnemonic, operands: "ff" two FP, "f" one FP, "fff" three FP, "x" one integer;
#  result: "f" FP register, "x" integer register), per precision.
OPS = [("fadd", "ff", "f"), ("fsub", "ff", "f"), ("fmul", "ff", "f"), ("fdiv", "ff", "f"),
       ("fsqrt", "f", "f"), ("fmin", "ff", "f"), ("fmax", "ff", "f"),
       ("fsgnj", "ff", "f"), ("fsgnjn", "ff", "f"), ("fsgnjx", "ff", "f"),
       ("feq", "ff", "x"), ("flt", "ff", "x"), ("fle", "ff", "x"), ("fclass", "f", "x"),
       ("fmadd", "fff", "f"), ("fmsub", "fff", "f"), ("fnmsub", "fff", "f"),
       ("fnmadd", "fff", "f"),
       ("fcvt.w", "f", "x"), ("fcvt.wu", "f", "x"), ("fcvt.l", "f", "x"), ("fcvt.lu", "f", "x"),
       ("fcvt.*.w", "x", "f"), ("fcvt.*.wu", "x", "f"), ("fcvt.*.l", "x", "f"),
       ("fcvt.*.lu", "x", "f"), ("fcvt.conv", "f", "f")]
ROUNDED = {"fadd", "fsub", "fmul", "fdiv", "fsqrt", "fmadd", "fmsub", "fnmsub", "fnmadd",
           "fcvt.w", "fcvt.wu", "fcvt.l", "fcvt.lu", "fcvt.*.w", "fcvt.*.wu", "fcvt.*.l",
           "fcvt.*.lu", "fcvt.conv"}


def special(width: int) -> list[int]:
    e, m = (8, 23) if width == 32 else (11, 52)
    top = 1 << (width - 1)
    bias = (1 << (e - 1)) - 1
    inf = ((1 << e) - 1) << m
    one = bias << m
    vals = [0, 1, 2, (1 << m) - 1, 1 << m, (1 << m) + 1, one, one + 1, one - 1,
            (bias - 1) << m, (bias + 1) << m | 1 << (m - 1), (bias + m) << m,
            (bias + m + 1) << m | 1, inf - 1, inf, inf | 1 << (m - 1), inf | 1,
            (bias + 31) << m, (bias + 32) << m, (bias + 63) << m, (bias + 64) << m]
    return vals + [v | top for v in vals]


def operand(rng: random.Random, width: int) -> int:
    r = rng.random()
    if r < 0.35:
        return rng.choice(special(width))
    return rng.getrandbits(width)


def near(rng: random.Random, a: int, width: int) -> int:
    """A value near ``a`` (for cancellation), or its negation."""
    b = (a + rng.randint(-3, 3)) % (1 << width)
    return b ^ (1 << (width - 1)) if rng.random() < 0.5 else b


def int_operand(rng: random.Random) -> int:
    return rng.choice([0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 63 - 1, 2 ** 63,
                       2 ** 64 - 1, 2 ** 24 + 1, 2 ** 53 + 1]) if rng.random() < 0.3 \
        else rng.getrandbits(64)


def insn_text(op: str, sfx: str) -> str:
    """The assembly of ``op`` on ft0..ft2 / a0 for precision ``sfx`` (s or d)."""
    other = "d" if sfx == "s" else "s"
    # Exact conversions (to double from a word or a single) take no rounding mode.
    exact = sfx == "d" and (op in ("fcvt.*.w", "fcvt.*.wu") or op == "fcvt.conv")
    rm = "" if exact else ", dyn"
    if op.startswith("fcvt.*."):
        return f"fcvt.{sfx}.{op[7:]} ft2, a0{rm}"
    if op == "fcvt.conv":
        return f"fcvt.{sfx}.{other} ft2, ft0{rm}"
    if op.startswith("fcvt."):
        return f"{op}.{sfx} a1, ft0, dyn"
    if op in ("feq", "flt", "fle"):
        return f"{op}.{sfx} a1, ft0, ft1"
    if op == "fclass":
        return f"fclass.{sfx} a1, ft0"
    if op == "fsqrt":
        return f"fsqrt.{sfx} ft2, ft0, dyn"
    if op in ("fmadd", "fmsub", "fnmsub", "fnmadd"):
        return f"{op}.{sfx} ft2, ft0, ft1, ft3, dyn"
    if op in ("fadd", "fsub", "fmul", "fdiv"):
        return f"{op}.{sfx} ft2, ft0, ft1, dyn"
    return f"{op}.{sfx} ft2, ft0, ft1"


def program(seed: int, only: str | None = None) -> str:
    """C source: per (instruction, precision), tables of operands and a loop over
    the five rounding modes; prints 'name rm hash' lines (or every case, for ``only``)."""
    rng = random.Random(seed)
    parts, calls = [], []
    for sfx, width in (("s", 32), ("d", 64)):
        for op, args, res in OPS:
            name = f"{op}.{sfx}"
            box = (lambda v: v | 0xFFFFFFFF00000000) if width == 32 else (lambda v: v)
            rows = []
            for _ in range(CASES):
                a = operand(rng, width)
                b = near(rng, a, width) if rng.random() < 0.2 else operand(rng, width)
                c = operand(rng, width)
                if args == "x":
                    a = int_operand(rng)
                elif op == "fcvt.conv":
                    a = operand(rng, 64 if width == 32 else 32)
                    a = a if width == 32 else a | 0xFFFFFFFF00000000
                else:
                    a = box(a)
                rows.append((a, box(b), box(c)))
            if only is not None and name != only:
                continue
            ident = name.replace(".", "_").replace("*", "x")
            table = ",\n".join(f"{{{a:#x}ULL, {b:#x}ULL, {c:#x}ULL}}" for a, b, c in rows)
            load = ("\"mv a0, %[a]\\n\"" if args == "x" else "\"fmv.d.x ft0, %[a]\\n\"")
            result = ("\"mv %[r], a1\\n\"" if res == "x" else "\"fmv.x.d %[r], ft2\\n\"")
            rms = range(5) if op in ROUNDED else range(1)
            parts.append(f"""
static const unsigned long long T_{ident}[{CASES}][3] = {{
{table}
}};
static void run_{ident}(void) {{
    for (int rm = {rms.start}; rm < {rms.stop}; rm++) {{
        unsigned long long h = 1469598103934665603ULL;
        for (int i = 0; i < {CASES}; i++) {{
            unsigned long long r, fl;
            __asm__ volatile("csrw frm, %[rm]\\n"
                             "csrw fflags, zero\\n"
                             {load}
                             "fmv.d.x ft1, %[b]\\n"
                             "fmv.d.x ft3, %[c]\\n"
                             "fmv.d.x ft2, zero\\n"
                             "li a1, 0\\n"
                             "{insn_text(op, sfx)}\\n"
                             {result}
                             "csrr %[fl], fflags\\n"
                             : [r] "=r"(r), [fl] "=r"(fl)
                             : [a] "r"(T_{ident}[i][0]), [b] "r"(T_{ident}[i][1]),
                               [c] "r"(T_{ident}[i][2]), [rm] "r"(rm)
                             : "a0", "a1", "ft0", "ft1", "ft2", "ft3");
            {"print_case(rm, i, r, fl);" if only else ""}
            h = (h ^ r) * 1099511628211ULL;
            h = (h ^ fl) * 1099511628211ULL;
        }}
        {"" if only else f'print_line("{name}", rm, h);'}
    }}
}}""")
            calls.append(f"    run_{ident}();")
    return PRELUDE + "\n".join(parts) + "\nvoid main_c(void) {\n" + "\n".join(calls) + "\n}\n"


PRELUDE = r"""
#define UART ((volatile unsigned char *)0x10000000)
static void putc_(char c) { *UART = c; }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void hex(unsigned long long v) {
    for (int i = 60; i >= 0; i -= 4) putc_("0123456789abcdef"[(v >> i) & 15]);
}
static void print_line(const char *name, int rm, unsigned long long h) {
    puts_(name); putc_(' '); putc_('0' + rm); putc_(' '); hex(h); putc_('\n');
}
static void print_case(int rm, int i, unsigned long long r, unsigned long long fl) {
    putc_('0' + rm); putc_(' '); hex(i); putc_(' '); hex(r); putc_(' '); hex(fl); putc_('\n');
}
__asm__(".section .text.init\n.globl _start\n_start:\n"
        " la sp, stack_top\n li t0, 0x2000\n csrs mstatus, t0\n call main_c\n"
        " li t0, 0x100000\n li t1, 0x5555\n sw t1, 0(t0)\n1: j 1b\n"
        ".section .bss\n.align 4\n.space 16384\nstack_top:\n.section .text\n");
"""


def build(tmp: Path, source: str) -> Path:
    c, elf = tmp / "fpdiff.c", tmp / "fpdiff.elf"
    c.write_text(source)
    r = subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv64imafdc_zicsr", "-mabi=lp64",
                        "-O1", "-ffreestanding", "-nostdlib", "-nostartfiles", "-static",
                        "-mcmodel=medany", "-T", str(ROOT / "tests/riscv/asm/link.ld"),
                        "-o", str(elf), str(c)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return elf


def under_qemu(elf: Path) -> str:
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-kernel", str(elf), "-nographic",
                        "-monitor", "none", "-serial", "stdio"], capture_output=True,
                       timeout=600)
    return r.stdout.decode(errors="replace").replace("\r", "")


def under_popek(elf: Path) -> str:
    con = ScriptedConsole()
    board = VirtBoard(BoardConfig(bios=None, kernel=str(elf), cpu="rv64imafdc",
                                  compile_workers=0, code_cache=None), console=con)
    code = board.run()
    board.close()
    assert code == 0, code
    return con.text().replace("\r", "")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} is not installed")
def test_every_fp_instruction_agrees_with_qemu(tmp_path):
    elf = build(tmp_path, program(seed=15))
    ours, theirs = under_popek(elf), under_qemu(elf)
    lines_q = theirs.strip().splitlines()
    assert len(lines_q) > 100, theirs[-2000:]
    diff = [(a, b) for a, b in zip(ours.strip().splitlines(), lines_q) if a != b]
    if diff or len(ours.strip().splitlines()) != len(lines_q):
        name = (diff[0][1] if diff else lines_q[-1]).split()[0]
        detail = build(tmp_path, program(seed=15, only=name))
        cases = [(a, b) for a, b in zip(under_popek(detail).splitlines(),
                                        under_qemu(detail).splitlines()) if a != b]
        pytest.fail(f"{len(diff)} lines differ, first {diff[:1]}; {name}: "
                    f"popek vs QEMU (rm, case, result, fflags): {cases[:5]}")
