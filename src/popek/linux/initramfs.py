"""An initramfs for Debian's kernel: busybox-static, the kernel modules the
virtio devices need (with their dependencies, in load order), and an /init
script, packed as a newc cpio archive (the format the kernel unpacks; see
Documentation/driver-api/early-userspace/buffer-format.rst).

Debian's kernels build virtio-pci (x86-64), virtio-mmio (riscv64), virtio-blk and
ext4 as modules, so without them in the initramfs the guest would never see its
disk.  Module dependencies come from each module's own ``.modinfo``
(``depends=``), so no depmod is needed; Debian 13 ships modules xz-compressed
(``.ko.xz``), which are stored decompressed (busybox's insmod takes plain ELF).

The x86-64 /init ends in a shell; the riscv64 one also mounts an ext4 disk on /mnt
and hands over to busybox's init, so that ``poweroff`` syncs, unmounts and powers
the machine off.  Both bring NICs up from ``popek.ip=DRIVER:ADDRESS/PREFIX[,...]`` on
the kernel command line (riscv64 loads the e1000, virtio-net and virtio-rng modules).
"""

from __future__ import annotations

import io
import lzma
import os
import stat
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from popek.errors import ImageError

DEFAULT_MODULES = ("virtio_pci", "virtio_blk", "virtio_mmio")
# ext4 needs crc32c through the crypto API (a soft dependency, not in depends=): Debian's
# riscv64 kernel has it as the module crc32c_generic.
ARCH_MODULES = {"x86_64": DEFAULT_MODULES,
                "riscv64": ("virtio_mmio", "virtio_blk", "crc32c_generic", "ext4", "virtio_net",
                            "virtio_rng", "e1000")}
BUSYBOX = "/bin/busybox"

# Both /init scripts start the same way: the usual filesystems, the modules (in
# /etc/modules, in load order), a line saying so.
_INIT_START = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /mnt
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules); do
    insmod /lib/modules/$m.ko || echo "popek-initramfs: could not load $m"
done
echo "popek-initramfs: up, modules: $(cat /etc/modules | tr '\\n' ' ')"
# popek.ip=DRIVER:ADDRESS/PREFIX[,...] on the command line: each NIC of that driver
# (e1000, virtio_net) up with that address, so a machine on a network needs no typing.
net_up() {
    for n in /sys/class/net/*; do
        d=$(readlink $n/device/driver 2>/dev/null) || continue
        [ "${d##*/}" = "$1" ] || continue
        i=${n##*/}
        ip link set $i up && ip addr add $2 dev $i && echo "popek-initramfs: $i ($1) is $2"
    done
}
for arg in $(cat /proc/cmdline); do
    case $arg in
    popek.ip=*) for spec in $(echo ${arg#popek.ip=} | tr , ' '); do
                    net_up ${spec%%:*} ${spec#*:}
                done ;;
    esac
done
"""

# x86-64 (the KVM backend): report the disk, then a shell on the console.
INIT = _INIT_START + """\
[ -b /dev/vda ] && echo "popek-initramfs: /dev/vda has $(cat /sys/block/vda/size) sectors"
exec setsid cttyhack sh
"""

# riscv64 (the simulated machine): mount the disk on /mnt if it holds ext4, then busybox
# init (/etc/inittab): a shell on the console, and a poweroff that syncs and unmounts.
INIT_RISCV64 = _INIT_START + """\
if [ -b /dev/vda ]; then
    echo "popek-initramfs: /dev/vda has $(cat /sys/block/vda/size) sectors"
    mount -t ext4 /dev/vda /mnt 2>/dev/null && echo "popek-initramfs: /dev/vda mounted on /mnt"
fi
exec /bin/init
"""

INITTAB = """::respawn:/bin/cttyhack /bin/sh -l
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
"""

INITS = {"x86_64": INIT, "riscv64": INIT_RISCV64}


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
    """Module name (dashes as underscores) → its .ko or .ko.xz file."""
    index = {}
    for pattern in ("*.ko", "*.ko.xz"):
        for path in modules_dir.rglob(pattern):
            index[path.name.split(".", 1)[0].replace("-", "_")] = path
    return index


def module_bytes(path: Path) -> bytes:
    """The module's ELF (decompressed if it is a .ko.xz)."""
    try:
        data = path.read_bytes()
        return lzma.decompress(data) if path.name.endswith(".xz") else data
    except (OSError, lzma.LZMAError) as e:
        raise ImageError(f"{path}: cannot read the module ({e})") from None


# What the kernel's sign-file appends to a signed module: the PKCS#7 signature, a
# struct module_signature (12 bytes; its last field the signature's length, big-endian)
# and this marker (include/linux/module_signature.h).
SIGNATURE_MARKER = b"~Module signature appended~\n"


def unsigned(module: bytes) -> bytes:
    """``module`` without its appended signature (if it has one).  The kernel verifies a
    signed module by hashing all of it: Debian's riscv64 modules are big (ext4 is 7 MB,
    with its BTF), and SHA-256 over the modules of a boot was 1.4 G of its 3.8 G
    instructions to the prompt.  Debian's kernel does not require signatures unless
    locked down (Secure Boot); an unsigned module loads, and taints the kernel ('E')."""
    if not module.endswith(SIGNATURE_MARKER):
        return module
    info = len(module) - len(SIGNATURE_MARKER) - 12
    sig_len = int.from_bytes(module[info + 8:info + 12], "big") if info >= 0 else 0
    bare = module[:info - sig_len] if 0 < sig_len < info else b""
    # (not a signature the kernel would take, or no ELF left: kept as it is)
    return bare if bare.startswith(b"\x7fELF") else module


def module_depends(path: Path) -> list[str]:
    try:
        sec = ELFFile(io.BytesIO(module_bytes(path))).get_section_by_name(".modinfo")
        info = sec.data() if sec is not None else b""
    except ELFError as e:
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


def build(modules_dir: str | None, modules=None, busybox: str = BUSYBOX,
          arch: str = "x86_64", init: str | None = None,
          signatures: bool = False) -> tuple[bytes, list[str]]:
    """The archive's bytes, and the modules it loads (in order); the modules and the
    /init are ``arch``'s unless given; the modules' signatures dropped (:func:`unsigned`)
    unless ``signatures``."""
    modules = ARCH_MODULES[arch] if modules is None else modules
    init = INITS[arch] if init is None else init
    if not os.path.isfile(busybox):
        raise ImageError(f"{busybox}: no busybox (install Debian's busybox-static)")
    cpio = Cpio()
    for d in ("bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp", "root", "mnt"):
        cpio.directory(d)
    cpio.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", init.encode(), 0o755)
    if arch == "riscv64":
        cpio.file("etc/inittab", INITTAB.encode())
    order: list[str] = []
    if modules:
        if not modules_dir or not os.path.isdir(modules_dir):
            raise ImageError(f"{modules_dir}: no kernel module directory")
        index = module_index(Path(modules_dir))
        order = load_order(modules, index)
        for name in order:
            data = module_bytes(index[name])
            cpio.file(f"lib/modules/{name}.ko", data if signatures else unsigned(data))
    cpio.file("etc/modules", "".join(f"{m}\n" for m in order).encode())
    return cpio.finish(), order


def command(args) -> int:
    """``popek initramfs``: build one for Debian's kernel of ``--arch``."""
    import sys

    from popek.files import write_atomically
    from popek.linux import debian
    modules_dir = args.modules_dir or debian.find(args.arch).modules
    busybox = args.busybox or debian.busybox(args.arch)
    data, order = build(modules_dir, tuple(args.module) if args.module else None, busybox,
                        args.arch, signatures=args.module_signatures)
    write_atomically(args.output, data)
    print(f"popek: wrote {args.output} ({len(data) >> 10} KiB): busybox, modules "
          f"{' '.join(order) or '(none)'}", file=sys.stderr)
    return 0
