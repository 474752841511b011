"""Process hardening while elevate holds secrets: no core dumps."""

from __future__ import annotations

from typing import Optional

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
