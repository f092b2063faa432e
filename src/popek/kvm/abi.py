"""The KVM ABI as popek uses it: ioctl numbers and structures
(Documentation/virt/kvm/api.rst; include/uapi/linux/kvm.h, x86 variants)."""

from __future__ import annotations

import ctypes

KVMIO = 0xAE
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (KVMIO << 8) | nr


def _io(nr):
    return _ioc(_IOC_NONE, nr, 0)


def _iow(nr, struct):
    return _ioc(_IOC_WRITE, nr, ctypes.sizeof(struct))


def _ior(nr, struct):
    return _ioc(_IOC_READ, nr, ctypes.sizeof(struct))


def _iowr(nr, struct):
    return _ioc(_IOC_READ | _IOC_WRITE, nr, ctypes.sizeof(struct))


class UserspaceMemoryRegion(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("guest_phys_addr", ctypes.c_uint64), ("memory_size", ctypes.c_uint64),
                ("userspace_addr", ctypes.c_uint64)]


class Regs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in
                ("rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip rflags").split()]


class Segment(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint32),
                ("selector", ctypes.c_uint16), ("type", ctypes.c_uint8),
                ("present", ctypes.c_uint8), ("dpl", ctypes.c_uint8), ("db", ctypes.c_uint8),
                ("s", ctypes.c_uint8), ("l", ctypes.c_uint8), ("g", ctypes.c_uint8),
                ("avl", ctypes.c_uint8), ("unusable", ctypes.c_uint8), ("padding", ctypes.c_uint8)]


class DTable(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint16),
                ("padding", ctypes.c_uint16 * 3)]


class Sregs(ctypes.Structure):
    _fields_ = [("cs", Segment), ("ds", Segment), ("es", Segment), ("fs", Segment),
                ("gs", Segment), ("ss", Segment), ("tr", Segment), ("ldt", Segment),
                ("gdt", DTable), ("idt", DTable),
                ("cr0", ctypes.c_uint64), ("cr2", ctypes.c_uint64), ("cr3", ctypes.c_uint64),
                ("cr4", ctypes.c_uint64), ("cr8", ctypes.c_uint64), ("efer", ctypes.c_uint64),
                ("apic_base", ctypes.c_uint64), ("interrupt_bitmap", ctypes.c_uint64 * 4)]


class CpuidEntry2(ctypes.Structure):
    _fields_ = [("function", ctypes.c_uint32), ("index", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("eax", ctypes.c_uint32), ("ebx", ctypes.c_uint32),
                ("ecx", ctypes.c_uint32), ("edx", ctypes.c_uint32),
                ("padding", ctypes.c_uint32 * 3)]


MAX_CPUID_ENTRIES = 256


class Cpuid2(ctypes.Structure):
    _fields_ = [("nent", ctypes.c_uint32), ("padding", ctypes.c_uint32),
                ("entries", CpuidEntry2 * MAX_CPUID_ENTRIES)]


class _Cpuid2Header(ctypes.Structure):     # the ioctl number encodes the header's size
    _fields_ = [("nent", ctypes.c_uint32), ("padding", ctypes.c_uint32)]


class PitConfig(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint32), ("pad", ctypes.c_uint32 * 15)]


class IrqLevel(ctypes.Structure):
    _fields_ = [("irq", ctypes.c_uint32), ("level", ctypes.c_uint32)]


class IoEventFd(ctypes.Structure):
    """struct kvm_ioeventfd: a guest write to ``addr`` signals eventfd ``fd`` inside KVM
    (``len`` 0: a write of any size; with DATAMATCH, only one of value ``datamatch``)."""
    _fields_ = [("datamatch", ctypes.c_uint64), ("addr", ctypes.c_uint64),
                ("len", ctypes.c_uint32), ("fd", ctypes.c_int32), ("flags", ctypes.c_uint32),
                ("pad", ctypes.c_uint8 * 36)]


IOEVENTFD_FLAG_DATAMATCH, IOEVENTFD_FLAG_PIO, IOEVENTFD_FLAG_DEASSIGN = 1, 2, 4


class IrqFd(ctypes.Structure):
    """struct kvm_irqfd: a write to eventfd ``fd`` raises GSI ``gsi`` inside KVM; with
    RESAMPLE the line is a level one, lowered at the guest's EOI, which then signals
    ``resamplefd`` (so the VMM can raise it again if the device still wants it)."""
    _fields_ = [("fd", ctypes.c_uint32), ("gsi", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("resamplefd", ctypes.c_uint32), ("pad", ctypes.c_uint8 * 16)]


IRQFD_FLAG_DEASSIGN, IRQFD_FLAG_RESAMPLE = 1, 2


class VcpuEvents(ctypes.Structure):
    """struct kvm_vcpu_events: pending exception, interrupt, NMI and SMI state."""
    _fields_ = [("exc_injected", ctypes.c_uint8), ("exc_nr", ctypes.c_uint8),
                ("exc_has_error_code", ctypes.c_uint8), ("exc_pending", ctypes.c_uint8),
                ("exc_error_code", ctypes.c_uint32),
                ("int_injected", ctypes.c_uint8), ("int_nr", ctypes.c_uint8),
                ("int_soft", ctypes.c_uint8), ("int_shadow", ctypes.c_uint8),
                ("nmi_injected", ctypes.c_uint8), ("nmi_pending", ctypes.c_uint8),
                ("nmi_masked", ctypes.c_uint8), ("nmi_pad", ctypes.c_uint8),
                ("sipi_vector", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("smi", ctypes.c_uint8 * 4), ("triple_fault_pending", ctypes.c_uint8),
                ("reserved", ctypes.c_uint8 * 26), ("exception_has_payload", ctypes.c_uint8),
                ("exception_payload", ctypes.c_uint64)]


class Fpu(ctypes.Structure):
    """struct kvm_fpu: x87 state, the XMM registers and MXCSR."""
    _fields_ = [("fpr", ctypes.c_uint8 * 128), ("fcw", ctypes.c_uint16),
                ("fsw", ctypes.c_uint16), ("ftwx", ctypes.c_uint8), ("pad1", ctypes.c_uint8),
                ("last_opcode", ctypes.c_uint16), ("last_ip", ctypes.c_uint64),
                ("last_dp", ctypes.c_uint64), ("xmm", ctypes.c_uint8 * 256),
                ("mxcsr", ctypes.c_uint32), ("pad2", ctypes.c_uint32)]


class Translation(ctypes.Structure):
    _fields_ = [("linear_address", ctypes.c_uint64), ("physical_address", ctypes.c_uint64),
                ("valid", ctypes.c_uint8), ("writeable", ctypes.c_uint8),
                ("usermode", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 5)]


class MpState(ctypes.Structure):
    _fields_ = [("mp_state", ctypes.c_uint32)]


# struct kvm_run: the fields popek reads, at their offsets.
RUN_IMMEDIATE_EXIT = 1         # __u8 immediate_exit: KVM_RUN returns EINTR at once
RUN_EXIT_REASON = 8            # __u32 exit_reason
RUN_EXIT_UNION = 32            # the exit-specific union
# io: __u8 direction, __u8 size, __u16 port, __u32 count, __u64 data_offset
# mmio: __u64 phys_addr, __u8 data[8], __u32 len, __u8 is_write
EXIT_IO_IN, EXIT_IO_OUT = 0, 1

EXIT_REASONS = {0: "unknown", 1: "exception", 2: "io", 3: "hypercall", 4: "debug", 5: "hlt",
                6: "mmio", 7: "irq_window_open", 8: "shutdown", 9: "fail_entry", 10: "intr",
                17: "internal_error", 24: "system_event"}
EXIT_IO, EXIT_HLT, EXIT_MMIO, EXIT_SHUTDOWN = 2, 5, 6, 8
EXIT_INTR = 10
EXIT_FAIL_ENTRY, EXIT_INTERNAL_ERROR, EXIT_SYSTEM_EVENT = 9, 17, 24

# struct kvm_run.internal: __u32 suberror, __u32 ndata, __u64 data[16]
INTERNAL_ERROR_EMULATION = 1
MP_STATE_RUNNABLE = 0
PIT_SPEAKER_DUMMY = 1        # KVM_PIT_SPEAKER_DUMMY: port 0x61 handled in the kernel

# ioctls, by the object they act on.
GET_API_VERSION = _io(0x00)
CREATE_VM = _io(0x01)
CHECK_EXTENSION = _io(0x03)
GET_VCPU_MMAP_SIZE = _io(0x04)
GET_SUPPORTED_CPUID = _iowr(0x05, _Cpuid2Header)
SET_USER_MEMORY_REGION = _iow(0x46, UserspaceMemoryRegion)
CREATE_VCPU = _io(0x41)
CREATE_IRQCHIP = _io(0x60)
IRQ_LINE = _iow(0x61, IrqLevel)
SET_TSS_ADDR = _io(0x47)
SET_IDENTITY_MAP_ADDR = _iow(0x48, ctypes.c_uint64)
CREATE_PIT2 = _iow(0x77, PitConfig)
IOEVENTFD = _iow(0x79, IoEventFd)
IRQFD = _iow(0x76, IrqFd)
GET_VCPU_EVENTS = _ior(0x9F, VcpuEvents)
SET_VCPU_EVENTS = _iow(0xA0, VcpuEvents)
GET_MP_STATE = _ior(0x98, MpState)
SET_MP_STATE = _iow(0x99, MpState)
TRANSLATE = _iowr(0x85, Translation)
GET_TSC_KHZ = _io(0xA3)
GET_FPU = _ior(0x8C, Fpu)
SET_FPU = _iow(0x8D, Fpu)
RUN = _io(0x80)
GET_REGS = _ior(0x81, Regs)
SET_REGS = _iow(0x82, Regs)
GET_SREGS = _ior(0x83, Sregs)
SET_SREGS = _iow(0x84, Sregs)
SET_CPUID2 = _iow(0x90, _Cpuid2Header)

IOCTL_NAMES = {v: k for k, v in dict(globals()).items()
               if k.isupper() and isinstance(v, int) and v > 0xFFFF}

# Capabilities worth reporting (KVM_CAP_*).
CAPS = {"irqchip": 0, "hlt": 1, "user_memory": 3, "set_tss_addr": 4, "ext_cpuid": 7,
        "nr_vcpus": 9, "nr_memslots": 10, "pit": 11, "sync_mmu": 16, "ioeventfd": 36,
        "max_vcpus": 66, "pit2": 33, "xsave": 55, "immediate_exit": 136,
        "ioeventfd_any_length": 122, "irqfd": 32, "irqfd_resample": 82}
