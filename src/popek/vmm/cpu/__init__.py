"""CPU virtualization: how a guest's privileged instructions are made to work.

One strategy per VM (``--vmm``, assembled by vmm/builder.py):

    trap_emulate.py   the guest runs deprivileged; everything sensitive traps and is
                      emulated against the virtual CPU (vmm/vcpu.py)
    hw.py             hardware assist: the guest runs in the H extension's VS-mode
    mmio.py           (both) a guest's load or store to a device, emulated
    bt.py             binary translation: trap-and-emulate whose guest's sensitive
                      instructions are rewritten into callouts of the same emulation

A strategy sets the hart up for its VM (``activate``, at every switch to it), turns
what stopped the guest into typed exits (``exit_from_trap``, vmm/exits.py), offers
handlers for the kinds it owns (``handlers()``), injects the guest's interrupts
(``deliver_interrupts``), finishes each exit (``resume``) and takes the VM off the hart
(``deactivate``).  Paravirtualization is
not a strategy of its own: it is the SBI interface (vmm/sbi.py) a guest may use
under any of them.
"""


def wait_for_interrupt(vm, hart, e) -> None:
    """A guest's wfi (an exit under both strategies): past it, and the vCPU is
    descheduled until an interrupt is pending for it."""
    hart.pc = e.pc + e.insn.length
    vm.ledger.record("wfi")
    if not vm.vcpu.pending_enabled():
        vm.vcpu.waiting = True
        hart.limit = 0
