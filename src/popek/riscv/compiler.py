"""Translating blocks in a helper process, on the host's other core.

Writing a block's Python source and ``compile()``-ing it takes about a
millisecond (0.4 ms the source, 0.6 ms ``compile()``), and a cold boot of
OpenSBI+U-Boot translates some 600 blocks: done in-process, a quarter of its
wall time, all of it spent holding the GIL, so a thread cannot take it off the
guest's back.  A process can: the hart sends a hot block's
instructions to a worker (``python -m popek.riscv.compiler``), keeps
interpreting the block meanwhile, and installs the compiled code when it comes
back, as HotSpot's background compilation does.

Nothing the guest can see depends on when a translation arrives: a block
behaves the same interpreted or translated (tests/test_translator.py holds the
two engines to that), and interrupts and the clock are looked at in the same
places by both.  Only how fast the run goes does.

The protocol is frames of ``marshal``-ed tuples, each prefixed by its length:

* request: ``(seq, flavour, start_pc, ((pc, instruction bits), ...))`` (the flavour
  says how to decode the bits: translate.py; None: the base ISA)
* reply: ``(seq, code, loops, source lines)``, or ``(seq, None, False, error)``

The worker sees nothing but instruction bits and addresses, the same input the
in-process translator gets.  The hart's side never blocks on the worker: requests
go out through a non-blocking pipe (what does not fit waits for the next poll)
and replies are read when the hart polls between slices.  A worker that dies
or answers with an error costs only speed: its blocks are translated in-process.
"""

from __future__ import annotations

import logging
import marshal
import os
import select
import signal
import subprocess
import sys
import time
import weakref

log = logging.getLogger(__name__)

_HEADER = 4                         # bytes of a frame's length, little-endian


def default_workers() -> int:
    """One worker when the host has a core to spare for it, else none (a worker
    sharing the guest's only core would only add its start-up)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 1 if cores >= 2 else 0


def background_compiler(engine: str, workers: int | None) -> "BackgroundCompiler | None":
    """The compiler a machine running ``engine`` gets: ``workers`` processes (None:
    :func:`default_workers`), or none, when blocks are compiled in-process."""
    if workers is None:
        workers = default_workers()
    if engine != "translate" or workers <= 0:
        return None
    return BackgroundCompiler(workers)


def _frame(obj) -> bytes:
    data = marshal.dumps(obj)
    return len(data).to_bytes(_HEADER, "little") + data


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout):
        try:
            f.close()
        except OSError:
            pass


class _Worker:
    """One worker process and the requests it has not answered yet."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.alive = True
        self.keys: dict[int, tuple] = {}        # request number -> block key, in flight
        self.out = bytearray()                  # requests the pipe has not taken yet
        self.inp = bytearray()                  # replies read, not yet whole
        os.set_blocking(proc.stdin.fileno(), False)
        os.set_blocking(proc.stdout.fileno(), False)
        # Stopped with the compiler, or else when it is collected.
        self.stop = weakref.finalize(self, _stop, proc)

    def send(self) -> None:
        if not self.out or not self.alive:
            return
        try:
            n = os.write(self.proc.stdin.fileno(), self.out)
        except BlockingIOError:
            return
        except OSError:
            self.died("its pipe broke")
            return
        del self.out[:n]

    def receive(self) -> list:
        """Whole replies read so far: ``[(key, code, loops, lines or error)]``."""
        gone = False
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                gone = True
                break
            self.inp += chunk
        why = "it exited"
        replies, buf, pos = [], self.inp, 0
        try:
            while len(buf) - pos >= _HEADER:
                size = int.from_bytes(buf[pos:pos + _HEADER], "little")
                if len(buf) - pos - _HEADER < size:
                    break
                seq, code, loops, extra = marshal.loads(buf[pos + _HEADER:pos + _HEADER + size])
                pos += _HEADER + size
                key = self.keys.pop(seq, None)
                if key is not None:
                    replies.append((key, code, loops, extra))
        except (ValueError, EOFError, TypeError) as e:
            gone, why = True, f"it sent something unreadable: {e}"
        del buf[:pos]
        if gone:
            self.died(why)
        return replies

    def died(self, why: str) -> None:
        if self.alive:
            log.warning("translation worker stopped (%s): translating in-process", why)
        self.alive = False
        self.out.clear()


class BackgroundCompiler:
    """The hart's side of ``workers`` worker processes, started at the first request.

    At most ``MAX_OUTSTANDING`` requests are in flight: a guest that makes new hot
    code faster than a worker compiles it (code rewriting itself for ever) would
    otherwise queue requests, and keep their blocks alive, without end.  While the
    backlog is full the hart runs those blocks interpreted and asks again later
    (``busy``)."""
    MAX_OUTSTANDING = 256             # a cold U-Boot boot peaks at ~72 (on a loaded host)

    def __init__(self, workers: int = 1):
        self.wanted = workers
        self.workers: list[_Worker] = []
        self.alive = workers > 0
        self._seq = 0
        self.started = self.requested = self.received = self.failed = self.deferred = 0

    def busy(self) -> bool:
        """Whether the backlog is full (a request now would wait too long anyway); a
        full backlog counts as one deferral."""
        if self.outstanding >= self.MAX_OUTSTANDING:
            self.deferred += 1
            return True
        return False

    def submit(self, key: tuple, start_pc: int, pairs: tuple, flavour: str | None = None) -> bool:
        """Ask for the block ``pairs`` (``(pc, bits)`` each) of ``flavour`` (None: the base
        ISA; translate.py) to be compiled; False if there is no worker to ask (none could
        start, or all died)."""
        if not self.alive or (not self.workers and not self._start()):
            return False
        live = [w for w in self.workers if w.alive]
        if not live:
            self.alive = False
            return False
        w = min(live, key=lambda w: len(w.keys))
        self._seq += 1
        w.keys[self._seq] = key
        w.out += _frame((self._seq, flavour, start_pc, pairs))
        w.send()
        if not w.alive:                     # try another, if any (its keys fail at poll)
            del w.keys[self._seq]
            return self.submit(key, start_pc, pairs, flavour)
        self.requested += 1
        return True

    def poll(self) -> tuple[list, list]:
        """Replies that have come in: ``([(key, code, loops, lines)], [failed keys])``.

        A key fails when a worker could not compile its block or died before
        answering: the hart then translates that block itself."""
        done, failed = [], []
        for w in self.workers:
            if w.alive:
                w.send()
            if w.alive:
                for key, code, loops, extra in w.receive():
                    if code is None:
                        self.failed += 1
                        log.warning("translation worker failed on a block: %s", extra)
                        failed.append(key)
                    else:
                        self.received += 1
                        done.append((key, code, loops, extra))
            if not w.alive and w.keys:      # what it had not answered, the hart does
                failed += w.keys.values()
                w.keys.clear()
        return done, failed

    @property
    def outstanding(self) -> int:
        return sum(len(w.keys) for w in self.workers)

    def drain(self, timeout: float) -> tuple[list, list]:
        """:meth:`poll`, waiting up to ``timeout`` seconds for all outstanding replies."""
        done, failed = self.poll()
        end = time.monotonic() + timeout
        while self.outstanding:
            left = end - time.monotonic()
            if left <= 0:
                break
            select.select([w.proc.stdout for w in self.workers if w.keys], [], [], left)
            d, f = self.poll()
            done += d
            failed += f
        return done, failed

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers.clear()
        self.alive = False

    def stats(self) -> dict:
        return {"compile_workers": self.started, "compile_requests": self.requested,
                "compile_replies": self.received, "compile_failures": self.failed,
                "compile_backlog": f"{self.outstanding} (at most {self.MAX_OUTSTANDING})",
                "compile_deferred": self.deferred}

    def _start(self) -> bool:
        import popek
        root = os.path.dirname(os.path.dirname(os.path.abspath(popek.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        for _ in range(self.wanted):
            try:
                proc = subprocess.Popen([sys.executable, "-m", "popek.riscv.compiler"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=env, bufsize=0)
            except OSError as e:
                log.warning("no translation worker (%s): translating in-process", e)
                break
            self.workers.append(_Worker(proc))
            self.started += 1
        self.alive = bool(self.workers)
        return self.alive


# -- the worker's side -------------------------------------------------------------
def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def serve(inp: int = 0, out: int = 1) -> None:
    """Compile blocks for the hart that started us until it closes our input."""
    from popek.riscv import translate
    while True:
        header = _read_exactly(inp, _HEADER)
        if not header:
            return
        payload = _read_exactly(inp, int.from_bytes(header, "little"))
        if not payload:
            return
        seq, flavour, start_pc, pairs = marshal.loads(payload)
        try:
            decode, rewrite = translate.decoder(flavour or translate.BASE_FLAVOUR)
            insns = [(pc, decode(bits)) for pc, bits in pairs]
            if rewrite is not None:
                insns = [(pc, rewrite(pc, d)) for pc, d in insns]
            code, loops, lines = translate.compile_block(insns, start_pc)
            reply = (seq, code, loops, lines)
        except Exception as e:               # the hart translates this one itself
            reply = (seq, None, False, f"{type(e).__name__}: {e}")
        data = _frame(reply)
        while data:
            data = data[os.write(out, data):]


if __name__ == "__main__":
    # Ctrl-C at the terminal reaches the whole process group: the hart's process
    # handles it and stops us; we must not print a traceback of our own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        serve()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
