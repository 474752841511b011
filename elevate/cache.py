"""The session cache: elevated credentials shared by every elevate process of one user.

Entries live in a store (elevate.store: private 0600 files, or the OS keyring). A miss is
filled under an exclusive per-entry OS lock (elevate.locks), and the cache is re-read once
the lock is held, so any number of concurrent callers cost one MFA prompt and one
AssumeRole.

This module is on the fast path of a cache hit: it must not import boto3, botocore,
keyring or click.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from . import hitindex, locks
from .config import resolve_region
from .errors import CacheError, ElevateError
from .locks import LOCK_WAIT_SECONDS
from .models import Profile, SessionCredentials, parse_utc
from .store import FileStore, KeyringStore, Store, write_private
from .usedcodes import UsedCodes
from .validate import CLOCK_ALLOWANCE_SECONDS

FORMAT_VERSION = 1


def cache_dir(environ: Mapping[str, str]) -> Path:
    """$ELEVATE_CACHE_DIR, else $XDG_RUNTIME_DIR/elevate, else $XDG_CACHE_HOME/elevate.

    The rule itself lives in elevate.hitindex (standard library only, for the cache hit),
    so the hit and the full path can never disagree on where the cache is."""
    return Path(hitindex.cache_dir(environ))


def files(environ: Mapping[str, str]) -> FileStore:
    """The user's private cache directory as a store (also where locks and used codes live)."""
    return FileStore(cache_dir(environ))


def for_profile(
    profile: Profile, environ: Mapping[str, str], clock: Optional[Callable[[], datetime]] = None
) -> Optional[SessionCache]:
    """The session cache `profile` uses (its `cache` setting), or None when it is off."""
    if profile.cache == "off":
        return None
    directory = files(environ)
    store: Store = KeyringStore() if profile.cache == "keyring" else directory
    return SessionCache(store, directory, clock or utcnow)


def on_persistent_disk(environ: Mapping[str, str]) -> bool:
    """Whether the cache directory is the ~/.cache fallback (backed up, survives reboots)
    rather than a runtime directory (tmpfs) or one the user chose with ELEVATE_CACHE_DIR."""
    return not environ.get("ELEVATE_CACHE_DIR") and not environ.get("XDG_RUNTIME_DIR")


def for_mfa_session(
    profile: Profile, environ: Mapping[str, str], clock: Optional[Callable[[], datetime]] = None
) -> Optional[SessionCache]:
    """Where `profile`'s MFA session (up to 36 hours) is kept: never on a persistent disk by default.

    A runtime directory (or ELEVATE_CACHE_DIR) is used when there is one; otherwise the
    keyring, and when that fails too the session lives for this process only.
    """
    if profile.cache == "off":
        return None
    directory = files(environ)
    if profile.cache == "keyring" or on_persistent_disk(environ):
        return SessionCache(KeyringStore(), directory, clock or utcnow)
    return SessionCache(directory, directory, clock or utcnow)


def used_codes(environ: Mapping[str, str], clock: Optional[Callable[[], datetime]] = None) -> UsedCodes:
    """The record of MFA codes STS already accepted, kept beside the cache."""
    return UsedCodes(files(environ), clock or utcnow)


def sts_endpoint(profile: Profile, environ: Optional[Mapping[str, str]] = None) -> tuple[str, str]:
    """(endpoint override, region) that decide which STS answers: part of every entry's key.

    Credentials an endpoint gave are never served for another: pointing AWS_ENDPOINT_URL
    back at the real STS must not keep serving what a test or hostile endpoint handed out.
    """
    environ = os.environ if environ is None else environ
    endpoint = environ.get("AWS_ENDPOINT_URL_STS") or environ.get("AWS_ENDPOINT_URL") or ""
    return endpoint, resolve_region(profile.region, environ)


def entry_key(profile: Profile, environ: Optional[Mapping[str, str]] = None) -> str:
    """One entry per (role, MFA device, key set, session name, duration, STS endpoint, region)."""
    parts = [
        "creds",
        profile.role_arn,
        profile.mfa_serial,
        profile.key_set,
        profile.role_session_name or "",
        str(profile.duration_seconds),
        *sts_endpoint(profile, environ),
    ]
    return _digest(parts)


def mfa_session_key(profile: Profile, environ: Optional[Mapping[str, str]] = None) -> str:
    """One MFA session per (key set, MFA device, length, STS endpoint, region)."""
    parts = ["mfa-session", profile.key_set, profile.mfa_serial, str(profile.mfa_session_seconds)]
    return _digest([*parts, *sts_endpoint(profile, environ)])


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


def decode(text: str, role: bool = True) -> Optional[SessionCredentials]:
    """Credentials from a cache entry, or None when it is damaged in any way. Role
    credentials need a temporary key ID; an MFA session (`role` False) may have either."""
    from .validate import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_KEY_ID, SESSION_TOKEN

    try:
        data = json.loads(text)
        if data.get("version") != FORMAT_VERSION:
            return None
        values = (data["AccessKeyId"], data["SecretAccessKey"], data["SessionToken"])
        shapes = (ACCESS_KEY_ID if role else SESSION_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)
        if not all(isinstance(v, str) and s.fullmatch(v) for v, s in zip(values, shapes, strict=True)):
            return None
        return SessionCredentials(*values, expiration=parse_utc(data["Expiration"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class SessionCache:
    """Entries of one store, with freshness, locking and the holder's error for waiters."""

    def __init__(self, store: Store, locks: FileStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.locks = locks
        self.clock = clock

    def get(
        self, key: str, refresh_before: int, lifetime: Optional[int] = None, role: bool = True
    ) -> Optional[SessionCredentials]:
        """Credentials with more than `refresh_before` seconds left, else None.

        With `lifetime` (the duration asked of STS), an entry valid for longer than that
        plus a clock allowance is treated as damaged: no entry is served "for ever".
        """
        text = self.store.read(key)
        if text is None:
            return None
        creds = decode(text, role)
        if creds is None:
            return None
        left = creds.seconds_left(self.clock())
        if left <= refresh_before:
            return None
        if lifetime is not None and left > lifetime + CLOCK_ALLOWANCE_SECONDS:
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
        self,
        key: str,
        refresh_before: int,
        on_wait: Callable[[], None],
        timeout: float = LOCK_WAIT_SECONDS,
        lifetime: Optional[int] = None,
    ) -> Optional[SessionCredentials]:
        """After a miss, wait for the entry's lock and read again: the fast path's wait.

        Waiting here, before click and botocore are imported, keeps N concurrent callers
        from each paying for those imports. On a hit the lock is released; on a miss it is
        kept for this process's `locked` (so no other process slips in between), unless a
        holder failed meanwhile: then only the waiting time is handed over, so `locked`
        reports that failure.
        """
        path = self.locks.ensure() / f"{key}.lock"
        started = locks.wait_began(time.time())  # earlier if this process queued (elevate.hitwait)
        fd = locks.open_lock(path)
        try:
            locks.acquire(fd, timeout, on_wait, path)
            creds = self.get(key, refresh_before, lifetime)
            failed = creds is None and self.failure_since(key, started) is not None
        except BaseException:
            os.close(fd)
            raise
        if creds is not None or failed:
            os.close(fd)
            fd = -1
        if creds is None:
            locks.hand_over(path, fd, started)
        return creds

    @contextlib.contextmanager
    def locked(
        self, key: str, on_wait: Callable[[], None], timeout: float = LOCK_WAIT_SECONDS
    ) -> Iterator[float]:
        """Hold the entry's exclusive lock; yield the time we started waiting (epoch)."""
        directory = self.locks.ensure()
        path = directory / f"{key}.lock"
        fd, started = locks.take_over(path)
        try:
            if fd < 0:
                fd = locks.open_lock(path)
                locks.acquire(fd, timeout, on_wait, path)
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
            error = FailedElsewhere(str(data["message"]))
            error.exit_code = int(data["exit_code"])
            return error
        except (CacheError, OSError, ValueError, KeyError, TypeError):
            return None


class FailedElsewhere(ElevateError):
    """The error another elevate process recorded for the same entry, answered again."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"another elevate process failed: {reason}")
        self.reason = reason


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
