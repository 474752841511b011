"""Warnings that reach the person even when stderr is swallowed: under credential_process the
AWS CLI and the SDKs drop a successful child's stderr, so a warning also goes to the terminal
(/dev/tty) when there is one, at most once a day per warning text.

Which warnings were shown when is kept hashed in a private file of the cache directory
(elevate.store's checks: 0700 directory, 0600 file, no symlinks).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, TextIO

from . import ui
from .errors import ElevateError
from .store import FileStore

STATE_KEY = "warned"
KEEP_DAYS = 7  # entries older than this are dropped when the file is rewritten


def _today(clock: Callable[[], datetime]) -> str:
    return clock().astimezone(timezone.utc).date().isoformat()


def _digest(message: str) -> str:
    return hashlib.sha256(message.encode("utf-8")).hexdigest()[:32]


def _stderr_is_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def warn(
    message: str,
    directory: Path,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    tty_opener: Callable[[], AbstractContextManager[Optional[TextIO]]] = ui.open_tty,
    stderr_is_terminal: Callable[[], bool] = _stderr_is_terminal,
) -> None:
    """`elevate: warning: MESSAGE` on stderr, and on the terminal too (once a day) when stderr
    is not that terminal, so a caller that drops stderr does not hide it."""
    ui.warn(message)
    if stderr_is_terminal():
        return
    files = FileStore(directory)
    today = _today(clock)
    try:
        seen = json.loads(files.read(STATE_KEY) or "{}")
    except (ElevateError, ValueError):
        seen = {}
    if not isinstance(seen, dict):
        seen = {}
    digest = _digest(message)
    if seen.get(digest) == today:
        return
    with tty_opener() as tty:
        if tty is None:
            return
        with contextlib.suppress(OSError):
            tty.write(f"{ui.PREFIX}warning: {ui.printable(message)}\n")
            tty.flush()
    cutoff = clock().astimezone(timezone.utc).date().toordinal() - KEEP_DAYS
    kept = {
        k: v
        for k, v in seen.items()
        if isinstance(v, str) and _ordinal(v) is not None and (_ordinal(v) or 0) >= cutoff
    }
    kept[digest] = today
    with contextlib.suppress(ElevateError):  # no record: at worst it is shown again
        files.write(STATE_KEY, json.dumps(kept, sort_keys=True))


def _ordinal(day: str) -> Optional[int]:
    try:
        return datetime.fromisoformat(day).date().toordinal()
    except ValueError:
        return None
