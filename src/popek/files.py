"""Writing files the user asked for, all or nothing: a failure (or an interrupt)
never leaves a half-written image, archive or profile behind."""

from __future__ import annotations

import os

from popek.errors import ConfigError


def write_atomically(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write: {e.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
