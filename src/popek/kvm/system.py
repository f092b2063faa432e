"""A thin layer over /dev/kvm, mirroring the kernel's file descriptors:
:class:`Kvm` (the system) → :class:`KvmVm` → :class:`KvmVcpu`, one method per
ioctl, failures raised as :class:`KvmError` naming the ioctl and errno."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os

from popek.errors import PopekError
from popek.kvm import abi

DEVICE = "/dev/kvm"


class KvmError(PopekError):
    def __init__(self, ioctl: int, err: int):
        self.ioctl, self.errno = abi.IOCTL_NAMES.get(ioctl, hex(ioctl)), err
        super().__init__(f"KVM_{self.ioctl} failed: {errno.errorcode.get(err, err)} "
                         f"({os.strerror(err)})")


class KvmUnavailable(PopekError):
    """No usable /dev/kvm on this host."""


def _ioctl(fd: int, request: int, arg=0):
    if isinstance(arg, int) and arg >= 1 << 31:
        arg -= 1 << 32              # fcntl.ioctl passes a C int; the kernel reads 32 bits
    try:
        return fcntl.ioctl(fd, request, arg)
    except OSError as e:
        raise KvmError(request, e.errno) from None


class Kvm:
    def __init__(self, path: str | None = None):
        path = path or DEVICE
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KvmUnavailable(f"{path} does not exist: this host offers no KVM") from None
        except PermissionError:
            raise KvmUnavailable(f"{path}: permission denied (are you in the kvm group?)") from None
        version = _ioctl(self.fd, abi.GET_API_VERSION)
        if version != 12:
            raise KvmUnavailable(f"{path}: KVM API version {version}, popek needs 12")
        self.api_version = version

    def check_extension(self, cap: int) -> int:
        return _ioctl(self.fd, abi.CHECK_EXTENSION, cap)

    def vcpu_mmap_size(self) -> int:
        return _ioctl(self.fd, abi.GET_VCPU_MMAP_SIZE)

    def supported_cpuid(self) -> abi.Cpuid2:
        c = abi.Cpuid2(nent=abi.MAX_CPUID_ENTRIES)
        _ioctl(self.fd, abi.GET_SUPPORTED_CPUID, c)
        return c

    def create_vm(self) -> "KvmVm":
        return KvmVm(self, _ioctl(self.fd, abi.CREATE_VM, 0))

    def close(self) -> None:
        os.close(self.fd)


class KvmVm:
    def __init__(self, kvm: Kvm, fd: int):
        self.kvm, self.fd = kvm, fd
        self.slots = 0

    def set_user_memory_region(self, guest_phys: int, backing: mmap.mmap) -> int:
        """Give the guest ``backing`` (an mmap) at ``guest_phys``; returns the slot."""
        addr = ctypes.addressof(ctypes.c_char.from_buffer(backing))
        region = abi.UserspaceMemoryRegion(self.slots, 0, guest_phys, len(backing), addr)
        _ioctl(self.fd, abi.SET_USER_MEMORY_REGION, region)
        self.slots += 1
        return self.slots - 1

    def set_tss_addr(self, addr: int) -> None:
        """Three pages of guest-physical space VMX needs for real-mode emulation."""
        _ioctl(self.fd, abi.SET_TSS_ADDR, addr)

    def set_identity_map_addr(self, addr: int) -> None:
        _ioctl(self.fd, abi.SET_IDENTITY_MAP_ADDR, ctypes.c_uint64(addr))

    def create_irqchip(self) -> None:
        """In-kernel PIC pair, IOAPIC and per-vCPU local APICs."""
        _ioctl(self.fd, abi.CREATE_IRQCHIP)

    def create_pit2(self) -> None:
        """In-kernel i8254 PIT (ports 0x40-0x43, and the speaker port 0x61)."""
        _ioctl(self.fd, abi.CREATE_PIT2, abi.PitConfig(flags=abi.PIT_SPEAKER_DUMMY))

    def irq_line(self, irq: int, level: bool) -> None:
        """Drive an interrupt line of the in-kernel PIC/IOAPIC (GSI ``irq``)."""
        _ioctl(self.fd, abi.IRQ_LINE, abi.IrqLevel(irq, int(level)))

    def ioeventfd(self, addr: int, fd: int, assign: bool = True) -> None:
        """Have KVM signal eventfd ``fd`` at a guest write of any size to MMIO address
        ``addr``, instead of an exit to popek (``assign`` False: stop)."""
        flags = 0 if assign else abi.IOEVENTFD_FLAG_DEASSIGN
        _ioctl(self.fd, abi.IOEVENTFD, abi.IoEventFd(addr=addr, len=0, fd=fd, flags=flags))

    def irqfd(self, fd: int, gsi: int, resamplefd: int, assign: bool = True) -> None:
        """Have a write to eventfd ``fd`` raise GSI ``gsi`` inside KVM, as a level line
        lowered at the guest's EOI, which KVM tells through ``resamplefd``."""
        flags = abi.IRQFD_FLAG_RESAMPLE if assign else abi.IRQFD_FLAG_DEASSIGN
        _ioctl(self.fd, abi.IRQFD, abi.IrqFd(fd=fd, gsi=gsi, flags=flags,
                                             resamplefd=resamplefd if assign else 0))

    def create_vcpu(self, index: int = 0) -> "KvmVcpu":
        return KvmVcpu(self, _ioctl(self.fd, abi.CREATE_VCPU, index))

    def close(self) -> None:
        os.close(self.fd)


class KvmVcpu:
    def __init__(self, vm: KvmVm, fd: int):
        self.vm, self.fd = vm, fd
        self.run_area = mmap.mmap(fd, vm.kvm.vcpu_mmap_size(), mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)

    def get_regs(self) -> abi.Regs:
        r = abi.Regs()
        _ioctl(self.fd, abi.GET_REGS, r)
        return r

    def set_regs(self, r: abi.Regs) -> None:
        _ioctl(self.fd, abi.SET_REGS, r)

    def get_sregs(self) -> abi.Sregs:
        s = abi.Sregs()
        _ioctl(self.fd, abi.GET_SREGS, s)
        return s

    def set_sregs(self, s: abi.Sregs) -> None:
        _ioctl(self.fd, abi.SET_SREGS, s)

    def get_vcpu_events(self) -> abi.VcpuEvents:
        e = abi.VcpuEvents()
        _ioctl(self.fd, abi.GET_VCPU_EVENTS, e)
        return e

    def set_vcpu_events(self, e: abi.VcpuEvents) -> None:
        _ioctl(self.fd, abi.SET_VCPU_EVENTS, e)

    def get_fpu(self) -> abi.Fpu:
        f = abi.Fpu()
        _ioctl(self.fd, abi.GET_FPU, f)
        return f

    def set_fpu(self, f: abi.Fpu) -> None:
        _ioctl(self.fd, abi.SET_FPU, f)

    def set_mp_state(self, state: int) -> None:
        _ioctl(self.fd, abi.SET_MP_STATE, abi.MpState(state))

    def tsc_khz(self) -> int:
        """The guest TSC's frequency in kHz."""
        return _ioctl(self.fd, abi.GET_TSC_KHZ)

    def translate(self, linear: int) -> int | None:
        """The guest-physical address of a guest-virtual one, or None if unmapped."""
        t = abi.Translation(linear_address=linear)
        _ioctl(self.fd, abi.TRANSLATE, t)
        return t.physical_address if t.valid else None

    def set_cpuid2(self, c: abi.Cpuid2) -> None:
        _ioctl(self.fd, abi.SET_CPUID2, c)

    def run(self) -> int:
        """KVM_RUN until the next exit to user space; returns the exit reason
        (EXIT_INTR when a signal cut the run short)."""
        try:
            _ioctl(self.fd, abi.RUN, 0)
        except KvmError as e:
            if e.errno != errno.EINTR:
                raise
            return abi.EXIT_INTR
        return int.from_bytes(self.run_area[abi.RUN_EXIT_REASON:abi.RUN_EXIT_REASON + 4], "little")

    def close(self) -> None:
        self.run_area.close()
        os.close(self.fd)
