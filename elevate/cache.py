"""The session cache: elevated credentials shared by every elevate process of one user.

Entries live in a store (elevate.store: private 0600 files, or the OS keyring). A miss is
filled under an exclusive per-entry OS lock (elevate.locks), and the cache is re-read once
the lock is held, so any number of concurrent callers cost one MFA prompt and one
AssumeRole. The entry's text and when it may be served are elevate.disk's rules, which the
cache hit (elevate.hit) applies too.

Entry names start with a digest of the key set, so `forget_key_set` finds every entry of a
key set whose key was replaced or removed; an MFA session's key includes a fingerprint of
the access key that made it, so a replaced key never signs with the old key's session.

It must not import boto3, botocore, keyring or click.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Optional

from . import disk, locks
from .errors import CacheError, ElevateError, FailedElsewhere
from .invocation import Invocation
from .invocation import utcnow as utcnow  # the clock other modules take from here
from .locks import LOCK_WAIT_SECONDS
from .models import Profile, SessionCredentials, parse_utc
from .store import FileStore, KeyringStore, Store, write_private
from .usedcodes import UsedCodes

FORMAT_VERSION = disk.FORMAT_VERSION
KEY_MARKER = "keyset-"  # + the key set's digest + ".id": the fingerprint of its current key


def cache_dir(environ: Mapping[str, str]) -> Path:
    """$ELEVATE_CACHE_DIR, else $XDG_RUNTIME_DIR/elevate, else $XDG_CACHE_HOME/elevate (elevate.disk).
    For a caller without an invocation (doctor); Invocation.cache_dir is the same rule."""
    return Path(disk.cache_dir(environ))


def files(invocation: Invocation) -> FileStore:
    """The user's private cache directory as a store (also where locks and used codes live)."""
    return FileStore(invocation.cache_dir)


def for_profile(
    profile: Profile, invocation: Invocation, clock: Optional[Callable[[], datetime]] = None
) -> Optional[SessionCache]:
    """The session cache `profile` uses (its `cache` setting), or None when it is off."""
    if profile.cache == "off":
        return None
    directory = files(invocation)
    store: Store = KeyringStore() if profile.cache == "keyring" else directory
    return SessionCache(store, directory, clock or invocation.clock)


def on_persistent_disk(invocation: Invocation) -> bool:
    """Whether the cache directory is the ~/.cache fallback (backed up, survives reboots)
    rather than a runtime directory (tmpfs) or one the user chose with ELEVATE_CACHE_DIR."""
    environ = invocation.environ
    return not environ.get("ELEVATE_CACHE_DIR") and not environ.get("XDG_RUNTIME_DIR")


def for_mfa_session(
    profile: Profile, invocation: Invocation, clock: Optional[Callable[[], datetime]] = None
) -> Optional[SessionCache]:
    """Where `profile`'s MFA session (up to 36 hours) is kept: never on a persistent disk by default.

    A runtime directory (or ELEVATE_CACHE_DIR) is used when there is one; otherwise the
    keyring, and when that fails too the session lives for this process only.
    """
    if profile.cache == "off":
        return None
    directory = files(invocation)
    clock = clock or invocation.clock
    if profile.cache == "keyring" or on_persistent_disk(invocation):
        return SessionCache(KeyringStore(), directory, clock)
    return SessionCache(directory, directory, clock)


def used_codes(invocation: Invocation, clock: Optional[Callable[[], datetime]] = None) -> UsedCodes:
    """The record of MFA codes STS already accepted, kept beside the cache."""
    return UsedCodes(files(invocation), clock or invocation.clock)


def key_fingerprint(access_key_id: str) -> str:
    """What names a key in cache keys: a digest, never the key ID itself."""
    return _digest(["access-key", access_key_id])[:16]


def _key_marker(key_set: str) -> str:
    return KEY_MARKER + _key_set_prefix(key_set)


def _key_set_prefix(key_set: str) -> str:
    return _digest(["key-set", key_set])[:12]


def known_key(key_set: str, invocation: Invocation) -> str:
    """The fingerprint of the key `key_set` last elevated with (elevate.disk's private read), or ""."""
    text = disk.read_private(str(invocation.cache_dir), _key_marker(key_set) + ".id") or ""
    return text if len(text) == 16 and text.isascii() and text.isalnum() else ""


def note_key(key_set: str, access_key_id: str, invocation: Invocation) -> None:
    """Remember which key `key_set` holds now, for the keys of its entries (best effort)."""
    fingerprint = key_fingerprint(access_key_id)
    if known_key(key_set, invocation) != fingerprint:
        with contextlib.suppress(ElevateError, OSError):
            files(invocation).write(_key_marker(key_set), fingerprint, suffix=".id")


def forget_key_set(key_set: str, invocation: Invocation) -> int:
    """Remove every cached file of `key_set` (role entries, MFA sessions, their errors and the
    key's fingerprint): its key was replaced or removed. The number removed."""
    store = files(invocation)
    prefix = _key_set_prefix(key_set)
    removed = 0
    try:
        names = os.listdir(store.directory)
    except OSError:
        return 0
    for name in names:
        if name.startswith((prefix, _key_marker(key_set))) and name.endswith((".json", ".error", ".id")):
            with contextlib.suppress(OSError):
                os.unlink(store.directory / name)
                removed += 1
    return removed


def entry_key(profile: Profile, invocation: Invocation) -> str:
    """One entry per (key set, role, MFA device, session name, duration, STS endpoint, region,
    scope). A scope adds its name and the hash of the policies it sends, so an edited policy
    never serves credentials minted under the old one; unscoped keys are unchanged.

    Not per key: the entry is looked up before the keyring is read (a hit never reads it);
    `forget_key_set` removes a replaced key's entries instead."""
    parts = [
        "creds",
        profile.role_arn,
        profile.mfa_serial,
        profile.key_set,
        profile.role_session_name or "",
        str(profile.duration_seconds),
        *_sts_parts(profile, invocation),
    ]
    if profile.scope is not None:
        parts += ["scope", profile.scope.name, profile.scope.digest]
    return _key_set_prefix(profile.key_set) + _digest(parts)


def mfa_session_key(profile: Profile, invocation: Invocation, fingerprint: Optional[str] = None) -> str:
    """One MFA session per (key set and its key, MFA device, length, STS endpoint, region).

    `fingerprint`: of the key just loaded from the keyring (else the one last noted), so a
    replaced key never signs with the old key's session."""
    key = known_key(profile.key_set, invocation) if fingerprint is None else fingerprint
    parts = ["mfa-session", profile.key_set, key, profile.mfa_serial, str(profile.mfa_session_seconds)]
    return _key_set_prefix(profile.key_set) + _digest([*parts, *_sts_parts(profile, invocation)])


def _sts_parts(profile: Profile, invocation: Invocation) -> tuple[str, str]:
    """(endpoint, region) that decide which STS answers: part of every entry's key.

    Credentials an endpoint gave are never served for another: pointing AWS_ENDPOINT_URL
    (or an endpoint_url in ~/.aws/config) back at the real STS must not keep serving what a
    test or hostile endpoint handed out. The invocation's resolution, which the request uses too.
    """
    target = invocation.sts(profile.region)
    return target.endpoint_url, target.region


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def encode(creds: SessionCredentials, label: str, serve_until: int = 0) -> str:
    """The entry's text (elevate.disk's codec)."""
    values = (creds.access_key_id, creds.secret_access_key, creds.session_token, creds.expiration_iso())
    return disk.encode_entry(*values, label, serve_until)


def decode(text: str, role: bool = True) -> Optional[SessionCredentials]:
    """Credentials from a cache entry, or None when it is damaged in any way (elevate.disk's codec).
    Role credentials need a temporary key ID; an MFA session (`role` False) may have either."""
    found = disk.decode_entry(text, role)
    if found is None:
        return None
    key_id, secret, token, expiration, _, _ = found
    return SessionCredentials(key_id, secret, token, expiration=parse_utc(expiration))


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
        found = self.entry(key, role)
        if found is None:
            return None
        creds, serve_until = found
        life = 1 << 40 if lifetime is None else lifetime
        expires = int(creds.expiration.timestamp())
        return (
            creds
            if disk.fresh(expires, serve_until, self.clock().timestamp(), refresh_before, life)
            else None
        )

    def entry(self, key: str, role: bool = True) -> Optional[tuple[SessionCredentials, int]]:
        """The entry's credentials and serve-until time (0: none), fresh or not; None if absent or damaged."""
        text = self.store.read(key)
        found = None if text is None else disk.decode_entry(text, role)
        if found is None:
            return None
        key_id, secret, token, expiration, _, serve_until = found
        return SessionCredentials(key_id, secret, token, expiration=parse_utc(expiration)), serve_until

    def put(self, key: str, creds: SessionCredentials, label: str, serve_until: int = 0) -> None:
        self.store.write(key, encode(creds, label, serve_until))
        with contextlib.suppress(OSError):  # absent, or something odd we leave to `clear`
            self.locks.path(key, ".error").unlink()

    def delete(self, key: str) -> bool:
        removed = self.store.delete(key)
        return self.locks.delete(key) or removed

    @contextlib.contextmanager
    def locked(
        self,
        key: str,
        on_wait: Callable[[], None],
        timeout: float = LOCK_WAIT_SECONDS,
        queued_since: Optional[float] = None,
    ) -> Iterator[float]:
        """Hold the entry's exclusive lock; yield the time we started waiting (epoch): now, or
        `queued_since` when this process waited in the hit queue first (a failure recorded
        since then is an answer to it too)."""
        directory = self.locks.ensure()
        path = directory / f"{key}.lock"
        started = min(time.time(), queued_since or time.time())
        fd = locks.open_lock(path)
        try:
            locks.acquire(fd, timeout, on_wait, path)
            yield started
        finally:
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
