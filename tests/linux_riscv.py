"""Debian's riscv64 Linux on popek's simulated machine, driven like a person at the
console: boot to the busybox prompt, type commands, power off.  Shared by the
end-to-end tests (tests/test_linux_riscv.py) and the benchmark (bench/bench_linux.py).

The kernel and busybox come from .cache/debian-riscv64 (scripts/setup.sh fetches
them); the initramfs is built once per process; the disk is an ext4 image made
with mkfs.ext4, which the guest mounts on /mnt.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from popek.console import ScriptedConsole
from popek.files import write_atomically
from popek.linux import debian, initramfs

FW_DYNAMIC = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.elf"
MEMORY = 512 << 20
APPEND = "console=ttyS0"
QUICK_BOOT = debian.QUICK_BOOT
# The icount clock as a 1 GHz hart, popek's default (clock.DEFAULT_IPS), named here because
# the tests depend on it: at the old default (2 M instructions a guest second) Linux's
# timed self-tests (jitter entropy) ran into soft-lockup warnings.
IPS = 1_000_000_000
PROMPT = r"~ # "
ECHO = os.environ.get("POPEK_TEST_ECHO") == "1"
# What a healthy boot must not print (the clock issue: soft lockups in the jitter-entropy
# self-test, crypto self-tests timing out under the VMM).
TROUBLE = re.compile(r"soft lockup|rcu_sched self-detected|alg: .*(failed|Unexpected)|"
                     r"Failed to reset rng|hung_task|WARNING: CPU|Oops|BUG:|Kernel panic")


def kernel() -> debian.DebianKernel:
    return debian.find("riscv64")


def build_initrd(path: Path, signatures: bool = False) -> Path:
    k = kernel()
    data, _ = initramfs.build(k.modules, busybox=k.busybox, arch="riscv64",
                              signatures=signatures)
    write_atomically(str(path), data)
    return path


def make_ext4(path: Path, size_mib: int = 16) -> Path:
    """An empty ext4 image without a journal: what a `sync` wrote is then in place, where
    the host can read it at once (with a journal it may still be in the journal)."""
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "popek", str(path)],
                   check=True, capture_output=True)
    return path


def read_ext4_file(image: Path, name: str) -> bytes:
    """A file's bytes from an ext4 image, read on the host (debugfs, no mount)."""
    r = subprocess.run(["debugfs", "-R", f"cat {name}", str(image)], capture_output=True,
                       check=True)
    return r.stdout


@dataclass
class Session:
    """What a boot printed and how long things took."""
    output: str = ""
    exit_code: int | None = None
    prompt_wall: float | None = None            # seconds from power-on to the prompt
    prompt_instructions: int | None = None
    wall: float = 0.0
    stats: dict = field(default_factory=dict)
    machine: object = None                      # the board, or the VMM (its VMs' ledgers)


class LinuxConsole(ScriptedConsole):
    """Plays ``steps``, records when the first prompt appears, and calls each of
    ``watches`` (pattern, fn) once when its pattern is printed: the guest is stopped
    meanwhile (the console is called from its run loop), so ``fn`` sees the host's
    files as the guest left them at that point."""

    def __init__(self, steps, on_prompt, watches=()):
        super().__init__(steps)
        self.on_prompt = on_prompt
        self.prompted = False
        self.watches = [(re.compile(p.encode()), fn) for p, fn in watches]

    def write(self, data: bytes) -> None:
        super().write(data)
        if ECHO:                                   # POPEK_TEST_ECHO=1: watch a boot live
            sys.stderr.write(data.decode(errors="replace"))
        if not self.prompted and PROMPT.encode() in self.output:
            self.prompted = True
            self.on_prompt()
        while self.watches and self.watches[0][0].search(self.output):
            self.watches.pop(0)[1]()


def _steps(commands, poweroff):
    return [(PROMPT, c + "\n") for c in commands] + ([(PROMPT, "poweroff\n")] if poweroff else [])


def _play(make_machine, commands, poweroff, watches) -> Session:
    """Build the machine (a board or the VMM) around a scripted console, run it to the
    end, and collect what it printed and when the first prompt came."""
    s = Session()
    machine = None

    def at_prompt():
        s.prompt_wall = time.perf_counter() - start
        s.prompt_instructions = machine.retired()
        if not poweroff:
            machine.shutdown(0, "prompt reached")

    con = LinuxConsole(_steps(commands, poweroff), at_prompt, watches)
    machine = make_machine(con)
    start = time.perf_counter()
    try:
        s.exit_code = machine.run()
    finally:
        s.wall = time.perf_counter() - start
        machine.close()
    s.output = con.text()
    s.stats = machine.stats()
    s.machine = machine
    return s


def run_vmm(initrd: Path, disk: Path | None, commands=(), ips=IPS, watches=(),
            max_instructions=16_000_000_000, smp=1, cpu="trap-emulate",
            append=APPEND, devices=(), netdevs=(), peers=(), peers_done=None,
            machine_watches=(), passthrough=(), host=None, disks=(),
            code_cache=None) -> Session:
    """The same as :func:`run_bare`, as a guest of popek's VMM (which serves SBI itself:
    no OpenSBI), by the CPU strategy ``cpu`` (trap-emulate, hw) and its paging; Linux is
    vm0, with ``devices`` on ``netdevs``.  ``peers`` are more VMs (VmConfigs) beside it,
    stopped when Linux prints ``peers_done``; ``machine_watches`` are watches whose
    function takes the VMM; ``passthrough``: the host devices Linux is given, and
    ``disks`` the host disks it reaches through the VMM's driver placement, which
    ``host`` (the Hypervisor's host_devices=, netdevs=, drivers=, faults=) declares."""
    from popek.riscv.board import DriveSpec
    from popek.vmm import builder
    from popek.vmm.hypervisor import Hypervisor
    from popek.vmm.vm import VmConfig

    cfg = VmConfig(kernel=kernel().image, initrd=str(initrd), append=append, memory=MEMORY,
                   drives=[DriveSpec(str(disk))] if disk else [], smp=smp, cpu=cpu,
                   paging=builder.DEFAULT_PAGING[cpu], devices=list(devices),
                   netdevs=list(netdevs), passthrough=list(passthrough), disks=list(disks))
    made = []

    def make(con):
        made.append(Hypervisor([cfg, *peers], con, ips=ips, max_instructions=max_instructions,
                               code_cache=code_cache, **(host or {})))
        return made[0]

    def stop_peers():
        for vm in made[0].vms[1:]:
            if vm.domain is None:                 # (a driver domain serves Linux still)
                vm.shutdown(0, "Linux is done with it")
    watches = [*watches, *((p, (lambda fn: lambda: fn(made[0]))(fn))
                           for p, fn in machine_watches)]
    if peers_done:
        watches = [*watches, (peers_done, stop_peers)]
    return _play(make, commands, True, watches)


def run_bare(initrd: Path, disk: Path | None, commands=(), engine="translate",
             code_cache=None, max_instructions=8_000_000_000, ips=IPS,
             poweroff=True, watches=(), smp=1, devices=(), netdevs=(),
             append=APPEND) -> Session:
    """Boot on the bare machine (OpenSBI fw_dynamic), type ``commands`` one prompt at a
    time, then ``poweroff`` (or stop at the first prompt)."""
    from popek.riscv.board import BoardConfig, DriveSpec, VirtBoard

    cfg = BoardConfig(bios=FW_DYNAMIC, kernel=kernel().image, initrd=str(initrd),
                      append=append, memory=MEMORY, engine=engine, code_cache=code_cache,
                      drives=[DriveSpec(str(disk))] if disk else [],
                      max_instructions=max_instructions, ips=ips, smp=smp,
                      devices=list(devices), netdevs=list(netdevs))
    return _play(lambda con: VirtBoard(cfg, console=con), commands, poweroff, watches)
