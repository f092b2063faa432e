"""``--device``, ``--netdev`` and ``--nic``, spelled as QEMU spells them, and the
run's network: the backends those options name, shared by every machine and VM of
one run.

    --netdev switch,id=ID[,switch=NAME]     a port on popek's learning switch NAME
                                            (default switch0; VMs of a run meet there)
    --netdev tap,id=ID,ifname=NAME          a host TAP interface
    --netdev socket,id=ID,listen=[HOST]:PORT | connect=HOST:PORT
                                            a TCP link to another popek or QEMU
    --netdev loopback,id=ID                 frames come back to the sender (tests)
    --device virtio-net-pci,netdev=ID[,mac=MAC][,addr=SLOT]   (SLOT in hex, as QEMU's)
    --device virtio-net-device,netdev=ID[,mac=MAC]          (virtio-mmio)
    --device e1000,netdev=ID[,mac=MAC][,addr=SLOT]          (an Intel 82540EM)
    --device virtio-rng-pci[,addr=SLOT] | virtio-rng-device
    --device virtio-serial-pci[,addr=SLOT] | virtio-serial-device
                                            a virtio console (one port: QEMU's
                                            virtio-serial with a virtconsole on stdio)
    --nic TYPE[,model=MODEL][,mac=MAC][,ifname=NAME]        both at once (QEMU's -nic)
    --host-device e1000,id=ID,netdev=NET[,mac=MAC]          a physical NIC of the host
                                            below --vmm, for a VM's passthrough=ID
    --host-device nvme,id=ID,drive=FILE     a physical NVMe disk of the host

Without mac=, NICs get QEMU's 52:54:00:12:34:56, the next one ...:57, and so on
through the run, so two VMs on one switch never share an address.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from popek.devices import net
from popek.devices.virtio.console import VirtioConsole
from popek.devices.virtio.net import VirtioNet
from popek.devices.virtio.rng import VirtioRng
from popek.errors import ConfigError

NETDEV_KINDS = ("switch", "tap", "socket", "loopback")
NIC_MODELS = ("virtio-net-pci", "virtio-net-device", "e1000")
DRIVERS = NIC_MODELS + ("virtio-rng-pci", "virtio-rng-device", "virtio-serial-pci",
                        "virtio-serial-device", "vhost-user-blk-pci")
MAX_CONSOLES = 1
DEFAULT_MAC = bytes.fromhex("525400123456")
MAX_DEVICES = 24                  # per machine (PCI slots 1-31 hold them, with the disks)


@dataclass
class NetdevSpec:
    kind: str
    id: str
    options: dict = field(default_factory=dict)


@dataclass
class DeviceSpec:
    driver: str
    options: dict = field(default_factory=dict)

    @property
    def transport(self) -> str:
        """pci (a PCI function), mmio (a virtio-mmio slot)."""
        return "mmio" if self.driver.endswith("-device") else "pci"

    @property
    def is_nic(self) -> bool:
        return self.driver in NIC_MODELS


def _options(text: str, what: str) -> tuple[str, dict]:
    first, *rest = text.split(",")
    opts = {}
    for part in rest:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad {what} option {part[:40]!r} (expected key=value)")
        if key in opts:
            raise ConfigError(f"{what} {first}: {key}= given twice")
        opts[key] = value
    return first.strip(), opts


def _check(what: str, name: str, opts: dict, allowed: set) -> None:
    unknown = set(opts) - allowed
    if unknown:
        raise ConfigError(f"{what} {name}: unknown option(s) {', '.join(sorted(unknown))} "
                          f"(it takes {', '.join(sorted(allowed)) or 'none'})")


def _check_id(what: str, ident: str) -> None:
    if not ident or len(ident) > 32 or not all(c.isalnum() or c in "-_." for c in ident):
        raise ConfigError(f"{what}: id={ident[:40]!r}: an id is 1 to 32 letters, digits, "
                          "'-', '_' or '.'")


def parse_netdev(text: str) -> NetdevSpec:
    kind, opts = _options(text, "--netdev")
    if kind not in NETDEV_KINDS:
        raise ConfigError(f"--netdev {kind[:40]!r}: popek has {', '.join(NETDEV_KINDS)}")
    allowed = {"id"} | {"switch": {"switch"}, "tap": {"ifname", "script", "downscript"},
                        "socket": {"listen", "connect"}, "loopback": set()}[kind]
    _check("--netdev", kind, opts, allowed)
    if "id" not in opts:
        raise ConfigError(f"--netdev {kind} needs id=ID (which a --device's netdev= names)")
    _check_id(f"--netdev {kind}", opts["id"])
    if kind == "tap":
        if "ifname" not in opts:
            raise ConfigError("--netdev tap needs ifname=NAME (an existing TAP interface, or "
                              "one popek may create)")
        for script in ("script", "downscript"):
            if opts.get(script, "no") != "no":
                raise ConfigError(f"--netdev tap: {script}= runs nothing in popek: give "
                                  f"{script}=no or leave it out")
    if kind == "socket":
        if ("listen" in opts) == ("connect" in opts):
            raise ConfigError("--netdev socket takes listen=[HOST]:PORT or connect=HOST:PORT")
        net.parse_host_port(opts.get("listen") or opts["connect"], opts["id"], "listen" in opts)
    if kind == "switch" and "switch" in opts:
        _check_id("--netdev switch: switch=", opts["switch"])
    return NetdevSpec(kind, opts.pop("id"), opts)


def parse_pci_addr(driver: str, text: str) -> int:
    """``addr=SLOT[.FUNCTION]``, hexadecimal as QEMU reads it (addr=10 is slot 0x10);
    only function 0 is modelled."""
    slot, _, function = text.partition(".")
    digits = "0123456789abcdefABCDEF"
    if not slot or not all(c in digits for c in slot) or len(slot) > 2 \
            or function not in ("", "0") or not 1 <= int(slot, 16) <= 31:
        raise ConfigError(f"--device {driver}: addr={text[:10]}: a PCI slot, 1 to 1f in hex "
                          "(slot 0 is the host bridge; function 0 only)")
    return int(slot, 16)


def parse_device(text: str) -> DeviceSpec:
    driver, opts = _options(text, "--device")
    if driver not in DRIVERS:
        raise ConfigError(f"--device {driver[:40]!r}: popek has {', '.join(DRIVERS)} "
                          "(disks: --drive)")
    allowed = {"netdev", "mac"} if driver in NIC_MODELS else \
        {"socket"} if driver == "vhost-user-blk-pci" else set()
    if not driver.endswith("-device"):
        allowed.add("addr")
    _check("--device", driver, opts, allowed)
    if driver in NIC_MODELS and "netdev" not in opts:
        raise ConfigError(f"--device {driver} needs netdev=ID (a --netdev's id)")
    if driver == "vhost-user-blk-pci" and not opts.get("socket"):
        raise ConfigError("--device vhost-user-blk-pci needs socket=PATH (a vhost-user "
                          "backend's, e.g. popek vhost-user-blk --socket PATH)")
    if "mac" in opts:
        opts["mac"] = net.parse_mac(opts["mac"])
    if "addr" in opts:
        opts["addr"] = parse_pci_addr(driver, opts["addr"])
    return DeviceSpec(driver, opts)


HOST_DEVICE_DRIVERS = ("e1000", "nvme")


def parse_host_device(text: str) -> DeviceSpec:
    """``--host-device e1000,id=ID,netdev=NET[,mac=MAC]`` or ``nvme,id=ID,drive=FILE``:
    a physical device of the simulated host below the VMM (vmm/host.py), which a VM can
    be given with ``--vm ...,passthrough=ID``."""
    driver, opts = _options(text, "--host-device")
    if driver not in HOST_DEVICE_DRIVERS:
        raise ConfigError(f"--host-device {driver[:40]!r}: the host has "
                          f"{', '.join(HOST_DEVICE_DRIVERS)}")
    backing = ("netdev", "a --netdev's id") if driver == "e1000" else ("drive", "its disk image")
    _check("--host-device", driver, opts,
           {"id", "netdev", "mac"} if driver == "e1000" else {"id", "drive"})
    for need, why in (("id", "which passthrough= names"), backing):
        if need not in opts:
            raise ConfigError(f"--host-device {driver} needs {need}=... ({why})")
    _check_id(f"--host-device {driver}", opts["id"])
    if "mac" in opts:
        opts["mac"] = net.parse_mac(opts["mac"])
    return DeviceSpec(driver, opts)


def parse_nic(text: str, index: int) -> tuple[NetdevSpec, DeviceSpec]:
    """``--nic TYPE[,model=MODEL][,mac=MAC][,ifname=NAME][,switch=NAME]``: a netdev
    (id ``nicN``) and the NIC on it (model virtio-net-pci unless told)."""
    kind, opts = _options(text, "--nic")
    model = opts.pop("model", "virtio-net-pci")
    if model not in NIC_MODELS:
        raise ConfigError(f"--nic model={model[:40]!r}: popek has {', '.join(NIC_MODELS)}")
    device_opts = {k: opts.pop(k) for k in ("mac", "addr") if k in opts}
    ident = f"nic{index}"
    netdev = parse_netdev(",".join([kind, f"id={ident}"] + [f"{k}={v}" for k, v in opts.items()]))
    device = parse_device(",".join([model, f"netdev={ident}"]
                                   + [f"{k}={v}" for k, v in device_opts.items()]))
    return netdev, device


class Network:
    """The run's network backends, by netdev id, and its switches by name."""

    def __init__(self, netdevs=()):
        self.specs: dict[str, NetdevSpec] = {}
        self.backends: dict[str, net.Backend] = {}
        self.switches: dict[str, net.Switch] = {}
        self.macs: dict[str, bytes] = {}    # netdev id → its NIC's default MAC
        self.explicit_macs: set[bytes] = set()   # given with mac= (defaults avoid them)
        for spec in netdevs:
            self.declare(spec)

    def declare(self, spec: NetdevSpec) -> None:
        if spec.id in self.specs:
            raise ConfigError(f"netdev id {spec.id} is given twice")
        self.specs[spec.id] = spec

    def check(self, devices) -> None:
        """Before anything is opened: every NIC names a declared netdev, no two the same
        one, and no more devices than a machine takes."""
        self.check_all([devices])

    def check_all(self, machines) -> None:
        """:meth:`check` for the devices of several machines (VMs) of one run."""
        for devices in machines:
            if len(devices) > MAX_DEVICES:
                raise ConfigError(f"at most {MAX_DEVICES} --device per machine")
            if sum(d.driver.startswith("virtio-serial") for d in devices) > MAX_CONSOLES:
                raise ConfigError("one virtio console per machine (it is the machine's "
                                  "console)")
        used = set()
        for d in (d for devices in machines for d in devices):
            if "mac" in d.options:
                self.explicit_macs.add(d.options["mac"])
            ident = d.options.get("netdev")
            if ident is None:
                continue
            if ident not in self.specs:
                raise ConfigError(f"--device {d.driver}: netdev={ident[:40]}: no --netdev "
                                  "has that id")
            if ident in used:
                raise ConfigError(f"netdev {ident} is used by two NICs (give each its own; "
                                  "put them on one switch to join them)")
            used.add(ident)

    def backend(self, ident: str) -> net.Backend:
        """The backend of netdev ``ident``, made at its first use; a machine rebuilt at a
        reset gets the same one back (its TAP stays open, its switch port stays)."""
        if ident in self.backends:
            b = self.backends[ident]
            if b.deliver is not None:
                raise ConfigError(f"netdev {ident} is used by two NICs")
            return b
        spec = self.specs[ident]
        if spec.kind == "switch":
            name = spec.options.get("switch", "switch0")
            sw = self.switches.setdefault(name, net.Switch(name))
            b = sw.port(ident)
        elif spec.kind == "tap":
            b = net.Tap(ident, spec.options["ifname"])
        elif spec.kind == "socket":
            b = net.SocketNet(ident, spec.options.get("listen"), spec.options.get("connect"))
        else:
            b = net.Loopback(ident)
        self.backends[ident] = b
        return b

    def nic(self, spec: DeviceSpec) -> tuple[net.Backend, bytes]:
        """A NIC's backend and MAC address, from its --device options."""
        ident = spec.options["netdev"]
        return self.backend(ident), spec.options.get("mac") or self.mac_for(ident)

    def mac_for(self, ident: str) -> bytes:
        """The default MAC of the NIC on netdev ``ident``: QEMU's first, and the next one
        for each NIC after it, skipping addresses given with mac= (kept across a reset)."""
        if ident not in self.macs:
            taken = set(self.macs.values()) | self.explicit_macs
            mac = int.from_bytes(DEFAULT_MAC, "big")
            while mac.to_bytes(6, "big") in taken:
                mac += 1
            self.macs[ident] = mac.to_bytes(6, "big")
        return self.macs[ident]

    def poll(self) -> None:
        for b in self.backends.values():
            b.poll()

    def stats(self) -> dict:
        out = {f"netdev {i}": b.stats() for i, b in self.backends.items()}
        out.update({f"switch {n}": s.stats() for n, s in self.switches.items()})
        return out

    def close(self) -> None:
        for b in self.backends.values():
            b.close()


def virtio_model(spec: DeviceSpec, mem, network: Network, console_write):
    """The virtio device a ``--device`` names, for either backend (its transport is the
    caller's business)."""
    if spec.driver.startswith("virtio-rng"):
        return VirtioRng(mem)
    if spec.driver.startswith("virtio-serial"):
        return VirtioConsole(mem, console_write)
    backend, mac = network.nic(spec)
    return VirtioNet(mem, mac, backend)
