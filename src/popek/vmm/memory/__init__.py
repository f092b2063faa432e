"""Memory virtualization: how a guest's addresses become host memory.

One strategy per VM (chosen by ``--paging``, assembled by vmm/builder.py):

    shadow.py   shadow page tables: guest-virtual → host-physical tables the hart's
                MMU walks, filled on faults from the guest's own tables
    nested.py   two-stage translation by the H extension's G-stage (gstage.py writes
                its tables, and the IOMMU driver's)

The interface a CPU strategy uses (one instance per VM):

    POOL_PAGES           host pages the strategy needs beside the VM's RAM
    activate()           the VM is about to run: put its translation on the hart
    context_changed()    the vCPU's privilege, satp, SUM or MXR changed
    fence(va=None)       the guest fenced every address (sfence.vma x0, SBI remote fence,
                         PV flush), or the page at va in every address space
    fault(access, va)    shadow: a page fault of the running guest → Filled | Reflect | Device
    guest_page_fault(gpa, access)   nested: a G-stage miss → Filled | Device
    drop_device_mappings()  a passed-through BAR moved: no mapping of its old place stays
    guest_fetch(pc)      the guest's instruction bits at pc (a walk without side effects)
    stats()              table sizes and counts for --stats

A miss outside the VM's RAM asks ``vm.io.direct_page(gpa)`` (vmm/io/passthrough.py)
whether it is a page of a passed-through device, to be mapped like RAM (never
executable); otherwise it is an emulated device's (Device).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Filled:
    """The strategy mapped the page: retry the access (ledger reason ``reason``)."""
    reason: str


@dataclass(frozen=True, slots=True)
class Reflect:
    """The guest's own translation faults: deliver ``cause`` to it."""
    cause: int
    reason: str


@dataclass(frozen=True, slots=True)
class Device:
    """The address is none of the guest's RAM: ``gpa`` may be one of its devices."""
    gpa: int
