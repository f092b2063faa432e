"""Where Debian's x86-64 kernel is: installed in /boot (linux-image-amd64), or
unpacked by scripts/setup.sh into the project's cache (.cache/debian-kernel),
which needs no root and leaves the host's /boot alone."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from popek.errors import ImageError

CACHE = Path(__file__).resolve().parents[3] / ".cache" / "debian-kernel"


def _release(vmlinuz: str) -> str:
    return os.path.basename(vmlinuz).removeprefix("vmlinuz-")


def find_kernel() -> tuple[str, str]:
    """(vmlinuz, its module directory), newest first from the cache, then /boot."""
    for root in (CACHE, Path("/")):
        for vmlinuz in sorted(glob.glob(str(root / "boot" / "vmlinuz-*-amd64")), reverse=True):
            modules = root / "lib" / "modules" / _release(vmlinuz)
            if modules.is_dir() and os.access(vmlinuz, os.R_OK):
                return vmlinuz, str(modules)
    raise ImageError("no Debian x86-64 kernel found (run scripts/setup.sh, or "
                     "apt-get install linux-image-amd64)")
