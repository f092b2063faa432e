"""Shared fixtures: building the RISC-V test programs, finding Debian's firmware."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASM_DIR = ROOT / "tests" / "riscv" / "asm"
H_DIR = ROOT / "tests" / "riscv" / "h"
OPENSBI = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.elf")
UBOOT_S = Path("/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf")
UBOOT_M = Path("/usr/lib/u-boot/qemu-riscv64/uboot.elf")


@pytest.fixture(scope="session", autouse=True)
def private_code_cache(tmp_path_factory):
    """`popek run` started by a test keeps its compiled translations in a directory of
    the test session's own, never in the user's ~/.cache."""
    saved = os.environ.get("POPEK_CODE_CACHE")
    os.environ["POPEK_CODE_CACHE"] = str(tmp_path_factory.mktemp("code-cache"))
    yield
    if saved is None:
        del os.environ["POPEK_CODE_CACHE"]
    else:
        os.environ["POPEK_CODE_CACHE"] = saved


def require(path: Path, package: str) -> Path:
    """Tests depend on the set-up having installed Debian packages: say which, loudly."""
    if not path.exists():
        pytest.fail(f"{path} is missing: install Debian's {package} (scripts/setup.sh does)")
    return path


@pytest.fixture(scope="session")
def asm_build() -> Path:
    """Build tests/riscv/asm with the cross compiler; return the build directory."""
    if shutil.which("riscv64-unknown-elf-gcc") is None:
        pytest.fail("riscv64-unknown-elf-gcc is missing: install Debian's "
                    "gcc-riscv64-unknown-elf (scripts/setup.sh does)")
    jobs = str(os.cpu_count() or 1)
    r = subprocess.run(["make", "-s", "-j", jobs, "-C", str(ASM_DIR)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"building the RISC-V test programs failed:\n{r.stdout}{r.stderr}")
    return ASM_DIR / "build"


@pytest.fixture(scope="session")
def h_build() -> Path:
    """Build tests/riscv/h (the H extension's programs); return the build directory."""
    r = subprocess.run(["make", "-s", "-C", str(H_DIR)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"building the H extension's programs failed:\n{r.stdout}{r.stderr}")
    return H_DIR / "build"


@pytest.fixture(scope="session")
def vmm_programs() -> Path:
    """Build tests/riscv/vmm (S-mode programs for VMM tests); return the build directory."""
    r = subprocess.run(["make", "-s", "-C", str(ROOT / "tests" / "riscv" / "vmm")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"building the VMM test programs failed:\n{r.stdout}{r.stderr}")
    return ROOT / "tests" / "riscv" / "vmm" / "build"


@pytest.fixture(scope="session")
def guest_build() -> Path:
    """Build guests/ (the native and the paravirtual kernel); return the build directory."""
    if shutil.which("riscv64-unknown-elf-gcc") is None:
        pytest.fail("riscv64-unknown-elf-gcc is missing: install Debian's "
                    "gcc-riscv64-unknown-elf (scripts/setup.sh does)")
    r = subprocess.run(["make", "-s", "-C", str(ROOT / "guests"), "all-flavours"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"building the guest kernel failed:\n{r.stdout}{r.stderr}")
    return ROOT / "guests" / "build"


@pytest.fixture(scope="session")
def opensbi() -> Path:
    return require(OPENSBI, "opensbi")


@pytest.fixture(scope="session")
def uboot_smode() -> Path:
    return require(UBOOT_S, "u-boot-qemu")


@pytest.fixture(scope="session")
def uboot_mmode() -> Path:
    return require(UBOOT_M, "u-boot-qemu")


@pytest.fixture
def disk(tmp_path):
    """A 4 MiB disk image for a VM, marked at its start (the VMM tests)."""
    img = tmp_path / "guest.img"
    img.write_bytes(b"POPEK-VMM-DISK!!" + bytes((4 << 20) - 16))
    return img


@pytest.fixture
def disk_4m(tmp_path) -> Path:
    """A zeroed 4 MiB raw disk image (our guest OS's self-test and block benchmarks
    want at least 2.5 MiB)."""
    img = tmp_path / "disk.img"
    img.write_bytes(bytes(4 << 20))
    return img


@pytest.fixture(scope="session")
def x86_guests() -> Path:
    """Build guests/x86 (tiny x86-64 guests for the KVM backend); the build directory."""
    r = subprocess.run(["make", "-s", "-C", str(ROOT / "guests" / "x86")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"building the x86 test guests failed:\n{r.stdout}{r.stderr}")
    return ROOT / "guests" / "x86" / "build"
