"""Translations kept across runs: the compiled code of translated blocks, on disk.

Translating a block costs about a millisecond (writing its source, then
``compile()``), and a boot of OpenSBI+U-Boot translates some 600 blocks: a
quarter of its wall time in-process, and with the work moved to a worker
(compiler.py) the guest still runs those blocks interpreted until their code
comes back.  What a block compiles to depends only on what it is made of (its
instructions and their addresses) and on the translator itself, so, like
CPython's own ``.pyc`` files, the compiled code can be kept: a second boot
of the same firmware finds its hot blocks already compiled.

* Key: the translation's flavour (the ISA variant and any rewrite of its
  instructions: translate.py, so code of one is never found for another), the
  block's start pc and its ``(pc, instruction bits)`` pairs.  A block is still
  decoded, still invalidated on a write to its code, and its function is still
  made per hart; only the source-to-bytecode step is skipped.
* Version: the file is named by a hash of every source of the simulated CPU
  (``popek/riscv/**/*.py``: translated code bakes in the ISA table, the
  translator's output, the TLB layout of mmu.py, and calls the hart's methods by
  name) and CPython's bytecode magic number, so a change to any of them starts a
  new file (and saving it deletes the files of other versions).
* Bound: at most ``MAX_ENTRIES`` translations and ``MAX_LINES`` lines of their
  source in memory (a code object costs ~55 bytes of memory per source line: a
  guest rewriting its code for ever must not fill the host with unique
  translations), and ``MAX_BYTES`` of marshalled code per file; the least
  recently used go first.
* Saving merges with what is on disk and replaces the file atomically, so
  concurrent runs do not lose each other's work (the last one wins on ties).

The file holds code objects, which run when loaded blocks run: it is trusted as
much as the ``.pyc`` files in the same cache directory, and no more.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import marshal
import os
from pathlib import Path

from popek.files import write_atomically

log = logging.getLogger(__name__)

MAX_BYTES = 64 << 20
MAX_ENTRIES = 32768         # in memory: as many as the hart's block cache holds
MAX_LINES = 1_000_000       # in memory: ~55 MiB of code objects (a cold U-Boot boot: ~60 K)


def default_directory() -> str | None:
    """``$POPEK_CODE_CACHE`` (``none``: no cache on disk), else ``$XDG_CACHE_HOME/popek``,
    else ``~/.cache/popek``."""
    env = os.environ.get("POPEK_CODE_CACHE")
    if env:
        return None if env == "none" else env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "popek")


def translator_version() -> str:
    h = hashlib.blake2b(importlib.util.MAGIC_NUMBER, digest_size=8)
    here = Path(__file__).parent
    for path in sorted(here.rglob("*.py")):
        h.update(str(path.relative_to(here)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


class CodeCache:
    """Compiled block code by block contents; kept in ``directory`` if one is given."""

    def __init__(self, directory: str | None = None):
        self.path = (os.path.join(directory, f"translations-{translator_version()}.marshal")
                     if directory else None)
        # key -> (code object, whether the block loops, source lines); dict order is
        # recency of use.
        self.entries: dict[tuple, tuple] = {}
        self.lines = 0
        self.loaded = self.hits = self.compiled = self.saved = 0
        self._unsaved = 0
        if self.path:
            self.entries = self._read()
            self.loaded = len(self.entries)
            self.lines = sum(e[2] for e in self.entries.values())
            self._evict()

    def _read(self, quiet: bool = False) -> dict:
        try:
            with open(self.path, "rb") as f:
                data = marshal.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, EOFError, ValueError, TypeError) as e:
            if not quiet:
                log.warning("code cache %s unreadable (%s): starting afresh", self.path, e)
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, tuple) and len(v) == 3
                                                  for v in data.values()):
            return {}
        return data

    def get(self, key: tuple):
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.entries[key] = entry           # most recently used goes last
            self.hits += 1
        return entry

    def put(self, key: tuple, code, loop: bool, lines: int) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.lines -= old[2]
        self.entries[key] = (code, loop, lines)
        self.lines += lines
        self.compiled += 1
        self._unsaved += 1
        self._evict()

    def _evict(self) -> None:
        """The least recently used go until the cache is within its bounds."""
        entries = self.entries
        while len(entries) > MAX_ENTRIES or (self.lines > MAX_LINES and len(entries) > 1):
            self.lines -= entries.pop(next(iter(entries)))[2]

    def save(self) -> None:
        """Write the translations back (merged with the file's), if there is anything new."""
        if not self.path or not self._unsaved:
            return
        merged = self._read(quiet=True)
        for key in self.entries:            # ours are the most recent: they go last
            merged.pop(key, None)
        merged.update(self.entries)
        sizes = {k: len(marshal.dumps((k, v))) for k, v in merged.items()}
        total = sum(sizes.values())
        for key in list(merged):
            if total <= MAX_BYTES:
                break
            total -= sizes[key]
            del merged[key]
        data = marshal.dumps(merged)
        while len(data) > MAX_BYTES and merged:     # the estimate was short: drop more
            for key in list(merged)[:max(1, len(merged) // 8)]:
                del merged[key]
            data = marshal.dumps(merged)
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_atomically(self.path, data)
        except Exception as e:              # a cache that cannot be written is only slower
            log.warning("code cache not saved: %s", e)
            return
        self.saved = len(merged)
        self._unsaved = 0
        # Files of other translator versions can never be used by this one.
        for old in Path(self.path).parent.glob("translations-*.marshal"):
            if str(old) != self.path:
                try:
                    old.unlink()
                except OSError:
                    pass

    def stats(self) -> dict:
        return {"code_cache": self.path or "in memory",
                "code_cache_loaded": self.loaded, "code_cache_hits": self.hits,
                "code_cache_compiled": self.compiled,
                "code_cache_entries": f"{len(self.entries):,} (at most {MAX_ENTRIES:,})",
                "code_cache_lines": f"{self.lines:,} (at most {MAX_LINES:,})"}
