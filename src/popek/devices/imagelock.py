"""Disk image locking, as QEMU does it: a writable image is locked exclusively, a
read-only one shared, so that two writers (or a writer and a reader) of one image
are refused before a guest starts instead of corrupting it.

The locks are Linux's *open file description* locks (``F_OFD_SETLK``, Linux 3.15+),
as QEMU's ``file`` driver takes them.  Unlike classic POSIX record locks they belong
to the open file description, not to the process, so two opens of one image in the
same popek conflict too (the same file given twice as ``--drive``, or to two VMs of
one run), and closing some *other* descriptor of the file releases nothing.  Where
the kernel refuses OFD locks, ``flock(2)`` (also per open file description) stands
in; where the file system has no locks at all, the image is used unlocked, with a
warning.  The whole file is locked.  QEMU read-locks single bytes from offsets 100
and 200 up, one per permission, which a whole-file lock overlaps: popek will not
write an image QEMU has open, and QEMU refuses an image popek has open; a read-only
popek may read beside a QEMU, as a second QEMU sharing reads would.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
import sys

from popek.errors import ImageError

log = logging.getLogger(__name__)

# 37 on every Linux architecture (include/uapi/asm-generic/fcntl.h); Python has the
# name from 3.9 on.
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37 if sys.platform.startswith("linux") else None)
_CONFLICT = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS)


def _flock(kind: int) -> bytes:
    """A ``struct flock`` for the whole file (l_pid must be 0 for OFD locks)."""
    return struct.pack("hhqqi4x", kind, 0, 0, 0, 0)      # type, whence, start, len 0 = to EOF


class ImageLock:
    """The lock on one open image: exclusive for ``write``, shared otherwise.

    Taking it raises :class:`ImageError` (one line naming the image) when another
    process or drive holds a conflicting lock; :meth:`release` drops it."""

    def __init__(self, fd: int, path: str, write: bool):
        self.fd, self.path, self.write = fd, path, write
        self.how: str | None = None            # "ofd", "flock", or None (unlocked)
        try:
            self._acquire()
        except OSError as e:
            if e.errno in _CONFLICT:
                raise ImageError(
                    f'{path}: failed to get "{"write" if write else "read"}" lock '
                    "(is another process or drive using the image?)") from None
            if e.errno not in _NO_LOCKS:
                raise ImageError(f"{path}: cannot lock the disk image: {e.strerror}") from None
            log.warning("%s: the file system cannot lock it (%s); using it unlocked",
                        path, e.strerror)

    def _acquire(self) -> None:
        if F_OFD_SETLK is not None:
            try:
                fcntl.fcntl(self.fd, F_OFD_SETLK, _flock(fcntl.F_WRLCK if self.write
                                                         else fcntl.F_RDLCK))
                self.how = "ofd"
                return
            except OSError as e:
                if e.errno != errno.EINVAL:    # EINVAL: a kernel without OFD locks
                    raise
        fcntl.flock(self.fd, (fcntl.LOCK_EX if self.write else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        self.how = "flock"

    def release(self) -> None:
        """Drop the lock explicitly: a forked child may still share the open file
        description, and closing our descriptor alone would leave the image locked."""
        how, self.how = self.how, None
        try:
            if how == "ofd":
                fcntl.fcntl(self.fd, F_OFD_SETLK, _flock(fcntl.F_UNLCK))
            elif how == "flock":
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError as e:                   # the close that follows releases it anyway
            log.debug("%s: unlocking: %s", self.path, e)


class LockedImage:
    """A disk image opened for a device (virtio-blk, NVMe): a regular file (a FIFO would
    block the open), read-write unless ``readonly``, and locked as above before any
    guest sees it.  A failure is one line for the user; :meth:`close` unlocks and
    closes (a second close does nothing)."""

    def __init__(self, path: str, readonly: bool):
        self.path = path
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise ImageError(f"{path}: not a regular file (a disk image is a file)")
            self.fd = os.open(path, os.O_RDONLY if readonly else os.O_RDWR)
        except OSError as e:
            raise ImageError(f"{path}: cannot open disk image: {e.strerror}") from None
        try:
            self.lock = ImageLock(self.fd, path, write=not readonly)
        except BaseException:
            os.close(self.fd)
            self.fd = None
            raise
        self.size = os.fstat(self.fd).st_size

    def close(self) -> None:
        if self.fd is not None:
            self.lock.release()
            os.close(self.fd)
            self.fd = None
