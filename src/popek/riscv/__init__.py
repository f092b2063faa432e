"""The simulated RV64 machine: hart, MMU, CLINT/PLIC/HTIF and the ``virt`` board."""
