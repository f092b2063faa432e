"""Where Debian's kernels are, with their modules and a static busybox.

x86-64 (the KVM backend's guest): installed in /boot (linux-image-amd64), or
unpacked by scripts/setup.sh into ``.cache/debian-kernel``, which needs no root
and leaves the host's /boot alone; busybox is the host's (busybox-static).

riscv64 (the simulated machine's guest): Debian 13's linux-image-riscv64 and
busybox-static, fetched by scripts/setup.sh (scripts/fetch_debian.py: apt with a
private state, from the host's mirror) into ``.cache/debian-riscv64``.  Its kernel
is an uncompressed Image (``vmlinux-*``, with a PE header), loaded as a raw image.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from popek.errors import ImageError

# A quick boot of Debian's riscv64 kernel (the Makefile's QUICK_BOOT, which `make run`
# adds to the command line): the boot-time crypto self-tests are over half of the
# instructions to the prompt, and none is needed to use the guest.  cryptomgr.notests
# skips the crypto manager's (RSA, ECDSA, the DRBGs...); initcall_blacklist skips the two
# built-in initcalls that only test: the BLAKE2s library's self-test (lib/crypto) and the
# jitter-entropy source's power-up test, whose SHA-3 loops are ~170 M instructions (the
# kernel's own RNG does not use it; the crypto API's DRBG seeds without it, saying so).
QUICK_BOOT = "cryptomgr.notests initcall_blacklist=blake2s_mod_init,jent_mod_init"

ROOT = Path(__file__).resolve().parents[3]
CACHES = {"x86_64": ROOT / ".cache" / "debian-kernel",
          "riscv64": ROOT / ".cache" / "debian-riscv64"}
ARCHES = tuple(CACHES)


@dataclass(frozen=True)
class DebianKernel:
    image: str          # what popek boots: vmlinuz (bzImage) or the riscv64 Image
    modules: str        # its module tree
    busybox: str        # a static busybox of the same architecture


def _release(image: str) -> str:
    return os.path.basename(image).split("-", 1)[1]


def _modules(root: Path, release: str) -> Path | None:
    for d in (root / "usr" / "lib" / "modules" / release, root / "lib" / "modules" / release):
        if d.is_dir():
            return d
    return None


def find(arch: str = "x86_64") -> DebianKernel:
    """The newest Debian kernel of ``arch``: from the project's cache first (and for
    x86-64 then /boot)."""
    if arch not in CACHES:
        raise ImageError(f"no Debian kernel for {arch!r} (popek knows {', '.join(ARCHES)})")
    if arch == "x86_64":
        roots, pattern = (CACHES[arch], Path("/")), "vmlinuz-*-amd64"
    else:
        roots, pattern = (CACHES[arch],), "vmlinux-*-riscv64"
    for root in roots:
        for image in sorted(glob.glob(str(root / "boot" / pattern)), reverse=True):
            modules = _modules(root, _release(image))
            if modules is not None and os.access(image, os.R_OK):
                return DebianKernel(image, str(modules), busybox(arch))
    how = ("run scripts/setup.sh, or apt-get install linux-image-amd64" if arch == "x86_64"
           else "run scripts/setup.sh (make setup), which fetches Debian 13's riscv64 kernel")
    raise ImageError(f"no Debian {arch} kernel found ({how})")


def busybox(arch: str) -> str:
    """Debian's static busybox of ``arch``: the host's for x86-64, the fetched one for
    riscv64."""
    return "/bin/busybox" if arch == "x86_64" else \
        str(CACHES["riscv64"] / "usr" / "bin" / "busybox")


def find_kernel() -> tuple[str, str]:
    """(vmlinuz, its module directory) of the x86-64 kernel."""
    k = find("x86_64")
    return k.image, k.modules
