"""Property-based tests of what a user hands popek: images, options, kernel command
lines.  Whatever the input, popek says what is wrong in one line (ImageError,
ConfigError, or argparse's usage error) or takes it; no other exception escapes and
nothing nonsensical reaches a machine (docs/errors.md).

Reproducible: every test is derandomized, so CI runs the same examples each time.
"""

from __future__ import annotations

import argparse
import math
import struct
from pathlib import Path
from types import SimpleNamespace

import fdt
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from popek import cli
from popek.devices.memory import GuestMemory
from popek.errors import ConfigError, ImageError
from popek.riscv import devicetree, isa, loader
from popek.riscv.platform import VirtLayout

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
RAM_BASE = 0x80000000
MAX_RAM = 16 << 30              # the most RAM popek gives a simulated machine or VM

# -- (a) the image loaders: mutated real ELFs and random bytes --------------------------

INTERESTING = [0, 1, 2, 7, 0x38, 0x40, 0xFFF, 0x1000, 0x2000, 0x2400, 0x10000, 1 << 20,
               RAM_BASE, RAM_BASE + (1 << 20) - 1, RAM_BASE + (1 << 20), 2 ** 31, 2 ** 32 - 1,
               2 ** 62, 2 ** 63, 2 ** 64 - 1]
EHDR = {"e_ident_class": (4, "B"), "e_ident_data": (5, "B"), "e_type": (0x10, "<H"),
        "e_machine": (0x12, "<H"), "e_entry": (0x18, "<Q"), "e_phoff": (0x20, "<Q"),
        "e_shoff": (0x28, "<Q"), "e_phentsize": (0x36, "<H"), "e_phnum": (0x38, "<H"),
        "e_shentsize": (0x3A, "<H"), "e_shnum": (0x3C, "<H"), "e_shstrndx": (0x3E, "<H")}
PHDR = {"p_type": (0, "<I"), "p_offset": (8, "<Q"), "p_paddr": (24, "<Q"),
        "p_filesz": (32, "<Q"), "p_memsz": (40, "<Q")}


@pytest.fixture(scope="session")
def alu_elf(asm_build) -> bytes:
    return (asm_build / "rv64i_alu.elf").read_bytes()


@pytest.fixture(scope="session")
def image_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "image"


def _fits(fmt: str, value: int) -> int:
    return value & ((1 << (8 * struct.calcsize(fmt))) - 1)


FIELDS = {**{name: where for name, where in EHDR.items()},
          **{f"ph{i}.{name}": (i, off, fmt) for i in range(3) for name, (off, fmt) in PHDR.items()}}
MUTATIONS = st.one_of(
    st.tuples(st.sampled_from(sorted(FIELDS)),
              st.one_of(st.sampled_from(INTERESTING), st.integers(0, 2 ** 64 - 1))),
    st.tuples(st.just("flip"), st.integers(0, 0x1FF), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 0x2600)))


def mutate(original: bytes, mutations) -> bytes:
    """``original`` with header fields set, bytes flipped, or cut short, in order."""
    data = bytearray(original)
    phoff = struct.unpack_from("<Q", original, 0x20)[0]
    for m in mutations:
        if m[0] == "flip":
            if m[1] < len(data):
                data[m[1]] ^= m[2]
        elif m[0] == "truncate":
            del data[m[1]:]
        else:
            where = FIELDS[m[0]]
            if len(where) == 3:
                i, off, fmt = where
                off += phoff + 56 * i
            else:
                off, fmt = where
            if off + struct.calcsize(fmt) <= len(data):
                struct.pack_into(fmt, data, off, _fits(fmt, m[1]))
    return bytes(data)


def _load(path: Path, data: bytes):
    path.write_bytes(data)
    ram = GuestMemory(RAM_BASE, 1 << 20)
    try:
        img = loader.load_image(str(path), ram, RAM_BASE)
    except ImageError as e:
        assert "\n" not in str(e)
        return None
    assert ram.base <= img.low <= img.high <= ram.end
    return img


def test_loader_takes_mutated_elfs_or_says_why(alu_elf, image_path):
    @FUZZ
    @given(st.lists(MUTATIONS, min_size=1, max_size=4))
    def check(mutations):
        _load(image_path, mutate(alu_elf, mutations))
    check()


def test_loader_takes_random_bytes_or_says_why(image_path):
    @FUZZ
    @given(st.one_of(st.binary(max_size=4096),
                     st.binary(max_size=4096).map(lambda b: loader.ELF_MAGIC + b),
                     st.binary(min_size=60, max_size=200).map(
                         lambda b: loader.ELF_MAGIC + bytes([2, 1, 1]) + b)))
    def check(data):
        _load(image_path, data)
    check()


# -- (b) option parsing ----------------------------------------------------------------

LONG_NUMBERS = st.integers(4000, 6000).map(lambda n: "9" * n + "M")


@FUZZ
@given(st.one_of(st.text(max_size=40), LONG_NUMBERS))
def test_parse_size_returns_a_size_or_says_why(text):
    try:
        assert cli.parse_size(text) >= 0
    except argparse.ArgumentTypeError:
        pass


@FUZZ
@given(st.text(max_size=60))
def test_parse_drive_returns_a_drive_or_says_why(text):
    try:
        assert isinstance(cli.parse_drive(text).path, str)
    except argparse.ArgumentTypeError:
        pass


@FUZZ
@given(st.one_of(st.text(max_size=80), LONG_NUMBERS.map(lambda m: f"kernel=k,memory={m}")))
def test_parse_vm_returns_a_config_or_says_why(text):
    try:
        cli.parse_vm(text, 1)
    except ConfigError as e:
        assert "\n" not in str(e)


NUMBERS = st.one_of(st.sampled_from(["0", "-1", "1", "-5", "64", "65", "nan", "inf", "-inf",
                                     "1e400", "99999999999999999999", "0x10", "١٢"]),
                    st.integers(-2 ** 70, 2 ** 70).map(str), st.text(max_size=8))
SIZES = st.one_of(st.sampled_from(["0", "1K", "1M", "3M", "4M", "128M", "16G", "17G", "1T",
                                   "64T", "99999999T", "1025K"]), st.text(max_size=8))
TEXT = st.text(max_size=30)
OPTION_VALUES = {"-m": SIZES, "--max-instructions": NUMBERS, "--smp": NUMBERS,
                 "--timeout": NUMBERS, "--icount-ips": NUMBERS, "--compile-workers": NUMBERS,
                 "--append": TEXT, "--dtb-out": TEXT, "--trace": TEXT,
                 "--clock": st.sampled_from(["icount", "host", "wall"]),
                 "--engine": st.sampled_from(["translate", "interpret", "jit"]),
                 "--drive": TEXT,
                 "--vm": st.builds(lambda m, a: f"kernel=k.elf,memory={m},append={a}",
                                   SIZES, TEXT.filter(lambda s: "," not in s))}
MACHINES = [["--bios", "none", "--kernel", "k.elf"],
            ["--vmm", "trap-emulate", "--kernel", "k.elf"],
            ["--backend", "kvm", "--kernel", "k.elf"]]


@st.composite
def run_argvs(draw):
    argv = ["run", *draw(st.sampled_from(MACHINES))]
    for name in draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), max_size=4)):
        argv += [name, draw(OPTION_VALUES[name])]
    return argv


class Reached(Exception):
    """A machine was about to be built: the options got through."""


def _sane_bootargs(text: str, ascii_only: bool = True) -> bool:
    if "\0" in text:
        return False
    try:
        text.encode("ascii" if ascii_only else "utf-8")
    except UnicodeEncodeError:
        return False
    return not ascii_only or all(" " <= c <= "~" or c == "\t" for c in text)


def _given(argv, option):
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == option]
    return values[-1] if values else None


@pytest.fixture
def machines_recorded(monkeypatch, tmp_path):
    """Machine constructors replaced by checks that what reached them is sane."""
    import popek.console
    import popek.kvm.machine
    import popek.riscv.board
    import popek.vmm.hypervisor
    from popek.kvm import layout
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "host_memory", lambda: 1 << 40, raising=False)
    state = {}

    def common(max_instructions):
        assert max_instructions is None or max_instructions >= 1
        return _given(state["argv"], "-m")

    def board(cfg, console=None):
        m = common(cfg.max_instructions)
        assert cfg.memory <= MAX_RAM
        assert m is None or cfg.memory == cli.parse_size(m), "a -m value was replaced"
        assert cfg.ips == 0 or 1 <= cfg.ips <= 10 ** 9
        assert _sane_bootargs(cfg.append)
        raise Reached

    def hypervisor(configs, console, **kw):
        common(kw.get("max_instructions"))
        m = _given(state["argv"], "-m")
        if m is not None:
            assert configs[0].memory == cli.parse_size(m), "a -m value was replaced"
        for c in configs:
            assert c.memory <= MAX_RAM and _sane_bootargs(c.append)
        raise Reached

    def x86(kernel, memory=0, console=None, *, append="", smp=1, **kw):
        common(None)
        assert memory <= layout.MMIO_BASE and _sane_bootargs(append, ascii_only=False)
        timeout = _given(state["argv"], "--timeout")
        assert timeout is None or 0 < float(timeout) < math.inf
        raise Reached

    monkeypatch.setattr(popek.riscv.board, "VirtBoard", board)
    monkeypatch.setattr(popek.vmm.hypervisor, "Hypervisor", hypervisor)
    monkeypatch.setattr(popek.kvm.machine, "X86Machine", x86)
    monkeypatch.setattr(popek.console, "StdioConsole", lambda *a, **kw: SimpleNamespace(
        close=lambda: None, on_quit=None))
    return state


def _run_main(argv, state, capsys):
    state["argv"] = argv
    try:
        code = cli.main(argv)
    except SystemExit as e:
        assert e.code in (0, 2)
        if e.code == 2:
            err = capsys.readouterr().err
            assert err.startswith("popek: error: ") and err.count("\n") == 1, err
    except Reached:
        pass
    else:
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("popek: error: "), (code, err)
        assert len(err.strip().splitlines()) == 1, err
    capsys.readouterr()


def test_cli_refuses_nonsense_or_passes_it_on_sane(machines_recorded, capsys, monkeypatch):
    """Any mix of options: an argparse error, one line from popek, or a machine built
    from sane values (no -m swapped for the default, no size beyond what popek gives,
    no negative budget, no command line the device tree cannot hold)."""
    monkeypatch.setattr(cli, "DEBIAN_OPENSBI", "/")

    @settings(FUZZ, max_examples=400,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(run_argvs())
    def check(argv):
        _run_main(argv, machines_recorded, capsys)
    check()


WORDS = st.one_of(st.sampled_from(["run", "--kernel", "k.elf", "--bios", "none", "-m",
                                   "--vm", "--append", "--backend", "kvm", "--vmm",
                                   "trap-emulate", "-h", "--version", "--", "-1", "0"]),
                  st.text(max_size=20))


@FUZZ
@given(st.lists(WORDS, max_size=8))
def test_parser_takes_random_words(argv):
    """The parser alone (it runs nothing): a namespace, or argparse's exit (help,
    version, or a usage error in one line)."""
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            cli.build_parser().parse_args(argv)
        except SystemExit as e:
            assert e.code in (0, 2)
            if e.code == 2:
                assert err.getvalue().startswith("popek: error: ")
                assert err.getvalue().count("\n") == 1, err.getvalue()


def test_cli_takes_random_words_after_run(machines_recorded, capsys):
    @settings(FUZZ, suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
    @given(st.lists(WORDS, max_size=8))
    @example(["--bios", "none", "--kernel", "k.elf", "-m", "0"])
    @example(["--bios", "none", "--kernel", "k.elf", "--max-instructions", "-1"])
    def check(words):
        _run_main(["run", *words], machines_recorded, capsys)
    check()


# -- (c) the device tree's inputs: the kernel command line -------------------------------

class FakeBoard(VirtLayout):
    def __init__(self, bootargs):
        self.bootargs = bootargs
        self.ram = SimpleNamespace(size=128 << 20)
        self.isa = isa.BASE
        self.platform = SimpleNamespace(virtio=[])


BOOTARGS = st.one_of(st.text(max_size=200),
                     st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=200),
                     st.sampled_from(["a\0b", "\udcff", "café", "x" * 100_000, "\t\n",
                                      "console=ttyS0 root=/dev/vda"]))


@FUZZ
@given(BOOTARGS)
def test_bootargs_the_tree_cannot_hold_are_refused_as_options(bootargs):
    """Either the option check refuses the command line in one line, or the device
    tree holds it exactly."""
    try:
        cli.check_bootargs(bootargs, "--append")
    except ConfigError as e:
        assert "\n" not in str(e) and "--append" in str(e)
        return
    dtb = devicetree.build(FakeBoard(bootargs))
    tree = fdt.parse_dtb(dtb)
    if bootargs:
        assert tree.get_property("bootargs", "/chosen").value == bootargs


def test_bootargs_through_the_command_line(asm_build, tmp_path_factory, capsys):
    """End to end: `popek run --append ... --dtb-out`: one line, or the tree has them."""
    out = tmp_path_factory.mktemp("dtb") / "virt.dtb"
    kernel = str(asm_build / "rv64i_alu.elf")

    @settings(FUZZ, max_examples=60)
    @given(st.one_of(st.text(min_size=1, max_size=40),
                     st.sampled_from(["\udcff", "café", "a\x01b", "a\0b"])))
    def check(bootargs):
        code = cli.main(["run", "--bios", "none", "--kernel", kernel, "-m", "4M",
                         "--engine", "interpret", "--code-cache", "none",
                         "--append", bootargs, "--dtb-out", str(out)])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if code == 0:
            tree = fdt.parse_dtb(out.read_bytes())
            assert tree.get_property("bootargs", "/chosen").value == bootargs
        else:
            assert code == 1 and err.count("\n") == 1 and "--append" in err, err
    check()
