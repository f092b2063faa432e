"""Emulated I/O: the VM's devices are models inside the VMM, on its own bus.

Every load or store the guest makes to a device is an exit (MmioRead /
MmioWrite, vmm/exits.py): the device sees an offset into its window, and the
ledger counts the access by device, and by register where the device names them
(``register_name(off)``: the e1000's TDT, a virtio queue notify ...).  An access that no device answers, that
crosses a device's end or is misaligned, is an access fault for the guest.
"""

from __future__ import annotations

from popek.vmm.exits import MmioRead, MmioWrite


def _detail(m, addr: int) -> str:
    """The ledger's detail for an access: the register, if the device names it."""
    name = getattr(m.device, "register_name", None)
    return name(addr - m.base) if name else m.name


class EmulatedIo:
    name = "emulated"

    def __init__(self, vm):
        self.vm = vm

    def handlers(self) -> dict:
        return {MmioRead: self.read, MmioWrite: self.write}

    def _target(self, addr: int, size: int):
        m = self.vm.bus.find(addr)
        if m is None or addr + size > m.end or addr % size:
            return None
        return m

    def read(self, vm, e: MmioRead) -> int | None:
        m = self._target(e.addr, e.size)
        if m is None:
            return None
        value = m.device.read(e.addr - m.base, e.size) & ((1 << (8 * e.size)) - 1)
        vm.ledger.record("mmio_read", _detail(m, e.addr))
        return value

    def write(self, vm, e: MmioWrite) -> bool:
        m = self._target(e.addr, e.size)
        if m is None:
            return False
        m.device.write(e.addr - m.base, e.size, e.data)
        vm.ledger.record("mmio_write", _detail(m, e.addr))
        return True

    def direct_page(self, gpa: int) -> int | None:
        """Host-physical page the VM reaches guest-physical ``gpa`` at without exits:
        none here (every device access is emulated)."""
        return None

    def stats(self) -> dict:
        return {}
