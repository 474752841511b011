"""Atomic file replacement: the one way elevate writes a file that must never be half-written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from . import hostos


def write_atomically(
    path: Path, data: bytes, mode: int = 0o600, before_replace: Optional[Callable[[], None]] = None
) -> None:
    """Replace `path` with `data`: a temp file in the same directory (0600 from birth, by
    mkstemp), written, set to `mode`, fsynced, renamed over `path`, and the directory fsynced.

    `before_replace` runs just before the rename and may raise to abandon the write. Raises
    OSError on failure; the temp file never outlives the call.
    """
    import tempfile  # not at the top: the cached fast path reads but never writes

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if mode != 0o600:
                hostos.set_file_mode(handle.fileno(), mode)
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (best effort: not every platform allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
