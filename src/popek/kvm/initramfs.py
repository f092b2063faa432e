"""An initramfs for Debian's kernel: busybox-static, the kernel modules the
virtio devices need (with their dependencies, in load order), and an /init
script, packed as a newc cpio archive (the format the kernel unpacks; see
Documentation/driver-api/early-userspace/buffer-format.rst).

Debian's kernel builds virtio-pci and virtio-blk as modules, so without them
in the initramfs the guest would never see its disk.  Module dependencies come
from each module's own ``.modinfo`` (``depends=``), so no depmod is needed.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from popek.errors import ImageError

DEFAULT_MODULES = ("virtio_pci", "virtio_blk", "virtio_mmio")
BUSYBOX = "/bin/busybox"

INIT = """#!/bin/busybox sh
# popek's initramfs: mount the usual filesystems, load the virtio modules,
# say so on the console, then give the console a shell.
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules); do
    insmod /lib/modules/$m.ko || echo "popek-initramfs: could not load $m"
done
echo "popek-initramfs: up, modules: $(cat /etc/modules | tr '\\n' ' ')"
[ -b /dev/vda ] && echo "popek-initramfs: /dev/vda has $(cat /sys/block/vda/size) sectors"
exec setsid cttyhack sh
"""


class Cpio:
    """A newc ("070701") archive, built in memory."""

    def __init__(self):
        self.out = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        raw = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(raw), 0)
        self.out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + raw)
        self._pad()
        self.out.write(data)
        self._pad()
        self.ino += 1

    def _pad(self) -> None:
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, nlink=1)
        self.out.write(b"\0" * (-self.out.tell() % 512))
        return self.out.getvalue()


def module_index(modules_dir: Path) -> dict[str, Path]:
    """Module name (dashes as underscores) → its .ko file."""
    index = {}
    for path in modules_dir.rglob("*.ko"):
        index[path.stem.replace("-", "_")] = path
    return index


def module_depends(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            sec = ELFFile(f).get_section_by_name(".modinfo")
            info = sec.data() if sec is not None else b""
    except (ELFError, OSError) as e:
        raise ImageError(f"{path}: not a kernel module ({e})") from None
    for item in info.split(b"\0"):
        if item.startswith(b"depends="):
            return [d.decode().replace("-", "_") for d in item[8:].split(b",") if d]
    return []


def load_order(wanted, index: dict[str, Path]) -> list[str]:
    """``wanted`` and everything they depend on, dependencies first."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name not in index:
            raise ImageError(f"kernel module {name!r} not found"
                             + (f" (needed by {chain[-1]})" if chain else ""))
        seen.add(name)
        for dep in module_depends(index[name]):
            visit(dep, chain + (name,))
        order.append(name)

    for name in wanted:
        visit(name.replace("-", "_"), ())
    return order


def build(modules_dir: str | None, modules=DEFAULT_MODULES, busybox: str = BUSYBOX,
          init: str = INIT) -> tuple[bytes, list[str]]:
    """The archive's bytes, and the modules it loads (in order)."""
    if not os.path.isfile(busybox):
        raise ImageError(f"{busybox}: no busybox (install Debian's busybox-static)")
    cpio = Cpio()
    for d in ("bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp", "root"):
        cpio.directory(d)
    cpio.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", init.encode(), 0o755)
    order: list[str] = []
    if modules:
        if not modules_dir or not os.path.isdir(modules_dir):
            raise ImageError(f"{modules_dir}: no kernel module directory")
        index = module_index(Path(modules_dir))
        order = load_order(modules, index)
        for name in order:
            cpio.file(f"lib/modules/{name}.ko", index[name].read_bytes())
    cpio.file("etc/modules", "".join(f"{m}\n" for m in order).encode())
    return cpio.finish(), order
