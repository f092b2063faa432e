"""CPU virtualization: how a guest's privileged instructions are made to work.

One strategy per VM (``--vmm``, assembled by vmm/builder.py):

    trap_emulate.py   the guest runs deprivileged; everything sensitive traps and is
                      emulated against the virtual CPU (vmm/vcpu.py)
    (bt, hw)          binary translation; the H extension: later issues

A strategy sets the hart up for its VM (``activate``, at every switch to it), turns
what stopped the guest into typed exits (``exit_from_trap``, vmm/exits.py), offers
handlers for the kinds it owns (``handlers()``), injects the guest's interrupts
(``deliver_interrupts``) and finishes each exit (``resume``).  Paravirtualization is
not a strategy of its own: it is the SBI interface (vmm/sbi.py) a guest may use
under any of them.
"""
