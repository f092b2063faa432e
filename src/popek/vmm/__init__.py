"""The virtual machine monitor: runs unmodified guest kernels on the simulated
hart by trap-and-emulate, with shadow page tables and SBI as the hypercall
interface.  See docs/ARCHITECTURE.md ("The VMM") and docs/vmm.md."""
