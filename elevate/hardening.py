"""Process hardening while elevate holds secrets: no core dumps, clean ends on signals."""

from __future__ import annotations

import os
import select
import stat

from . import hostos

TYPE_CHECKING = False
if TYPE_CHECKING:  # signal (its enum wrapper), contextlib and collections.abc would cost a waiter
    from types import TracebackType  # of the hit queue, which imports this, a third of its start-up

SIGINT, SIGHUP = 2, 1  # the same numbers on every platform Python runs on

_saved: tuple[int, int] | None = None


def disable_core_dumps(original: tuple[int, int] | None = None) -> None:
    """Never let a crash of this process write secrets to a core file. `original` is the
    user's limit when something earlier in this process already set ours to 0."""
    global _saved
    before = hostos.disable_core_dumps()  # None: not POSIX, or the OS refuses
    _saved = (original or before) if before is not None else None
    hostos.not_dumpable()


# Taken when elevate starts (this module is imported first): a launcher that had already
# exited by then (setsid, a double fork) leaves us with parent 1 and is not a death.
_parent = os.getppid()


def parent_gone() -> bool:
    """True once whoever asked for credentials is gone: our parent died (we were re-parented),
    or nobody is left to read the pipe our answer would go to. A wait should then end."""
    if _parent not in (0, 1) and os.getppid() != _parent:
        return True
    return _stdout_reader_gone()


def _stdout_reader_gone() -> bool:
    try:
        if not stat.S_ISFIFO(os.fstat(1).st_mode):
            return False
        poller = select.poll()
        poller.register(1, 0)  # POLLERR and POLLHUP are always reported
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no stdout, or no poll() (Windows)
        return False


def end_if_orphaned() -> None:
    """Raise Terminated(SIGHUP) when our parent has died (see parent_gone)."""
    if parent_gone():
        from .errors import Terminated  # here: a waiter of the hit queue imports this module

        raise Terminated(SIGHUP)


def restore_core_dumps() -> None:
    """Give a command we exec the core-dump limit the user had, not ours."""
    if _saved is not None:
        hostos.set_core_limit(_saved)


_deferring = False
_pending: int | None = None


def _on_signal(signum: int, _frame: object) -> None:
    global _pending
    if _deferring:
        _pending = signum
        return
    if signum == SIGINT:
        raise KeyboardInterrupt
    from .errors import Terminated

    raise Terminated(signum)


def raise_on_signals() -> None:
    """SIGINT, SIGTERM, SIGHUP and SIGQUIT become exceptions, so cleanup runs before we exit."""
    import signal

    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, _on_signal)


class signals_deferred:
    """Hold SIGINT/SIGTERM/SIGHUP until the block ends (e.g. while a child is being started,
    so that a signal cannot leave it running without anyone to stop it)."""

    def __enter__(self) -> None:
        global _deferring
        _deferring = True

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        global _deferring, _pending
        _deferring = False
        signum, _pending = _pending, None
        if signum is not None:
            _on_signal(signum, None)
