"""The virt board's devices behind a CPU, shared by the bare board and by VMs.

:class:`VirtLayout` is the address map (QEMU's hw/riscv/virt.c); :class:`Platform`
builds the devices at those addresses on a bus: the test/syscon device, the
goldfish RTC, the PLIC, the UART, the disks (virtio-blk, or NVMe on PCIe) and the
other devices.  The bare board adds
the reset ROM and the CLINT (M-mode devices); a VM under the VMM gets just this.
"""

from __future__ import annotations

from popek.clock import TIMEBASE_HZ
from popek.devices.bus import Bus
from popek.devices.e1000 import E1000
from popek.devices.goldfish_rtc import GoldfishRtc
from popek.devices.nvme import Nvme
from popek.devices.options import virtio_model
from popek.devices.syscon import SysCon
from popek.devices.uart16550 import Uart16550
from popek.devices.virtio.blk import VirtioBlk
from popek.devices.virtio.console import VirtioConsole
from popek.devices.virtio.mmio import EmptyVirtioSlot, VirtioMmio
from popek.devices.virtio.pci import VirtioPci
from popek.errors import ConfigError
from popek.riscv import plic as plic_mod
from popek.riscv.pcie import VirtPcie
from popek.riscv.plic import Plic


MAX_PENDING_INPUT = 64 << 10    # host input waiting for the guest's UART to take it


class VirtLayout:
    ROM_BASE = 0x1000
    TEST_BASE = 0x100000
    RTC_BASE, RTC_IRQ = 0x101000, 11
    CLINT_BASE = 0x2000000
    PLIC_BASE, PLIC_SIZE, PLIC_NDEV = 0xC000000, plic_mod.SIZE, plic_mod.NUM_SOURCES
    UART_BASE, UART_IRQ = 0x10000000, 10
    VIRTIO_BASE, VIRTIO_IRQ, VIRTIO_SLOTS = 0x10001000, 1, 8
    RAM_BASE = 0x80000000
    TIMEBASE_HZ = TIMEBASE_HZ

    def virtio_slots(self):
        """Every virtio-mmio slot, as QEMU's device tree lists them: with a device or
        empty (DeviceID 0)."""
        return [(self.VIRTIO_BASE + 0x1000 * i, self.VIRTIO_IRQ + i)
                for i in range(self.VIRTIO_SLOTS)]


class Platform:
    """Devices on a bus.  ``owner`` provides shutdown(code, why), request_reset()
    and rtc_ns(); ``interrupt_targets`` are what the PLIC drives (harts or vCPUs).
    ``devices`` (:class:`popek.devices.options.DeviceSpec`) are NICs and RNGs on PCIe or
    virtio-mmio; their netdevs come from the run's ``network``; ``virtio_models`` are
    device models made elsewhere (a VMM's disk frontends), on virtio-mmio after the
    drives."""

    def __init__(self, owner, ram, console_write, drives, interrupt_targets, bus=None,
                 devices=(), network=None, virtio_models=()):
        L = VirtLayout
        self.bus = bus if bus is not None else Bus()
        self.plic = Plic(interrupt_targets)
        self.uart = Uart16550(console_write, self._irq(L.UART_IRQ))
        self.rtc = GoldfishRtc(owner.rtc_ns, self._irq(L.RTC_IRQ))
        self.syscon = SysCon(owner)
        self.pcie = VirtPcie(self.plic, ram.end)
        mmio_wanted = sum(getattr(d, "interface", "virtio") in ("virtio", "virtio-mmio")
                          for d in drives) \
            + sum(d.transport == "mmio" for d in devices) + len(virtio_models)
        if mmio_wanted > L.VIRTIO_SLOTS:      # before any disk is opened (and locked)
            raise ConfigError(f"at most {L.VIRTIO_SLOTS} virtio-mmio devices (the board's "
                              "slots; if=virtio-pci and the -pci devices go on PCIe)")
        if devices and network is None:
            raise ConfigError("--device needs the run's network (a --netdev)")
        self.drives = []
        self.models = []                      # the other devices' models (NICs, RNGs ...)
        self.virtio = []                      # every virtio transport, served between slices
        self.pending_input = bytearray()      # typed, not yet taken by the UART
        self.input_dropped = 0
        mmio = []                             # models for the virtio-mmio slots, in order
        try:
            for d in drives:
                if getattr(d, "interface", "virtio") == "nvme":   # a PCI function, not virtio
                    self.models.append(self.pcie.plug(
                        lambda irq, d=d: Nvme(ram, d.path, irq, d.readonly)))
                    continue
                blk = VirtioBlk(ram, d.path, d.readonly)
                self.drives.append(blk)
                if getattr(d, "interface", "virtio") == "virtio-pci":
                    self._plug_pci(blk, ram)
                else:
                    mmio.append(blk)
            for model in virtio_models:
                self.models.append(model)
                mmio.append(model)
            for spec in devices:
                if spec.driver == "vhost-user-blk-pci":
                    raise ConfigError("--device vhost-user-blk-pci is for --backend kvm (the "
                                      "simulated machine's driver domains: --drivers domains)")
                if spec.driver == "e1000":       # a PCI function of its own, not virtio
                    backend, mac = network.nic(spec)
                    self.models.append(self.pcie.plug(
                        lambda irq: E1000(ram, mac, backend, irq), spec.options.get("addr")))
                    continue
                model = virtio_model(spec, ram, network, console_write)
                self.models.append(model)
                if spec.transport == "mmio":
                    mmio.append(model)
                else:
                    self._plug_pci(model, ram, spec.options.get("addr"))
        except ValueError as e:               # (a PCI slot taken twice)
            self.close()
            raise ConfigError(str(e)) from None
        except BaseException:
            self.close()                      # the disks opened so far, and their locks
            raise
        bus = self.bus
        bus.add(L.TEST_BASE, SysCon.SIZE, self.syscon, "test")
        bus.add(L.RTC_BASE, GoldfishRtc.SIZE, self.rtc, "rtc")
        bus.add(L.PLIC_BASE, L.PLIC_SIZE, self.plic, "plic")
        bus.add(L.UART_BASE, Uart16550.SIZE, self.uart, "uart")
        for i in range(L.VIRTIO_SLOTS):
            if i < len(mmio):
                dev = VirtioMmio(mmio[i], ram, self._irq(L.VIRTIO_IRQ + i))
                self.virtio.append(dev)
            else:
                dev = EmptyVirtioSlot()
            bus.add(L.VIRTIO_BASE + 0x1000 * i, VirtioMmio.SIZE, dev, f"virtio{i}")
        self.pcie.attach(bus)
        self.virtio_console = next((m for m in self.models if isinstance(m, VirtioConsole)),
                                   None)

    def _plug_pci(self, model, ram, slot=None) -> None:
        fn = self.pcie.plug(lambda irq: VirtioPci(model, ram, 0, irq), slot)
        self.virtio.append(fn.t)

    def poll_input(self, console) -> None:
        """Host input typed at ``console`` into the UART as it has room (or into the
        virtio console, once its driver is ready, where there is one).  The console is
        read every time (its Ctrl-A x must work even when the guest never reads its
        UART); what the UART has no room for waits, up to ``MAX_PENDING_INPUT`` bytes,
        and beyond that is dropped, as a serial line overruns."""
        data = console.poll()
        if data:
            room = MAX_PENDING_INPUT - len(self.pending_input)
            self.pending_input += data[:room]
            self.input_dropped += max(0, len(data) - room)
        hvc = self.virtio_console
        if self.pending_input and hvc is not None and hvc.ready_for_input:
            hvc.push_input(bytes(self.pending_input))      # (bounded there, as a UART's)
            self.pending_input.clear()
        elif self.pending_input and self.uart.wants_input():
            before = len(self.uart.rx)
            self.uart.push_input(bytes(self.pending_input))
            del self.pending_input[:len(self.uart.rx) - before]

    def disk_stats(self) -> list[dict]:
        """Each disk's I/O, and how many mistakes its driver made (each kind logged once)."""
        transports = {id(t.device): t for t in self.virtio}
        return [{**d.stats, "guest_errors": transports[id(d)].warnings.total()
                 + d.warnings.total()} for d in self.drives]

    def device_stats(self) -> dict:
        """The NICs' and RNGs' counts, by what each is."""
        transports = {id(t.device): t for t in self.virtio}
        out = {}
        for m in self.models:
            errors = (transports[id(m)].warnings.total() if id(m) in transports else 0) + \
                (m.warnings.total() if hasattr(m, "warnings") else 0)
            key = m.describe()
            if key in out:                        # (two of a kind: the second by position)
                key = f"{key} #{sum(k.startswith(key) for k in out) + 1}"
            out[key] = {**m.stats, "guest_errors": errors,
                        **({"queues": m.queue_counts()} if hasattr(m, "queue_counts") else {})}
        return out

    def poll_devices(self) -> None:
        """Between run slices: the RTC's alarm, and device work a notify left over."""
        self.rtc.poll()
        for t in self.virtio:
            t.service()
        for m in self.models:
            if hasattr(m, "service"):             # an emulated NIC's leftover work
                m.service()

    def _irq(self, src: int):
        return lambda level: self.plic.set_level(src, level)

    def close(self) -> None:
        for d in self.drives:
            d.close()
        for m in self.models:
            if hasattr(m, "backend"):
                m.backend.deliver = None      # free for the machine a reset builds
            if hasattr(m, "image"):
                m.close()                     # an NVMe's disk, and its lock
