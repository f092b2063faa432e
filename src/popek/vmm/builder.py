"""The VM builder: a VM is assembled from one strategy of each kind.

    kind      option      strategies (module)
    cpu       --vmm       trap-emulate (vmm/cpu/trap_emulate.py), bt (vmm/cpu/bt.py),
                          hw (vmm/cpu/hw.py)
    paging    --paging    shadow (vmm/memory/shadow.py), nested (vmm/memory/nested.py)
    io        --io        emulated (vmm/io/emulated.py), passthrough
                          (vmm/io/passthrough.py: chosen by a VM's passthrough=ID)

:func:`check` refuses a name it does not know, or a combination that cannot work,
with one line for the user; :func:`assemble` makes the chosen strategies for a VM
and the table its exits are dispatched through (vmm/exits.py: each exit kind is
handled by exactly one of them).
"""

from __future__ import annotations

from popek.errors import ConfigError
from popek.vmm.cpu.bt import BinaryTranslation
from popek.vmm.cpu.hw import HardwareAssist
from popek.vmm.cpu.trap_emulate import TrapAndEmulate
from popek.vmm.exits import handler_table
from popek.vmm.io.emulated import EmulatedIo
from popek.vmm.io.passthrough import PassthroughIo
from popek.vmm.memory.nested import NestedPaging
from popek.vmm.memory.shadow import ShadowPaging

CPU = {"trap-emulate": TrapAndEmulate, "bt": BinaryTranslation, "hw": HardwareAssist}
PAGING = {"shadow": ShadowPaging, "nested": NestedPaging}
IO = {"emulated": EmulatedIo, "passthrough": PassthroughIo}
KINDS = {"cpu": (CPU, "--vmm"), "paging": (PAGING, "--paging"), "io": (IO, "--io")}
# Which paging each CPU strategy can work with: trap-and-emulate has no second stage
# of translation in hardware (only shadow tables); hardware assist has the G-stage.
PAGING_FOR_CPU = {"trap-emulate": {"shadow"}, "bt": {"shadow"}, "hw": {"nested"}}
DEFAULT_PAGING = {"trap-emulate": "shadow", "bt": "shadow", "hw": "nested"}
# CPU strategies that need the hart's H extension.
NEEDS_H = {"hw"}


def check(cpu: str, paging: str, io: str) -> None:
    """One clear error for an unknown strategy or a combination that cannot work."""
    for kind, name in (("cpu", cpu), ("paging", paging), ("io", io)):
        table, option = KINDS[kind]
        if name not in table:
            raise ConfigError(f"{option} {name}: unknown (choose from {', '.join(table)})")
    if paging not in PAGING_FOR_CPU[cpu]:
        raise ConfigError(f"--paging {paging} does not work with --vmm {cpu} "
                          f"(it needs {' or '.join(sorted(PAGING_FOR_CPU[cpu]))})")


def pool_pages(paging: str) -> int:
    """Host pages the paging strategy needs beside a VM's RAM (its tables)."""
    return PAGING[paging].POOL_PAGES


def assemble(vm, host_ram, pool_base: int) -> None:
    """Give ``vm`` its strategies (``vm.cpu``, ``vm.memory``, ``vm.io``) and its exit table."""
    cfg = vm.cfg
    vm.cpu = CPU[cfg.cpu](vm)
    vm.memory = PAGING[cfg.paging](vm, host_ram, pool_base)
    vm.io = IO[cfg.io](vm)
    vm.handlers = handler_table(vm.cpu, vm.memory, vm.io)
