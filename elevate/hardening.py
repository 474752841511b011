"""Process hardening while elevate holds secrets: no core dumps, clean ends on signals."""

from __future__ import annotations

import signal
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
    """SIGINT, SIGTERM and SIGHUP become exceptions, so cleanup runs before we exit."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
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
