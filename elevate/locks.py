"""Per-entry exclusive OS locks (flock; msvcrt on Windows, through elevate.hostos): the single
flight of a cache fill.

The kernel drops the lock of a holder that dies, so a waiter takes over. A waiter of the
hit queue (elevate.hit) uses this module before anything heavy is imported, so it imports
no os, pathlib, typing or collections.abc, and signal's C core rather than its enum wrapper.
"""

from __future__ import annotations

import time

from . import hostos

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from os import PathLike

    from .errors import LockTimeout

    PathName = str | PathLike[str]

# elevate.errors is imported only to raise: a waiter of the hit queue never needs it.
_OPEN = hostos.native.O_RDWR | hostos.native.O_CREAT | getattr(hostos.native, "O_NOFOLLOW", 0)

LOCK_WAIT_SECONDS = 330.0  # a little longer than the MFA prompt's own limit
_POLL_FIRST = 0.01
_POLL_MAX = 0.25


def try_open_lock(path: PathName) -> int | None:
    """The lock file's descriptor (created 0600), or None when it cannot be opened (a symlink
    or a directory in its place, a read-only disk): `open_lock` says why."""
    try:
        return hostos.native.open(path, _OPEN, 0o600)
    except OSError:
        return None


def open_lock(path: PathName) -> int:
    """The lock file's descriptor (created 0600; a symlink in its place is refused)."""
    try:
        return hostos.native.open(path, _OPEN, 0o600)
    except OSError as exc:  # a directory or a symlink in its place, a read-only disk...
        from .errors import CacheError

        raise CacheError(f"cannot open the lock file {path} ({exc.strerror}): remove it") from exc


def acquire(fd: int, timeout: float, on_wait: Callable[[], None], path: PathName) -> None:
    """Take the exclusive lock on `fd`; `on_wait` runs once if another process holds it.

    A waiter sleeps in the kernel until the lock is free (a blocking flock cut short by
    SIGALRM at the deadline), so 31 waiters cost no CPU while one holder works. Off the
    main thread, or without flock, it polls with a back-off instead.
    """
    if _try_lock(fd):
        return
    on_wait()
    if not _wait_for_lock(fd, timeout):
        raise timed_out(timeout, path)


def timed_out(timeout: float, path: PathName) -> LockTimeout:
    """The error of a wait for `path` that reached its bound."""
    from .errors import LockTimeout

    return LockTimeout(
        f"gave up after {timeout:.0f} s waiting for another elevate process "
        f"(lock {hostos.native.fspath(path)}); retry, or run `elevate clear` if it is stuck"
    )


def try_lock(fd: int, shared: bool = False) -> bool:
    """Take the lock on `fd` if it is free now (shared: alongside other shared holders)."""
    return _try_lock(fd, shared)


def wait_for(fd: int, timeout: float, shared: bool = False) -> bool:
    """Sleep until the lock on `fd` is ours (shared or exclusive); False at the deadline.

    Taking it exclusive on an fd that holds it shared converts it (not atomically: the
    shared lock is dropped first, as flock(2) does).
    """
    return _wait_for_lock(fd, timeout, shared)


def _end_if_orphaned() -> None:
    """elevate.hardening's check, imported once a wait has lasted a slice: a waiter of the hit
    queue woken sooner never loads it."""
    from .hardening import end_if_orphaned

    end_if_orphaned()


def _poll_for_lock(fd: int, timeout: float, shared: bool = False) -> bool:
    deadline = time.monotonic() + timeout
    pause = _POLL_FIRST
    while not _try_lock(fd, shared):
        _end_if_orphaned()
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, _POLL_MAX)
    return True


def _try_lock(fd: int, shared: bool = False) -> bool:
    return hostos.try_lock(fd, shared)


signal = __import__("_signal")  # signal's C core: `import signal` would load enum for its wrapper


def _alarm(_signum: int, _frame: object) -> None:
    # Cuts a blocking lock short. A builtin, not a class of elevate.errors: a waiter of the
    # hit queue imports no elevate.errors, and flock itself never raises TimeoutError.
    raise TimeoutError


def _wait_for_lock(fd: int, timeout: float, shared: bool = False) -> bool:
    if not hostos.blocking_locks():  # Windows: no SIGALRM to cut a wait short
        return _poll_for_lock(fd, timeout, shared)
    try:
        previous = signal.signal(signal.SIGALRM, _alarm)
    except ValueError:  # not the main thread: signals are not ours to use
        return _poll_for_lock(fd, timeout, shared)
    deadline = time.monotonic() + timeout
    try:
        while True:
            # One-second slices: asleep in the kernel, yet a dead parent is noticed.
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                signal.setitimer(signal.ITIMER_REAL, min(max(left, 0.001), 1.0))
                try:
                    hostos.lock_blocking(fd, shared)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                return True
            except TimeoutError:
                # The alarm may land just after the lock was taken: then it is ours; the
                # next try takes it at once (flock on a held lock is a no-op).
                _end_if_orphaned()
    finally:
        signal.signal(signal.SIGALRM, previous)
