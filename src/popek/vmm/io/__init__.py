"""I/O virtualization: where a guest's device accesses go.

One strategy per VM (``--io``, assembled by vmm/builder.py):

    emulated.py    device models inside the VMM (the virt board's UART, PLIC, RTC,
                   syscon, virtio-mmio disks: riscv/platform.py), every access an exit
    (passthrough)  a physical device behind an IOMMU: a later issue

A strategy handles the MmioRead and MmioWrite exits (vmm/exits.py) through
``handlers()``: a read returns the value (None: nothing answers there, an access
fault for the guest), a write returns whether something took it.
"""
