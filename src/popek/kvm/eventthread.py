"""A thread of the KVM machine's that waits on file descriptors while the vCPUs run
(kvm/ioeventfd.py's eventfds, kvm/vhost_user.py's backends): started with each run,
stopped at its end through a wake pipe, its errors reported rather than lost."""

from __future__ import annotations

import logging
import os
import selectors
import threading

log = logging.getLogger(__name__)


class EventThread:
    """Subclasses register their descriptors (``_register``) and serve what one
    ``select`` found (``_ready``); ``on_error(why)`` stops the machine."""
    NAME = "event thread"
    JOIN_TIMEOUT = 5.0

    def __init__(self, on_error):
        self.on_error = on_error
        self._wake_r, self._wake_w = os.pipe()
        self._thread = None

    def start(self, done: threading.Event) -> None:
        self._thread = threading.Thread(target=self._loop, args=(done,), daemon=True)
        self._thread.start()

    def _loop(self, done: threading.Event) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            self._register(sel)
            while not done.is_set():
                keys = []
                for key, _ in sel.select(0.1):
                    if key.fd == self._wake_r:
                        os.read(self._wake_r, 64)
                    else:
                        keys.append(key)
                self._ready(sel, keys)
        except Exception as e:                      # a thread must not die silently
            log.error("%s: %s", self.NAME, e)
            self.on_error(f"{self.NAME}: {e}")
        finally:
            sel.close()

    def _register(self, sel) -> None:
        raise NotImplementedError

    def _ready(self, sel, keys) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """The run is over: the thread ends (a later run starts it again).  One that
        does not end in JOIN_TIMEOUT is left, and ``running`` says so."""
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=self.JOIN_TIMEOUT)
            if not self._thread.is_alive():
                self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = None
