"""A kernel session keyring of the test run's own, so nothing elevate holds there (the
headless keyring's unlock) reaches the developer's login session, and nothing from it
reaches the tests; and keyctl(2) of the test's own, for what an attacker in that session
would call (elevate's own wrapper is private to it)."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from typing import Any

_KEYCTL = {"x86_64": 250, "aarch64": 219, "arm64": 219, "riscv64": 219}
_JOIN_SESSION_KEYRING = 1


def join_new_session_keyring() -> bool:
    """Give this process (and the children it starts from now on) a new anonymous session
    keyring; False where there is no kernel keyring to join."""
    number = _KEYCTL.get(platform.machine())
    if not sys.platform.startswith("linux") or number is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(ctypes.c_long(number), ctypes.c_long(_JOIN_SESSION_KEYRING), ctypes.c_char_p(None))
    return int(result) >= 0


def keyctl(operation: int, *args: Any) -> int:
    """keyctl(2) `operation` with `args` (ctypes values); its result, or OSError with errno's text."""
    number = _KEYCTL.get(platform.machine())
    if not sys.platform.startswith("linux") or number is None:
        raise OSError(errno.ENOSYS, "no kernel keyring here")
    libc = ctypes.CDLL(None, use_errno=True)
    result = int(libc.syscall(ctypes.c_long(number), ctypes.c_long(operation), *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result
