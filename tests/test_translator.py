"""The translator must agree with the interpreter exactly.

Each program runs under both engines; retired-instruction counts, final
registers, pc, trap CSRs and console output must be identical.  Time is
deterministic (icount), so even interrupt delivery must land on the same
instruction.
"""

from __future__ import annotations

import pytest

from popek.console import ScriptedConsole
from popek.riscv import isa, translate
from popek.riscv.board import BoardConfig, DriveSpec, VirtBoard
from tests.conftest import ASM_DIR, ROOT

# (The SMP program runs on both engines in test_conformance.py: how harts interleave
# depends on where blocks end, so the two engines need not agree instruction by
# instruction there.)
PROGRAMS = sorted(p.stem for p in ASM_DIR.glob("*.S")
                  if p.stem != "selftest_fail" and not p.stem.startswith("smp_"))


def final_state(board):
    h = board.hart
    return {"exit": board.exit_code, "instret": h.instret, "pc": h.pc, "priv": h.priv,
            "x": list(h.x[:32]), "mcause": h.mcause, "mepc": h.mepc, "mtval": h.mtval,
            "mstatus": h.mstatus, "scause": h.scause, "sepc": h.sepc, "satp": h.satp,
            "traps": h.stats["traps"], "interrupts": h.stats["interrupts"]}


def run(elf, engine, steps=(), bios=None, drives=(), max_instructions=20_000_000,
        code_cache=None, compile_workers=0):
    """Run ``elf`` to the end.  Blocks compile in-process unless ``compile_workers`` says
    otherwise, so which code runs translated depends on heat alone, not on timing."""
    con = ScriptedConsole(steps)
    board = VirtBoard(BoardConfig(bios=bios, kernel=str(elf) if elf else None, engine=engine,
                                  drives=list(drives), max_instructions=max_instructions,
                                  code_cache=code_cache, compile_workers=compile_workers),
                      console=con)
    board.run()
    board.close()
    return final_state(board), con.text(), board


@pytest.mark.parametrize("name", PROGRAMS)
def test_conformance_programs_agree(asm_build, name):
    elf = asm_build / f"{name}.elf"
    a, out_a, _ = run(elf, "interpret")
    b, out_b, board = run(elf, "translate")
    assert a == b
    assert out_a == out_b
    assert a["exit"] == 0


def test_hot_code_really_is_translated(asm_build):
    _, _, board = run(asm_build / "smc.elf", "translate")
    assert board.hart.tstats.translated > 0
    assert board.hart.stats["code_invalidations"] >= 40      # every patch dropped the old block


def test_a_masked_pending_interrupt_does_not_break_translated_loops(asm_build):
    """masked_irq_loop.S spins 300,000 times with an interrupt pending but masked: the
    loop stays in its translated function (it ran back to the dispatcher after every
    iteration, 5x slower, as Linux's early boot with SSIP pending showed)."""
    con = ScriptedConsole()
    board = VirtBoard(BoardConfig(bios=None, kernel=str(asm_build / "masked_irq_loop.elf"),
                                  compile_workers=0), console=con)
    hart, checks = board.hart, []
    real = hart.check_interrupts
    hart.check_interrupts = lambda: checks.append(1) or real()
    assert board.run() == 0
    board.close()
    assert hart.stats["interrupts"] == 1
    assert len(checks) < 1000


def test_a_skip_goes_on_inside_its_block(asm_build, monkeypatch):
    """skips.S's first loop is one block with two nested skips (A, and B inside it)
    and a branch inside A that jumps past A's end (C), which cannot nest: only C's
    64 taken rounds leave the translated loop; A's and B's stay inside it."""
    entries = {}
    real = translate._instantiate

    def counted(hart, entry, insns, stats):
        fn = real(hart, entry, insns, stats)
        start = insns[0][0]
        entries.setdefault(start, 0)

        def run():
            entries[start] += 1
            fn()
        return run
    monkeypatch.setattr(translate, "_instantiate", counted)
    state, _, board = run(asm_build / "skips.elf", "translate")
    assert state["exit"] == 0
    loop = [b for b in board.hart.blocks.values() if b.skips == {1: 9, 4: 6}]
    assert len(loop) == 1 and loop[0].fn is not None
    # Interpreted for its first TRANSLATE_AFTER runs, then entered again only after C.
    assert 0 < entries[loop[0].pc] <= 64


def test_a_block_python_will_not_compile_runs_interpreted(asm_build, monkeypatch, caplog):
    """A limit of Python's compiler that a guest's code reaches (as a hundred nested
    skips once did: "too many levels of indentation") must not stop the machine: the
    block runs interpreted, and the first such block is logged."""
    real = translate.block_source

    def refused(insns, start_pc):
        src, loop = real(insns, start_pc)
        return ("  " + src if len(insns) > 40 else src), loop      # an IndentationError
    monkeypatch.setattr(translate, "block_source", refused)
    monkeypatch.setattr(translate, "_refusals", 0)
    state, _, board = run(asm_build / "skips.elf", "translate")
    assert state["exit"] == 0
    assert translate._refusals >= 1 and board.hart.tstats.translated > 0
    assert sum("cannot be translated" in r.message for r in caplog.records) == 1


@pytest.fixture(scope="module")
def compute_elf():
    import subprocess
    subprocess.run(["make", "-s", "-C", str(ROOT / "bench" / "guest")], check=True,
                   capture_output=True)
    return ROOT / "bench" / "guest" / "build" / "compute.elf"


def test_compiled_c_program_agrees(compute_elf):
    a, out_a, _ = run(compute_elf, "interpret")
    b, out_b, board = run(compute_elf, "translate")
    assert a == b and out_a == out_b
    assert "compute checksum 0000000509d138fb" in out_b     # the same answer QEMU gives
    assert board.hart.tstats.self_loops > 0


def test_code_cache_serves_a_second_run_exactly(compute_elf, tmp_path):
    """A second run compiles nothing, runs hot blocks translated from their first run,
    and ends exactly as the first did (and as the interpreter does)."""
    cold, out_cold, b1 = run(compute_elf, "translate", code_cache=str(tmp_path))
    files = list(tmp_path.glob("translations-*.marshal"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    compiled = b1.code_cache.compiled
    assert compiled == b1.hart.tstats.translated > 0
    warm, out_warm, b2 = run(compute_elf, "translate", code_cache=str(tmp_path))
    assert (warm, out_warm) == (cold, out_cold)
    st = b2.code_cache.stats()
    assert st["code_cache_loaded"] == compiled
    assert st["code_cache_compiled"] == 0 and st["code_cache_hits"] > 0
    assert b2.hart.stats["blocks_built"] == b1.hart.stats["blocks_built"]


def test_code_cache_survives_a_damaged_file_and_keeps_its_bound(compute_elf, tmp_path,
                                                                monkeypatch):
    from popek.riscv import codecache
    path = tmp_path / f"translations-{codecache.translator_version()}.marshal"
    path.write_bytes(b"\x00not marshal data")
    stale = tmp_path / "translations-0123456789abcdef.marshal"    # another translator's
    stale.write_bytes(b"")
    ref, out_ref, _ = run(compute_elf, "interpret")
    monkeypatch.setattr(codecache, "MAX_BYTES", 20_000)
    monkeypatch.setattr(codecache, "MAX_ENTRIES", 8)
    state, out, board = run(compute_elf, "translate", code_cache=str(tmp_path))
    assert (state, out) == (ref, out_ref)
    assert board.code_cache.loaded == 0
    assert len(board.code_cache.entries) <= 8 < board.code_cache.compiled
    assert 0 < board.code_cache.saved < board.code_cache.compiled   # the oldest were dropped
    assert path.stat().st_size <= 20_000
    assert not stale.exists()


def test_background_compiled_code_agrees(compute_elf):
    """Blocks compiled by the worker process, installed in mid-run, end exactly as
    the interpreter does; the worker's code is what the hart would compile."""
    ref, out_ref, _ = run(compute_elf, "interpret")
    con = ScriptedConsole()
    board = VirtBoard(BoardConfig(kernel=str(compute_elf), compile_workers=1,
                                  max_instructions=200_000), console=con)
    board.run()
    h = board.hart
    assert h.awaiting and h.tstats.translated == 0       # asked for, not yet installed
    some = next(iter(h.awaiting.values()))[0]
    h.install_translations(wait=30)
    assert not h.awaiting and h.tstats.translated > 0 and some.fn is not None
    key = next(iter(board.code_cache.entries))
    pc = key[1]                                          # (flavour, start pc, pc, bits, ...)
    insns = [(a, isa.decode(w)) for a, w in zip(key[2::2], key[3::2])]
    assert board.code_cache.entries[key][0] == translate.compile_block(insns, pc)[0]
    board.config.max_instructions = None
    board.run()
    board.close()
    assert (final_state(board), con.text()) == (ref, out_ref)
    st = board.stats()
    assert st["compile_workers"] == 1 and st["compile_failures"] == 0
    assert st["compile_replies"] == st["compile_requests"] > 0
    assert board.compiler.workers == [] and not board.compiler.alive     # stopped


def test_worker_failures_fall_back_to_the_hart(compute_elf):
    """A block the worker cannot compile, and a worker that dies, cost only speed."""
    from popek.riscv.compiler import BackgroundCompiler

    c = BackgroundCompiler(1)
    assert c.submit(("bad",), 0x1000, ((0x1000, "not an instruction"),))
    done, failed = c.drain(30)
    assert done == [] and failed == [("bad",)] and c.failed == 1 and c.alive
    c.close()

    ref, out_ref, _ = run(compute_elf, "interpret")
    con = ScriptedConsole()
    board = VirtBoard(BoardConfig(kernel=str(compute_elf), compile_workers=1), console=con)
    assert board.compiler._start()
    for w in board.compiler.workers:        # dead before the first block gets hot
        w.proc.kill()
        w.proc.wait()
    board.run()
    board.close()
    assert (final_state(board), con.text()) == (ref, out_ref)
    assert board.hart.tstats.translated > 0 and not board.hart.awaiting   # done in-process
    assert board.stats()["compile_replies"] == 0


def test_registers_stay_exact_across_a_trap_in_translated_code():
    """A fault in the middle of a translated block leaves x exact: registers held in
    locals are written back, registers used in x directly are already there."""
    from popek.riscv import isa
    from popek.riscv.traps import Trap

    class FakeHart:
        code_cache = None
        instret = tidx = 0

        def __init__(self):
            self.x = [0] * 33
            self.m8 = self.m16 = self.m32 = self.m64 = memoryview(bytearray(8))
            self.rtlb, self.wtlb = {}, {}

        def load_at(self, idx, va, size):            # every load misses and faults
            self.tidx = idx
            raise Trap(5, va)

    words = [0x00150513] * 3 + [0x00160613,           # addi a0, a0, 1 (x3); addi a2, a2, 1
                                0x0005B583,           # ld a1, 0(a1): the fault
                                0x00150513]           # addi a0, a0, 1: never runs
    insns = [(0x1000 + 4 * k, isa.decode(w)) for k, w in enumerate(words)]
    src, _ = translate.block_source(insns, 0x1000)
    assert "r10 = x[10]" in src and "x[12] = " in src     # a0 in a local, a2 used in x
    h = FakeHart()
    h.x[10], h.x[11], h.x[12] = 5, 0x40, 7
    fn = translate.translate(h, insns, 0x1000, translate.TranslationStats())
    with pytest.raises(Trap) as e:
        fn()
    assert (e.value.pc, e.value.idx, e.value.tval) == (0x1010, 4, 0x40)
    assert h.x[10:13] == [8, 0x40, 8]


@pytest.mark.slow
def test_guest_os_agrees(opensbi, guest_build, tmp_path):
    """Our guest OS (guests/: paging, processes, timer preemption, virtio disk) under
    both engines: the same instructions, registers, console output, and disk."""
    results = []
    for engine in ("interpret", "translate"):
        img = tmp_path / f"{engine}.img"
        img.write_bytes(bytes(4 << 20))
        state, out, _ = run(guest_build / "kernel.elf", engine, bios=str(opensbi),
                            drives=[DriveSpec(str(img))], max_instructions=300_000_000)
        results.append((state, out, img.read_bytes()))
    (a, out_a, disk_a), (b, out_b, disk_b) = results
    assert a["exit"] == 0 and "SELFTEST PASS 9/9" in out_a
    assert out_a == out_b
    assert a == b
    assert disk_a == disk_b and disk_a.strip(b"\0")


@pytest.mark.slow
def test_uboot_session_agrees(opensbi, uboot_smode, tmp_path):
    img = tmp_path / "d.img"
    img.write_bytes(bytes(1 << 20))
    steps = [("Hit any key", " "), ("=> ", "version\n"), ("=> ", "virtio scan\n"),
             ("=> ", "virtio info\n"), ("=> ", "poweroff\n")]
    results = []
    for engine in ("interpret", "translate"):
        state, out, _ = run(uboot_smode, engine, steps, bios=str(opensbi),
                            drives=[DriveSpec(str(img))], max_instructions=100_000_000)
        results.append((state, out))
    (a, out_a), (b, out_b) = results
    assert a["exit"] == 0 and "poweroff" in out_a
    assert out_a == out_b
    assert a == b
