"""SBI v2.0 for guests: the paravirtual interface of the VMM (SBI spec v2.0).

Implemented: BASE (4), legacy console putchar/getchar, set_timer, shutdown (5),
TIME (6), IPI (7), RFENCE (8), HSM (9: start, stop, status), SRST (10), DBCN (12), and
popek's own hypercalls for the paravirtual guest kernel (firmware-specific
range; guests/kernel/popek_hypercall.h and docs/guest.md).

Calling convention (3.1): a7 = extension, a6 = function, a0..a5 arguments;
returns a0 = error, a1 = value.  Legacy calls (5) return a0 only.
"""

from __future__ import annotations

from popek.errors import GuestMemoryError
from popek.riscv.csrs import MIP_SSIP, MSTATUS_SIE
from popek.vmm.vcpu_page import VcpuPage

SBI_SUCCESS, SBI_ERR_FAILED, SBI_ERR_NOT_SUPPORTED, SBI_ERR_INVALID_PARAM = 0, -1, -2, -3
SBI_ERR_INVALID_ADDRESS = -5
SPEC_VERSION = 2 << 24               # 2.0
IMPL_ID = 0x706F70                   # "pop"
IMPL_VERSION = 1

EXT_BASE, EXT_TIME, EXT_IPI, EXT_RFENCE = 0x10, 0x54494D45, 0x735049, 0x52464E43
EXT_HSM, EXT_SRST, EXT_DBCN, EXT_POPEK = 0x48534D, 0x53525354, 0x4442434E, 0x0A504F50
LEGACY_SET_TIMER, LEGACY_PUTCHAR, LEGACY_GETCHAR, LEGACY_SHUTDOWN = 0x00, 0x01, 0x02, 0x08
EXTENSIONS = {EXT_BASE: "base", EXT_TIME: "time", EXT_IPI: "ipi", EXT_RFENCE: "rfence",
              EXT_HSM: "hsm", EXT_SRST: "srst", EXT_DBCN: "dbcn", EXT_POPEK: "popek",
              LEGACY_SET_TIMER: "legacy_timer", LEGACY_PUTCHAR: "legacy_putchar",
              LEGACY_GETCHAR: "legacy_getchar", LEGACY_SHUTDOWN: "legacy_shutdown"}
M64 = (1 << 64) - 1
PTE_V, PTE_R, PTE_W, PTE_X = 1, 2, 4, 8
MMU_BATCH_MAX = 64


def _err(code: int) -> int:
    return code & M64


def handle(vm, x) -> str:
    """Serve the SBI call in registers ``x`` for ``vm``; returns the extension's name."""
    ext, fid = x[17], x[16]
    a0, a1, a2 = x[10], x[11], x[12]
    name = EXTENSIONS.get(ext, "unknown")      # a guest's number: never a ledger key
    err, val = SBI_ERR_NOT_SUPPORTED, 0
    v = vm.vcpu
    if ext == EXT_BASE:
        err = SBI_SUCCESS
        val = {0: SPEC_VERSION, 1: IMPL_ID, 2: IMPL_VERSION,
               3: int(a0 in EXTENSIONS), 4: 0, 5: 0, 6: 0}.get(fid)
        if val is None:
            err, val = SBI_ERR_NOT_SUPPORTED, 0
    elif ext == EXT_TIME and fid == 0:
        v.timer = a0
        err = SBI_SUCCESS
    elif ext == LEGACY_SET_TIMER:
        v.timer = a0
        x[10] = 0
        return name
    elif ext == LEGACY_PUTCHAR:
        vm.console_write(bytes([a0 & 0xFF]))
        x[10] = 0
        return name
    elif ext == LEGACY_GETCHAR:
        x[10] = vm.console_getchar()
        return name
    elif ext == LEGACY_SHUTDOWN:
        vm.shutdown(0, "SBI legacy shutdown")
        return name
    elif ext == EXT_IPI and fid == 0:
        targets = _targets(vm, a0, a1)
        if targets is None:
            err = SBI_ERR_INVALID_PARAM
        else:
            for t in targets:                                # SSIP: the target's next run
                t.set_mip_sw(t.mip_sw | MIP_SSIP)            # takes it (or wakes from wfi)
            err = SBI_SUCCESS
    elif ext == EXT_RFENCE:
        targets = _targets(vm, a0, a1)
        if targets is None:
            err = SBI_ERR_INVALID_PARAM
        elif fid == 0:                                       # remote fence.i: coherent already
            err = SBI_SUCCESS
        elif fid in (1, 2):                                  # remote sfence.vma (.asid)
            if targets:                                      # (the vCPUs share the VM's
                _remote_sfence(vm, a2, x[13])                # shadow tables: one fence)
            err = SBI_SUCCESS
    elif ext == EXT_HSM:
        err, val = _hsm(vm, fid, a0, a1, a2)
    elif ext == EXT_SRST and fid == 0:
        if a0 in (0, 1, 2):
            vm.shutdown(0 if a1 == 0 else 1,
                        "SBI shutdown" if a0 == 0 else "SBI reboot (treated as power off)")
            err = SBI_SUCCESS
        else:
            err = SBI_ERR_INVALID_PARAM
    elif ext == EXT_DBCN:
        err, val = _dbcn(vm, fid, a0, a1, a2)
    elif ext == EXT_POPEK:
        err, val = _popek(vm, fid, a0, a1)
    x[10], x[11] = _err(err), val & M64
    return name


def _targets(vm, mask: int, base: int):
    """The started vCPUs a hart mask names (SBI 3.2: ``base`` -1 means all), or None
    if it names a hart the VM does not have.  A stopped vCPU is passed over, as
    OpenSBI passes over a stopped hart: an IPI must not wait in it for its start."""
    vcpus = vm.vcpus
    if base == M64:
        named = vcpus
    elif base >= len(vcpus) or mask >> (len(vcpus) - base):
        return None
    else:
        named = [vcpus[base + i] for i in range(len(vcpus) - base) if mask >> i & 1]
    return [v for v in named if v.started]


HSM_STARTED, HSM_STOPPED = 0, 1
SBI_ERR_ALREADY_AVAILABLE = -6


def _hsm(vm, fid, hartid, addr, opaque):
    """Hart state management for the VM's vCPUs: start, stop, status (SBI chapter 9)."""
    if fid == 1:                                             # hart_stop: the caller
        vm.vcpu.started = False
        if not any(v.started for v in vm.vcpus):             # nothing left to run it
            vm.shutdown(0, "every vCPU stopped (SBI HSM hart_stop)")
        vm.vmm.vm_stopped(vm)                                # (off the hart now)
        return SBI_SUCCESS, 0
    if fid == 3:                                             # hart_suspend: not offered
        return SBI_ERR_NOT_SUPPORTED, 0
    if hartid >= len(vm.vcpus):
        return SBI_ERR_INVALID_PARAM, 0
    target = vm.vcpus[hartid]
    if fid == 2:                                             # hart_get_status
        return SBI_SUCCESS, HSM_STARTED if target.started else HSM_STOPPED
    if fid == 0:                                             # hart_start
        if target.started:
            return SBI_ERR_ALREADY_AVAILABLE, 0
        if addr & 1 or not vm.ram.contains(addr, 2):        # (no hart has an odd pc)
            return SBI_ERR_INVALID_ADDRESS, 0
        target.start(addr, opaque)
        return SBI_SUCCESS, 0
    return SBI_ERR_NOT_SUPPORTED, 0


# A remote fence of more pages than this drops everything (Linux's own threshold): the
# work one SBI call makes the VMM do stays bounded whatever size the guest names.
FENCE_PAGES_MAX = 64


def _remote_sfence(vm, start: int, size: int) -> None:
    """SBI remote sfence.vma of [start, start + size): page by page if that is a few
    pages, else every address (as the spec's size 0 or -1 asks)."""
    first, end = start >> 12, (start + size + 0xFFF) >> 12
    if size == 0 or size == M64 or end - first > FENCE_PAGES_MAX:
        vm.memory.fence()
        return
    for page in range(first, end):
        vm.memory.fence((page << 12) & M64)


def _dbcn(vm, fid, a0, a1, a2):
    if fid == 2:                                             # write_byte
        vm.console_write(bytes([a0 & 0xFF]))
        return SBI_SUCCESS, 0
    addr = a1 | (a2 << 32)
    try:
        if fid == 0:                                         # write(num_bytes, addr)
            vm.console_write(vm.ram.read(addr, a0))
            return SBI_SUCCESS, a0
        if fid == 1:                                         # read(num_bytes, addr)
            data = vm.console_read(a0)
            vm.ram.write(addr, data)
            return SBI_SUCCESS, len(data)
    except GuestMemoryError:
        return SBI_ERR_INVALID_PARAM, 0
    return SBI_ERR_NOT_SUPPORTED, 0


def _popek(vm, fid, a0, a1):
    """popek's paravirtual MMU and interrupt hypercalls (guests/kernel/popek_hypercall.h)."""
    v = vm.vcpu
    if fid == 0:                                             # PROBE
        return SBI_SUCCESS, 1
    if fid == 1:                                             # MMU_UPDATE
        if a1 > MMU_BATCH_MAX:
            return SBI_ERR_INVALID_PARAM, 0
        done = 0
        try:
            for i in range(a1):
                pte_addr = vm.ram.read_int(a0 + 16 * i, 8)
                value = vm.ram.read_int(a0 + 16 * i + 8, 8)
                if pte_addr % 8 or not vm.ram.contains(pte_addr, 8):
                    break
                # A leaf must map the guest's own RAM or its own devices: the VMM checks
                # every entry.  (Shadow tables never point at anything else anyway.)
                if value & PTE_V and value & (PTE_R | PTE_X):
                    target = ((value >> 10) & ((1 << 44) - 1)) << 12
                    if not vm.ram.contains(target, 4096) and vm.bus.find(target) is None:
                        break
                vm.ram.write_int(pte_addr, 8, value)
                done += 1
        except GuestMemoryError:
            return SBI_ERR_INVALID_ADDRESS, done
        vm.ledger.note("pv_mmu_update", "entries", done)
        return SBI_SUCCESS, done
    if fid == 2:                                             # SET_SATP: as a csrw satp
        v.csrs.write(v, "satp", a0)
        vm.memory.fence()
        return SBI_SUCCESS, 0
    if fid == 3:                                             # TLB_FLUSH
        vm.memory.fence()
        return SBI_SUCCESS, 0
    if fid == 4:                                             # IRQ_ENABLE: sstatus.SIE
        # Set directly, not through the sstatus CSR: the PV guest's point is to skip
        # what a csrw sstatus costs (and SIE decides nothing about translation).
        if a0:
            v.mstatus |= MSTATUS_SIE
        else:
            v.mstatus &= ~MSTATUS_SIE
        return SBI_SUCCESS, 0
    if fid == 5:                                             # VCPU_PAGE (vcpu_page.py)
        if not vm.cpu.VCPU_PAGE:
            return SBI_ERR_NOT_SUPPORTED, 0
        if a0 == 0:
            v.page = None
            return SBI_SUCCESS, 0
        if a0 % 4096 or not vm.ram.contains(a0, 4096):
            return SBI_ERR_INVALID_ADDRESS, 0
        v.page = VcpuPage(vm.ram, a0)           # (written when the guest resumes)
        return SBI_SUCCESS, 0
    if fid in (7, 8, 9):                                     # a driver domain's (blkif.h)
        if vm.domain is None:
            return SBI_ERR_NOT_SUPPORTED, 0
        return vm.domain.hypercall(vm, fid, a0, a1)
    if fid == 6:                                             # SYNC: the exit itself pulled
        if a0 & 1 and v.page is not None:                    # (and the page's FS, as it is)
            v.page.take_fs(v, vm.vmm.hart)
        return SBI_SUCCESS, 0
    return SBI_ERR_NOT_SUPPORTED, 0
