"""popek: a hypervisor lab in Python.

One virtual machine monitor over two kinds of hardware: a simulated RV64 machine
(:mod:`popek.riscv`) and real x86-64 through Linux KVM (a later backend).  Device
models (:mod:`popek.devices`) are shared by both.
"""

__version__ = "0.1.0"
