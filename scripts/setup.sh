#!/usr/bin/env bash
# Everything popek needs on a fresh Debian machine: Debian packages (cross
# compiler, firmware, QEMU for comparison) and a virtualenv with popek in it.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  make                      # builds the RISC-V test programs
  gcc                       # the tiny x86-64 guests of the KVM backend (guests/x86)
  gcc-riscv64-unknown-elf   # cross compiler for tests/ and guests/
  opensbi                   # M-mode firmware (fw_jump) booted by default
  u-boot-qemu               # S-mode and M-mode U-Boot for the virt board
  qemu-system-misc          # qemu-system-riscv64, the peer in bench/
  qemu-system-x86           # qemu-system-x86_64 -accel kvm, the KVM backend's peer in bench/
  busybox-static            # the userland of the initramfs for Debian's kernel (KVM backend)
  device-tree-compiler      # dtc, to read what --dtb-out writes
  e2fsprogs                 # mkfs.ext4 and debugfs: the Linux guest's disk in tests
  debian-archive-keyring    # checks the riscv64 packages fetched for the Linux guest
  python3-venv
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# Reinstall only when the project's metadata changed since the last install.
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing popek and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch .venv/.installed
fi

# Debian's x86-64 kernel, the KVM backend's first real guest: the package is
# unpacked into .cache/debian-kernel (no root needed, the host's /boot untouched).
KCACHE=.cache/debian-kernel
if [ ! -f "$KCACHE/.unpacked" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then
    echo "setup: apt knows no linux-image-amd64; running apt-get update"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  echo "setup: fetching Debian's kernel ($pkg) into $KCACHE"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1)
  rm -rf "$KCACHE" && mkdir -p "$KCACHE"
  dpkg-deb -x "$tmp"/*.deb "$KCACHE"
  rm -rf "$tmp"
  touch "$KCACHE/.unpacked"
fi

# Debian 13's riscv64 kernel and busybox-static, the simulated machine's Linux guest:
# fetched with apt from the mirror this machine's apt uses, with a private apt state
# (the host's apt is untouched), unpacked into .cache/debian-riscv64.
if [ ! -f .cache/debian-riscv64/.unpacked ]; then
  python3 scripts/fetch_debian.py --arch riscv64 --suite trixie --dest .cache/debian-riscv64 \
    linux-image-riscv64 busybox-static
fi
