"""Device models shared by both backends (simulated RISC-V and KVM).

A device sees offsets into its own register window, never absolute addresses,
and reaches guest RAM only through :class:`~popek.devices.memory.GuestMemory`.
"""
