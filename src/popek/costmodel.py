"""Named cycle costs, in one object, so trade-offs are measured, not told.

A :class:`CostModel` is handed to each machine (the hart charges trap entry and
return, page-walk references and TLB flushes) and to each VM's exit ledger (every
exit is charged ``TRAP_ENTRY + <emulation> + TRAP_RETURN`` modelled cycles).  The
defaults are round numbers of the right order for an in-order RISC-V core at a
few GHz, chosen so that relative costs are right, not absolute ones:

* trap entry and return: pipeline flush, CSR writes, and the vector fetch, as
  measured on SiFive U74-class cores (~50-100 cycles each way);
* a VMM's emulation of one privileged instruction: the decode plus a handful of
  loads/stores of saved state (a few hundred cycles in a C hypervisor; KVM's
  exit handlers on RISC-V are of that order);
* one memory reference of a page walk: an L2 hit (~20 cycles);
* a TLB flush: the flush itself plus refills it causes later (~100);
* a binary translator's callout: a call from translated code into the VMM and
  back, without a trap (~30).

``popek calibrate`` measures real exit costs on this host's KVM and writes them,
in TSC cycles, into a profile (JSON); :meth:`CostModel.load` makes a new model
from the defaults with the measured costs replaced (``popek run --cost-profile
FILE``); each entry there says where it came from.  Nothing here is global: two
machines with different models can run in one process.
"""

from __future__ import annotations

import json

# name: cycles (and, in the comment, what it stands for)
DEFAULTS = {
    "TRAP_ENTRY": 80,          # hardware: guest → VMM
    "TRAP_RETURN": 60,         # hardware: VMM → guest (mret/sret)
    "EMULATE_CSR": 150,        # decode + virtual CSR read/write
    "EMULATE_XRET": 200,       # sret/mret: virtual status stack, privilege, shadow switch
    "EMULATE_SBI": 250,        # a hypercall (SBI call) and its dispatch
    "EMULATE_MMIO": 400,       # decode the access, walk to the device model, write back
    "REFLECT_TRAP": 200,       # injecting an exception or interrupt into the guest
    "SHADOW_FILL": 300,        # walking the guest table and writing one shadow PTE
    "PAGE_WALK_REF": 20,       # one memory reference of a page-table walk
    "TLB_FLUSH": 100,          # sfence.vma and the refills it causes
    "WFI_IDLE": 50,            # descheduling a vCPU
    # Hardware assist (--vmm hw): a VM exit and entry are world switches in hardware,
    # each saving and loading the guest's and the host's state (VMCS/VMCB-like).  A
    # round trip is ~1,500-2,000 cycles on recent Intel cores (VT-x); split here as exit
    # 1,000 + entry 700.  `popek calibrate` measures this host's KVM round trip.
    "VM_EXIT": 1000,           # hardware: guest → hypervisor (instead of TRAP_ENTRY)
    "VM_ENTRY": 700,           # hardware: hypervisor → guest (instead of TRAP_RETURN)
    "NESTED_FILL": 250,        # mapping guest-physical memory in the G-stage tables
    # Binary translation (--vmm bt): a sensitive instruction in the translation cache is
    # a call into the VMM's emulation, in the same address space and privilege: the
    # guest registers it clobbers saved, a call and a return; no pipeline flush, no
    # trap vector (a function call of a few dozen instructions).
    "CALLOUT_ENTRY": 20,       # translation cache → VMM emulation (instead of TRAP_ENTRY)
    "CALLOUT_RETURN": 10,      # and back (instead of TRAP_RETURN)
    # The IOMMU (riscv/iommu.py): latency a DMA waits for (no hart pays it). An IOTLB hit is a
    # lookup in the IOMMU's own cache (a few cycles); on a miss, each reference of the
    # device-directory and second-stage walk is a memory read from the IOMMU, which sits
    # beside the memory controller with no cache of the CPU's (a DRAM access, ~100 ns
    # at 1 GHz: 100 cycles; IOMMU walk latencies of this order are reported for Intel
    # VT-d and AMD-Vi).
    "IOTLB_HIT": 5,
    "IOMMU_WALK_REF": 100,
    # A Type 2 hypervisor's device model is a host process (bench/bench_io_path.py): a
    # host system call round trip, entry to return, on Linux with the Meltdown/Spectre
    # mitigations of today's distributions (page-table switch, buffer clearing) is
    # ~0.3-0.7 µs, ~1,500 cycles at 3 GHz (without them ~100 ns: the mode switch of
    # FlexSC, Soares and Stumm, OSDI 2010, plus the kernel's entry work); copying the
    # data between the page cache and the process, ~0.1 µs per KiB from cache.
    "HOST_SYSCALL": 1500,
    "HOST_IO_COPY": 300,
    # A driver domain's grant map (vmm/drivers/domain.py), per page: the grant looked
    # up and checked, one second-stage PTE written (as Xen's map_grant_ref with an
    # IOMMU mapping: a few hundred cycles a page).
    "GRANT_MAP": 200,
}
PROFILE_FORMAT = "popek-cost-profile/1"
DEFAULT_SOURCE = "built-in defaults (costmodel.py)"


class CostModel:
    """Cycle costs by name (attributes ``TRAP_ENTRY``, ...) and where they came from."""

    def __init__(self, costs: dict | None = None, source: str = DEFAULT_SOURCE):
        values = dict(DEFAULTS)
        for name, cycles in (costs or {}).items():
            if name not in DEFAULTS:
                raise KeyError(name)
            values[name] = cycles
        self.__dict__.update(values)
        self.names = tuple(DEFAULTS)
        self.source = source

    def __getitem__(self, name: str) -> int:
        return getattr(self, name)

    @classmethod
    def load(cls, path: str) -> "CostModel":
        """The defaults with the costs of a profile written by ``popek calibrate``;
        a bad file raises ConfigError."""
        from popek.errors import ConfigError
        try:
            with open(path) as f:
                data = json.load(f)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read cost profile: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not a cost profile (bad JSON: {e.msg}, line {e.lineno})") \
                from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a cost profile (not text)") from None
        if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
            raise ConfigError(f"{path}: not a cost profile (format is not {PROFILE_FORMAT})")
        costs = data.get("costs", {})
        if not isinstance(costs, dict):
            raise ConfigError(f"{path}: not a cost profile (costs is not a table)")
        cycles = {}
        for name, entry in costs.items():
            value = entry.get("cycles") if isinstance(entry, dict) else None
            if name not in DEFAULTS:
                raise ConfigError(f"{path}: unknown cost {name!r}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{path}: cost {name} needs a whole number of cycles")
            cycles[name] = value
        return cls(cycles, f"{path}: {data.get('source', 'no source given')}")
