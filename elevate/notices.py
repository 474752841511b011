"""Warnings that reach the person even when stderr is swallowed: under credential_process the
AWS CLI and the SDKs drop a successful child's stderr, so a warning also goes to the terminal
(/dev/tty) when there is one, at most once a day per warning text. Errors likewise (Terraform
and the JS SDK's default chain hide a failed child's stderr too), at most once a minute each.

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
ERRORS_KEY = "told-errors"
ERROR_REPEAT_SECONDS = 60  # an error's text reaches the terminal at most this often
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
            tty.write(ui.line(message, "warning") + "\n")
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


def error(
    message: str,
    directory: Path,
    *,
    key: Optional[str] = None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    tty_opener: Callable[[], AbstractContextManager[Optional[TextIO]]] = ui.open_tty,
    stderr_is_terminal: Callable[[], bool] = _stderr_is_terminal,
) -> None:
    """`elevate: error: MESSAGE` on the terminal when stderr is not that terminal (stderr gets
    it from the one exit point), at most once per ERROR_REPEAT_SECONDS for the same `key`
    (default: the message), so a client that retries does not fill the screen."""
    if stderr_is_terminal():
        return
    files = FileStore(directory)
    now = clock().timestamp()
    try:
        told = json.loads(files.read(ERRORS_KEY) or "{}")
    except (ElevateError, ValueError):
        told = {}
    if not isinstance(told, dict):
        told = {}
    digest = _digest(key if key is not None else message)
    last = told.get(digest)
    if isinstance(last, (int, float)) and 0 <= now - last < ERROR_REPEAT_SECONDS:
        return
    with tty_opener() as tty:
        if tty is None:
            return
        with contextlib.suppress(OSError):
            tty.write(ui.line(message, "error") + "\n")
            tty.flush()
    kept = {
        k: v for k, v in told.items() if isinstance(v, (int, float)) and 0 <= now - v < ERROR_REPEAT_SECONDS
    }
    kept[digest] = now
    with contextlib.suppress(ElevateError):  # no record: at worst it is shown again
        files.write(ERRORS_KEY, json.dumps(kept, sort_keys=True))
