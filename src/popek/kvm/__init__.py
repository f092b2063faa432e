"""Real x86-64 hardware through Linux KVM: a thin ioctl layer (abi.py, system.py)
and an x86-64 machine (machine.py) using the same device models and exit records
as the simulated RISC-V machine."""
