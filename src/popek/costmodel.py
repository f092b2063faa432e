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

The KVM backend (issue 5) measures real exit costs and can write them into a
profile that replaces these (``--cost-profile``, to come).
"""

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
