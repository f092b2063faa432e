"""Debian's Linux as popek's guest, on either kind of hardware: where its kernels
are (debian.py) and the initramfs popek builds for them (initramfs.py)."""
