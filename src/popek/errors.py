"""Typed errors, one family per subsystem.

A *user* error (bad image, bad option) is reported by the CLI as one line and a
non-zero exit.  A *guest* fault is the guest's problem: it becomes an exception
delivered to the guest, never one of these.  Anything else is a popek bug and is
allowed to show a traceback.
"""


class PopekError(Exception):
    """Base of every error popek reports to the user as one clear line."""


class ImageError(PopekError):
    """A firmware/kernel/disk image is missing, unreadable or not loadable."""


class ConfigError(PopekError):
    """An option or combination of options that cannot work."""


class GuestMemoryError(Exception):
    """An access outside guest RAM (from a device model doing DMA, say).

    Device models catch this and report a device error to the guest; it is not a
    user error and never reaches the CLI.
    """
