#!/usr/bin/env python3
"""Fetch Debian packages of another architecture or release (Debian 13's riscv64
kernel and busybox-static, for the simulated RISC-V machine's Linux guest) and
unpack them into the project's cache.

apt does the work, from the Debian mirror this machine's apt already uses (read
from apt's own configuration: the index targets of its "Debian" repository), but
with a private configuration and state (lists, package cache, no dpkg status),
so the host's apt, its architectures and its installed packages are untouched.
The archive's signatures are checked with Debian's keyring, as apt always does.

    scripts/fetch_debian.py --arch riscv64 --suite trixie --dest .cache/debian-riscv64 \\
        linux-image-riscv64 busybox-static

A metapackage (linux-image-riscv64) is replaced by the package it depends on (the
versioned kernel).  Standard library only: it runs before popek's venv exists.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def fail(msg: str) -> None:
    print(f"fetch_debian: {msg}", file=sys.stderr)
    sys.exit(1)


def host_mirror() -> str:
    """The URI of the Debian archive the host's apt uses (not its security archive)."""
    try:
        out = subprocess.run(["apt-get", "indextargets", "--format",
                              "$(REPO_URI)\t$(LABEL)\t$(CODENAME)", "Identifier: Packages"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"cannot ask apt for its sources ({e})")
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    for uri, label, _ in rows:                     # after apt-get update: labelled
        if label == "Debian":
            return uri.rstrip("/")
    for uri, _, codename in rows:                  # before it: by suite name
        if not codename.endswith(("-security", "-updates", "-backports")):
            return uri.rstrip("/")
    fail("apt has no Debian archive configured (see /etc/apt/sources.list.d/)")


class PrivateApt:
    """apt-get and apt-cache with their own sources, lists and cache under ``root``."""

    def __init__(self, root: Path, mirror: str, suite: str, arch: str):
        self.root = root
        for d in ("lists/partial", "cache/archives/partial"):
            (root / d).mkdir(parents=True, exist_ok=True)
        sources = root / "sources.list"
        sources.write_text(f"deb [arch={arch} signed-by={KEYRING}] {mirror} {suite} main\n")
        self.options = [
            "-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State={root}", "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", "Dir::State::status=/dev/null", "-o", f"Dir::Cache={root / 'cache'}",
            "-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures::={arch}",
            "-o", "APT::Sandbox::User=root", "-q"]

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        r = subprocess.run([tool, *self.options, *args], capture_output=True, text=True, cwd=cwd)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
            fail(f"{tool} {args[0]} failed: {last}")
        return r.stdout

    def concrete(self, name: str) -> str:
        """``name``, or for a metapackage of a kernel the versioned package it stands for."""
        out = self.run("apt-cache", "depends", name)
        for line in out.splitlines():
            dep = line.strip().removeprefix("Depends: ")
            if line.strip().startswith("Depends:") and dep.startswith(name.rsplit("-", 1)[0]):
                return dep
        return name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", required=True)
    ap.add_argument("--suite", required=True)
    ap.add_argument("--dest", required=True, type=Path)
    ap.add_argument("packages", nargs="+")
    args = ap.parse_args()
    stamp = args.dest / ".unpacked"
    if stamp.exists():
        return
    mirror = host_mirror()
    state = args.dest.parent / f".apt-{args.arch}-{args.suite}"
    apt = PrivateApt(state.resolve(), mirror, args.suite, args.arch)
    print(f"setup: apt update for Debian {args.suite} {args.arch} (private state in {state})",
          flush=True)
    apt.run("apt-get", "update")
    names = [apt.concrete(p) for p in args.packages]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"setup: downloading {' '.join(names)}", flush=True)
        apt.run("apt-get", "download", *names, cwd=Path(tmp))
        if args.dest.exists():
            shutil.rmtree(args.dest)
        args.dest.mkdir(parents=True)
        for deb in sorted(Path(tmp).glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(args.dest)], check=True)
    stamp.write_text("".join(f"{n}\n" for n in names))
    print(f"setup: unpacked into {args.dest}", flush=True)


if __name__ == "__main__":
    main()
