"""The session cache: elevated credentials shared by every elevate process of one user.

Entries live in a private directory (0700, ours, not a symlink) as 0600 files written
atomically (mkstemp, fsync, rename), or in the OS keyring. A miss is filled under an
exclusive per-entry OS lock, and the cache is re-read once the lock is held, so any
number of concurrent callers cost one MFA prompt and one AssumeRole. The kernel drops
the lock of a holder that dies, and a waiter takes over.

This module is on the fast path of a cache hit: it must not import boto3, botocore,
keyring or click.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Protocol

from .errors import CacheError, ElevateError
from .models import Profile, SessionCredentials, format_utc, parse_utc

FORMAT_VERSION = 1
LOCK_WAIT_SECONDS = 330.0  # a little longer than the MFA prompt's own limit
_POLL = 0.05


def cache_dir(environ: Mapping[str, str]) -> Path:
    """$ELEVATE_CACHE_DIR, else $XDG_RUNTIME_DIR/elevate, else $XDG_CACHE_HOME/elevate."""
    if environ.get("ELEVATE_CACHE_DIR"):
        return Path(environ["ELEVATE_CACHE_DIR"]).expanduser()
    if environ.get("XDG_RUNTIME_DIR"):
        return Path(environ["XDG_RUNTIME_DIR"]) / "elevate"
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME", "~"), ".cache")
    return Path(base).expanduser() / "elevate"


def entry_key(profile: Profile) -> str:
    """One entry per (role, MFA device, key set, session name, duration)."""
    parts = [
        "creds",
        profile.role_arn,
        profile.mfa_serial,
        profile.key_set,
        profile.role_session_name or "",
        str(profile.duration_seconds),
    ]
    return _digest(parts)


def mfa_session_key(profile: Profile) -> str:
    """One MFA session per (key set, MFA device, length)."""
    return _digest(["mfa-session", profile.key_set, profile.mfa_serial, str(profile.mfa_session_seconds)])


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def encode(creds: SessionCredentials, label: str) -> str:
    return json.dumps(
        {
            "version": FORMAT_VERSION,
            "label": label,
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key,
            "SessionToken": creds.session_token,
            "Expiration": creds.expiration_iso(),
        }
    )


def decode(text: str) -> Optional[SessionCredentials]:
    """Credentials from a cache entry, or None when it is damaged in any way."""
    from .validate import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN

    try:
        data = json.loads(text)
        if data.get("version") != FORMAT_VERSION:
            return None
        values = (data["AccessKeyId"], data["SecretAccessKey"], data["SessionToken"])
        shapes = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)
        if not all(isinstance(v, str) and s.fullmatch(v) for v, s in zip(values, shapes)):
            return None
        return SessionCredentials(*values, expiration=parse_utc(data["Expiration"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def label_of(text: str) -> str:
    try:
        return str(json.loads(text).get("label", ""))
    except (ValueError, AttributeError):
        return ""


class Store(Protocol):
    """Where entries are kept: private files, or the OS keyring."""

    def read(self, key: str) -> Optional[str]: ...
    def write(self, key: str, text: str) -> None: ...
    def delete(self, key: str) -> bool: ...


class FileStore:
    """0600 files in a private directory; refuses a directory or file others could touch."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def ensure(self) -> Path:
        """Create the directory 0700 if needed and check it is private; return it."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the cache directory {self.directory}: {exc.strerror}") from exc
        check_private_dir(self.directory)
        return self.directory

    def path(self, key: str, suffix: str = ".json") -> Path:
        return self.directory / f"{key}{suffix}"

    def read(self, key: str, suffix: str = ".json") -> Optional[str]:
        path = self.path(key, suffix)
        if not os.path.lexists(self.directory):
            return None
        check_private_dir(self.directory)
        try:
            # O_NONBLOCK: a FIFO planted here must be refused below, not wait for a writer.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheError(
                f"cache file {path} cannot be read ({exc.strerror}): remove it with `elevate clear`"
            ) from exc
        try:
            # Checked before fdopen, which raises IsADirectoryError on a directory.
            check_private_file(path, os.fstat(fd))
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read(1 << 20)
        except OSError as exc:
            raise CacheError(f"cache file {path} cannot be read ({exc.strerror})") from exc
        finally:
            os.close(fd)
        return data.decode("utf-8", "replace")

    def write(self, key: str, text: str) -> None:
        self.ensure()
        write_private(self.path(key), text)

    def delete(self, key: str) -> bool:
        removed = False
        for suffix in (".json", ".error"):
            path = self.path(key, suffix)
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
            except OSError as exc:  # e.g. a directory in its place
                raise CacheError(f"cannot remove {path} ({exc.strerror}): remove it by hand") from exc
        return removed


class KeyringStore:
    """Entries as keyring secrets (imports keyring only when used)."""

    PREFIX = "cache:"

    def read(self, key: str) -> Optional[str]:
        from . import keystore

        return keystore.get_secret(self.PREFIX + key)

    def write(self, key: str, text: str) -> None:
        from . import keystore

        keystore.set_secret(self.PREFIX + key, text)

    def delete(self, key: str) -> bool:
        from . import keystore

        existed = keystore.get_secret(self.PREFIX + key) is not None
        keystore.delete_secret(self.PREFIX + key)
        return existed


def check_private_dir(directory: Path) -> None:
    """Refuse a cache directory that is a symlink, not ours, or open to group or others."""
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise CacheError(f"cache directory {directory}: {exc.strerror}") from exc
    if stat.S_ISLNK(info.st_mode):
        raise CacheError(
            f"cache directory {directory} is a symlink: refusing it; "
            "point ELEVATE_CACHE_DIR at a real directory"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"cache directory {directory} is not a directory")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise CacheError(
            f"cache directory {directory} belongs to another user (uid {info.st_uid}): refusing it"
        )
    if info.st_mode & 0o077:
        raise CacheError(
            f"cache directory {directory} is open to group or others "
            f"(mode {stat.S_IMODE(info.st_mode):o}): run `chmod 700 {directory}`"
        )


def check_private_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise CacheError(f"cache file {path} is not a regular file: remove it with `elevate clear`")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise CacheError(
            f"cache file {path} belongs to another user (uid {info.st_uid}): refusing it; remove it"
        )
    if info.st_mode & 0o077:
        raise CacheError(
            f"cache file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}): "
            "its credentials may have leaked; remove it with `elevate clear` and elevate again"
        )


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, 0600 from birth."""
    from .atomic import write_atomically

    try:
        write_atomically(path, text.encode("utf-8"))
    except OSError as exc:
        raise CacheError(f"cannot write the cache file {path}: {exc.strerror}") from exc


@dataclass
class Lookup:
    """The outcome of reading one entry: fresh credentials, or why there are none."""

    creds: Optional[SessionCredentials]
    expired: bool = False


class SessionCache:
    """Entries of one store, with freshness, locking and the holder's error for waiters."""

    def __init__(self, store: Store, locks: FileStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.locks = locks
        self.clock = clock

    def get(self, key: str, refresh_before: int) -> Optional[SessionCredentials]:
        """Credentials with more than `refresh_before` seconds left, else None."""
        text = self.store.read(key)
        if text is None:
            return None
        creds = decode(text)
        if creds is None or creds.seconds_left(self.clock()) <= refresh_before:
            return None
        return creds

    def put(self, key: str, creds: SessionCredentials, label: str) -> None:
        self.store.write(key, encode(creds, label))
        with contextlib.suppress(OSError):  # absent, or something odd we leave to `clear`
            self.locks.path(key, ".error").unlink()

    def delete(self, key: str) -> bool:
        removed = self.store.delete(key)
        return self.locks.delete(key) or removed

    def wait_for_fill(
        self, key: str, refresh_before: int, on_wait: Callable[[], None], timeout: float = LOCK_WAIT_SECONDS
    ) -> Optional[SessionCredentials]:
        """After a miss, wait for the entry's lock and read again: the fast path's wait.

        Waiting here, before click and botocore are imported, keeps N concurrent callers
        from each paying for those imports. On a hit the lock is released; on a miss it is
        kept for this process's `locked` (so no other process slips in between), unless a
        holder failed meanwhile: then only the waiting time is handed over, so `locked`
        reports that failure.
        """
        path = self.locks.ensure() / f"{key}.lock"
        started = time.time()
        fd = _open_lock(path)
        try:
            _acquire(fd, timeout, on_wait, path)
            creds = self.get(key, refresh_before)
            failed = creds is None and self.failure_since(key, started) is not None
        except BaseException:
            os.close(fd)
            raise
        if creds is not None or failed:
            os.close(fd)
            fd = -1
        if creds is None:
            _HANDED_OVER[str(path)] = (fd, started)
        return creds

    @contextlib.contextmanager
    def locked(
        self, key: str, on_wait: Callable[[], None], timeout: float = LOCK_WAIT_SECONDS
    ) -> Iterator[float]:
        """Hold the entry's exclusive lock; yield the time we started waiting (epoch)."""
        directory = self.locks.ensure()
        path = directory / f"{key}.lock"
        fd, started = _HANDED_OVER.pop(str(path), (-1, time.time()))
        try:
            if fd < 0:
                fd = _open_lock(path)
                _acquire(fd, timeout, on_wait, path)
            yield started
        finally:
            if fd >= 0:
                os.close(fd)  # closing releases the lock

    def record_failure(self, key: str, error: ElevateError) -> None:
        """Leave the holder's error for the processes waiting on the same entry."""
        text = json.dumps({"message": error.message, "exit_code": error.exit_code, "time": time.time()})
        with contextlib.suppress(ElevateError, OSError):
            write_private(self.locks.path(key, ".error"), text)

    def failure_since(self, key: str, since: float) -> Optional[ElevateError]:
        """The error a holder recorded after `since`, if any."""
        try:
            data = json.loads(self.locks.read(key, ".error") or "{}")
            if float(data["time"]) < since:
                return None
            error = ElevateError(f"another elevate process failed: {data['message']}")
            error.exit_code = int(data["exit_code"])
            return error
        except (CacheError, OSError, ValueError, KeyError, TypeError):
            return None


# Entry locks this process took in `wait_for_fill` and left for `locked`:
# lock path -> (fd, or -1 when released, and the time the wait started).
_HANDED_OVER: dict[str, tuple[int, float]] = {}


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:  # a directory or a symlink in its place, a read-only disk...
        raise CacheError(f"cannot open the lock file {path} ({exc.strerror}): remove it") from exc


def _acquire(fd: int, timeout: float, on_wait: Callable[[], None], path: Path) -> None:
    deadline = time.monotonic() + timeout
    told = False
    while True:
        if _try_lock(fd):
            return
        if not told:
            on_wait()
            told = True
        if time.monotonic() >= deadline:
            raise CacheError(
                f"gave up after {timeout:.0f} s waiting for another elevate process "
                f"(lock {path}); retry, or run `elevate clear` if it is stuck"
            )
        time.sleep(_POLL)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False


class UsedCodes:
    """Codes STS accepted, per MFA device, remembered (hashed) for their TOTP window.

    A TOTP code is accepted only once: sending it again earns an AccessDenied, so a
    second elevation inside the window is told to wait for the next code instead.
    """

    KEEP_SECONDS = 90  # STS also accepts the neighbouring 30-second windows

    def __init__(self, files: FileStore, clock: Callable[[], datetime]) -> None:
        self.files = files
        self.clock = clock

    def _key(self, serial: str) -> str:
        return _digest(["mfa-used", serial])

    def _fingerprint(self, serial: str, code: str) -> str:
        return hashlib.sha256(f"{serial}\0{code}".encode()).hexdigest()

    def was_used(self, serial: str, code: str) -> bool:
        try:
            data = json.loads(self.files.read(self._key(serial)) or "{}")
            now = self.clock().timestamp()
            return any(
                entry.get("fp") == self._fingerprint(serial, code)
                and now - float(entry.get("t", 0)) < self.KEEP_SECONDS
                for entry in data.get("used", [])
            )
        except (CacheError, ValueError, TypeError, AttributeError):
            return False

    def last_use(self, serial: str) -> Optional[float]:
        try:
            data = json.loads(self.files.read(self._key(serial)) or "{}")
            times = [float(e.get("t", 0)) for e in data.get("used", [])]
            return max(times) if times else None
        except (CacheError, ValueError, TypeError, AttributeError):
            return None

    def remember(self, serial: str, code: str) -> None:
        now = self.clock().timestamp()
        try:
            data = json.loads(self.files.read(self._key(serial)) or "{}")
            used = [e for e in data.get("used", []) if now - float(e.get("t", 0)) < self.KEEP_SECONDS]
        except (CacheError, ValueError, TypeError, AttributeError):
            used = []
        used.append({"fp": self._fingerprint(serial, code), "t": now})
        with contextlib.suppress(CacheError):
            self.files.write(self._key(serial), json.dumps({"version": FORMAT_VERSION, "used": used}))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


__all__ = [
    "FileStore",
    "KeyringStore",
    "SessionCache",
    "UsedCodes",
    "cache_dir",
    "entry_key",
    "format_utc",
    "mfa_session_key",
    "utcnow",
]
