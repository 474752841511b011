"""Process hardening while elevate holds secrets: no core dumps, clean ends on signals."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

from .errors import Terminated

_saved: Optional[tuple[int, int]] = None


def disable_core_dumps() -> None:
    """Never let a crash of this process write secrets to a core file."""
    global _saved
    try:
        import resource

        _saved = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, _saved[1]))
    except (ImportError, ValueError, OSError):  # not POSIX, or the OS refuses
        _saved = None
    _not_dumpable()


def _not_dumpable() -> None:
    """Linux: PR_SET_DUMPABLE 0, so other processes of this user cannot ptrace us or read
    /proc/PID/mem while we hold secrets (an exec'd command is dumpable again)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (ImportError, OSError, AttributeError):
        pass


_parent: Optional[int] = None


def parent_gone() -> bool:
    """True once our parent, as first seen when a wait began, has died (we were re-parented):
    whoever wanted the credentials is gone, so a wait for a code or a lock should end.

    The parent is taken at the first call, not at start-up, so a launcher that exits right
    after starting us (setsid, a double fork) is not mistaken for a death."""
    global _parent
    current = os.getppid()
    if _parent is None:
        _parent = current
    return current != _parent


def end_if_orphaned() -> None:
    """Raise Terminated(SIGHUP) when our parent has died (see parent_gone)."""
    if parent_gone():
        raise Terminated(signal.SIGHUP)


def restore_core_dumps() -> None:
    """Give a command we exec the core-dump limit the user had, not ours."""
    if _saved is None:
        return
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, _saved)
    except (ImportError, ValueError, OSError):
        pass


_deferring = False
_pending: Optional[int] = None


def _on_signal(signum: int, _frame: object) -> None:
    global _pending
    if _deferring:
        _pending = signum
        return
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def raise_on_signals() -> None:
    """SIGINT, SIGTERM, SIGHUP and SIGQUIT become exceptions, so cleanup runs before we exit."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, _on_signal)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the block ends (e.g. while a child is being started,
    so that a signal cannot leave it running without anyone to stop it)."""
    global _deferring, _pending
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
        signum, _pending = _pending, None
        if signum is not None:
            _on_signal(signum, None)
