"""Named cycle costs, in one place, so trade-offs are measured, not told.

Every exit the VMM handles is charged ``TRAP_ENTRY + <emulation> + TRAP_RETURN``
modelled cycles in its VM's ledger.  The defaults are round numbers of the right
order for an in-order RISC-V core at a few GHz, chosen so that relative costs
are right, not absolute ones:

* trap entry and return: pipeline flush, CSR writes, and the vector fetch, as
  measured on SiFive U74-class cores (~50-100 cycles each way);
* a VMM's emulation of one privileged instruction: the decode plus a handful of
  loads/stores of saved state (a few hundred cycles in a C hypervisor; KVM's
  exit handlers on RISC-V are of that order);
* one memory reference of a page walk: an L2 hit (~20 cycles);
* a TLB flush: the flush itself plus refills it causes later (~100).

``popek calibrate`` measures real exit costs on this host's KVM and writes them,
in TSC cycles, into a profile (JSON) that replaces the measured ones among these
(``popek run --cost-profile FILE``); each entry there says where it came from.
"""

import json

TRAP_ENTRY = 80            # hardware: guest → VMM
TRAP_RETURN = 60           # hardware: VMM → guest (mret/sret)
EMULATE_CSR = 150          # decode + virtual CSR read/write
EMULATE_XRET = 200         # sret/mret: virtual status stack, privilege, shadow switch
EMULATE_SBI = 250          # a hypercall (SBI call) and its dispatch
EMULATE_MMIO = 400         # decode the access, walk to the device model, write back
REFLECT_TRAP = 200         # injecting an exception or interrupt into the guest
SHADOW_FILL = 300          # walking the guest table and writing one shadow PTE
PAGE_WALK_REF = 20         # one memory reference of a page-table walk
TLB_FLUSH = 100            # sfence.vma and the refills it causes
WFI_IDLE = 50              # descheduling a vCPU

COSTS = {name: value for name, value in globals().items() if name.isupper()}
DEFAULTS = dict(COSTS)
PROFILE_FORMAT = "popek-cost-profile/1"
profile_source = "built-in defaults (costmodel.py)"


def load_profile(path: str) -> str:
    """Replace costs with those of a profile written by ``popek calibrate``;
    returns the profile's description.  Bad files raise ConfigError."""
    from popek.errors import ConfigError
    global profile_source
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read cost profile: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not a cost profile (bad JSON: {e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise ConfigError(f"{path}: not a cost profile (format is not {PROFILE_FORMAT})")
    costs = data.get("costs", {})
    for name, entry in costs.items():
        cycles = entry.get("cycles") if isinstance(entry, dict) else None
        if name not in DEFAULTS:
            raise ConfigError(f"{path}: unknown cost {name!r}")
        if not isinstance(cycles, int) or cycles < 0:
            raise ConfigError(f"{path}: cost {name} needs a whole number of cycles")
    for name, entry in costs.items():
        globals()[name] = COSTS[name] = entry["cycles"]
    profile_source = f"{path}: {data.get('source', 'no source given')}"
    return profile_source


def reset_profile() -> None:
    global profile_source
    for name, value in DEFAULTS.items():
        globals()[name] = COSTS[name] = value
    profile_source = "built-in defaults (costmodel.py)"
