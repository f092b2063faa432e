"""virtio: the split virtqueue, the MMIO transport, and devices (blk).

The transport (mmio.py) knows registers and queues; a device (blk.py) knows only
its config space, its features and what to do with a descriptor chain.
"""
