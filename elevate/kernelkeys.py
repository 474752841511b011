"""A small secret held for a while in the Linux kernel's session keyring (keyutils).

The keyutils system calls (add_key, keyctl) through ctypes, with no library of their own:
a "user" key in the session keyring, readable by its possessors (the processes of this login
session) only, gone at its timeout, at logout when the session keyring goes, or when
forgotten. Kernel keys are never swapped out. Elsewhere (not Linux, an unknown CPU, a
container whose seccomp filter refuses the calls) every function answers "not held".
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
from typing import Any, Optional

from . import hostos

log = logging.getLogger("elevate")

# (add_key, keyctl) per machine: x86_64's own table, and the generic one of arm64 and riscv64.
_SYSCALLS = {"x86_64": (248, 250), "aarch64": (217, 219), "arm64": (217, 219), "riscv64": (217, 219)}
_SESSION_KEYRING = -3  # KEY_SPEC_SESSION_KEYRING
_KEYCTL_GET_KEYRING_ID = 0
_KEYCTL_SETPERM = 5
_KEYCTL_DESCRIBE = 6
_KEYCTL_SEARCH = 10
_KEYCTL_READ = 11
_KEYCTL_SET_TIMEOUT = 15
_KEYCTL_INVALIDATE = 21
# Possessor: view, read, write, search, link, setattr; the user (other sessions), group and
# others: nothing at all.
PERMISSIONS = 0x3F000000
_MAX_PAYLOAD = 32767  # the kernel's limit for a "user" key


def _calls() -> Optional[tuple[Any, int, int]]:
    if not hostos.kernel_keyring():
        return None
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - a Linux process without a C library
        return None
    return libc, numbers[0], numbers[1]


def _keyctl(operation: int, *args: Any) -> int:
    calls = _calls()
    if calls is None:
        raise OSError(errno.ENOSYS, "no kernel keyring here")
    libc, _, keyctl = calls
    result = int(libc.syscall(ctypes.c_long(keyctl), ctypes.c_long(operation), *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _find(description: str) -> Optional[int]:
    """The serial of our key `description` in the session keyring, if it is there and ours."""
    try:
        serial = _keyctl(
            _KEYCTL_SEARCH,
            ctypes.c_long(_SESSION_KEYRING),
            ctypes.c_char_p(b"user"),
            ctypes.c_char_p(description.encode()),
            ctypes.c_long(0),
        )
    except OSError:  # ENOKEY, EKEYEXPIRED, EKEYREVOKED, ENOSYS, EPERM (seccomp): not held
        return None
    described = _describe(serial)
    if described is None:
        return None
    kind, uid, perm = described
    # Someone else's key, or one that others may read, is not ours to trust.
    if kind != "user" or uid != os.getuid() or perm & 0x00FFFFFF:
        log.debug("kernel keyring: ignoring %s (type %s, uid %s, perm %x)", description, kind, uid, perm)
        return None
    return serial


def _describe(serial: int) -> Optional[tuple[str, int, int]]:
    """(type, owner uid, permissions) of a key or keyring, or None."""
    try:
        buffer = ctypes.create_string_buffer(8192)
        _keyctl(_KEYCTL_DESCRIBE, ctypes.c_long(serial), buffer, ctypes.c_long(len(buffer)))
        kind, uid, _gid, perm, _ = buffer.value.decode().split(";", 4)
        return kind, int(uid), int(perm, 16)
    except (OSError, ValueError):
        return None


def load(description: str) -> Optional[bytes]:
    """The payload of our key `description` in the session keyring, or None."""
    serial = _find(description)
    if serial is None:
        return None
    buffer = ctypes.create_string_buffer(_MAX_PAYLOAD)
    try:
        size = _keyctl(_KEYCTL_READ, ctypes.c_long(serial), buffer, ctypes.c_long(len(buffer)))
    except OSError:
        return None
    return buffer.raw[: min(size, len(buffer))]


def store(description: str, payload: bytes, seconds: int) -> bool:
    """Hold `payload` as `description` for `seconds` (replacing what was held); False where
    the kernel keyring cannot be used."""
    calls = _calls()
    if calls is None or seconds <= 0 or len(payload) > _MAX_PAYLOAD:
        return False
    libc, add_key, _ = calls
    try:
        # Without create: a process that has no session keyring of its own (no pam_keyinit,
        # as in many containers and WSL) then uses the user-session keyring, which the next
        # process finds too; add_key on "the session keyring" would instead make a new
        # anonymous one that dies with this process.
        keyring = _keyctl(_KEYCTL_GET_KEYRING_ID, ctypes.c_long(_SESSION_KEYRING), ctypes.c_long(0))
    except OSError as exc:
        log.debug("kernel keyring: no session keyring (%s)", exc.strerror)
        return False
    # Only in a session keyring of our own: every process of its session possesses what it
    # holds, so root under `sudo` (which keeps the invoking user's session keyring) must
    # not leave its unlock where that user's processes can read it.
    owner = _describe(keyring)
    if owner is None or owner[1] != os.getuid():
        log.debug("kernel keyring: the session keyring is not ours; holding nothing there")
        return False
    serial = int(
        libc.syscall(
            ctypes.c_long(add_key),
            ctypes.c_char_p(b"user"),
            ctypes.c_char_p(description.encode()),
            ctypes.c_char_p(payload),
            ctypes.c_size_t(len(payload)),
            ctypes.c_long(keyring),
        )
    )
    if serial < 0:
        log.debug("kernel keyring: add_key failed (%s)", os.strerror(ctypes.get_errno()))
        return False
    described = _describe(serial)
    if described is None or described[1] != os.getuid():  # a key of another's, updated in place
        log.debug("kernel keyring: add_key updated a key that is not ours; dropping it")
        _invalidate(serial)
        return False
    try:
        _keyctl(_KEYCTL_SETPERM, ctypes.c_long(serial), ctypes.c_ulong(PERMISSIONS))
        _keyctl(_KEYCTL_SET_TIMEOUT, ctypes.c_long(serial), ctypes.c_ulong(seconds))
    except OSError as exc:
        log.debug("kernel keyring: cannot restrict the key (%s); dropping it", exc.strerror)
        _invalidate(serial)
        return False
    return True


def forget(description: str) -> bool:
    """Drop our key `description`; whether one was held."""
    serial = _find(description)
    if serial is None:
        return False
    _invalidate(serial)
    return True


def _invalidate(serial: int) -> None:
    try:
        _keyctl(_KEYCTL_INVALIDATE, ctypes.c_long(serial))
    except OSError as exc:
        log.debug("kernel keyring: cannot invalidate key %d (%s)", serial, exc.strerror)
