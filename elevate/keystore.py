"""Long-term IAM keys in the OS keyring, under the service "aws-elevate".

Each key set is one JSON entry; an index entry lists the names, since keyring offers no
way to enumerate. An entry over the OS keyring's size limit (Windows Credential Manager:
2,560 bytes) is kept in parts (elevate.keyparts). Every keyring failure becomes a
KeyringError that says what to install or unlock.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Optional

import keyring
import keyring.errors

from . import config, hostos, keyfile, keyparts
from .errors import KeyringError, UsageError
from .models import SourceKeys, format_utc, parse_utc

log = logging.getLogger("elevate")

SERVICE = "aws-elevate"
_INDEX = "__index__"
ACCESS_KEY_ID = re.compile(r"^AKIA[A-Z0-9]{12,124}$", re.ASCII)
SECRET_ACCESS_KEY = re.compile(r"^[A-Za-z0-9/+]{40}$", re.ASCII)

_NO_BACKEND = (
    "no usable OS keyring: on a Linux desktop start a Secret Service (gnome-keyring or KWallet); "
    "over SSH, on WSL or in a container install the encrypted file keyring "
    "(`./scripts/install --headless` from the clone) and run "
    "{then}, which asks for a new passphrase (see the README's "
    '"Headless Linux, SSH and WSL"); PYTHON_KEYRING_BACKEND selects a backend'
)
# What to run once a keyring is installed: by default the command that stores a key set.
KEYS_ADD = "`elevate keys add NAME`"


def check_name(name: str) -> str:
    """A valid key-set name (the same rule as profile names), else a UsageError."""
    return config.check_name(name, "key set name")


def check_keys(access_key_id: str, secret_access_key: str) -> SourceKeys:
    """Validate the shape of a long-term key pair (never echoing the secret)."""
    access_key_id = access_key_id.strip()
    secret_access_key = secret_access_key.strip()
    if not ACCESS_KEY_ID.fullmatch(access_key_id):
        hint = (
            " (ASIA... keys are temporary; store a long-term AKIA... key)"
            if access_key_id.startswith("ASIA")
            else ""
        )
        # Show part of the value only when it looks like a key ID: swapped lines would
        # otherwise put a piece of the secret on the screen.
        shown = (
            repr(mask(access_key_id))
            if access_key_id.startswith(("AKIA", "ASIA"))
            else (f"of {len(access_key_id)} characters")
        )
        raise UsageError(
            f"access key ID {shown} is not a long-term key ID (AKIA followed by "
            f"16 upper-case letters or digits){hint}"
        )
    if not SECRET_ACCESS_KEY.fullmatch(secret_access_key):
        raise UsageError(
            f"the secret access key is not 40 characters of A-Z, a-z, 0-9, / and + "
            f"(got {len(secret_access_key)} characters)"
        )
    return SourceKeys(access_key_id, secret_access_key, created=datetime.now(timezone.utc))


def mask(access_key_id: str) -> str:
    """AKIA************MPLE: enough to tell keys apart, never the whole ID."""
    if len(access_key_id) <= 8:
        return "*" * len(access_key_id)
    return access_key_id[:4] + "*" * (len(access_key_id) - 8) + access_key_id[-4:]


# Backends that keep secrets unencrypted on disk (or not at all): refused for long-term keys.
PLAINTEXT_BACKENDS = frozenset(
    {
        "keyrings.alt.file.PlaintextKeyring",
        "keyrings.alt.multi.MultipartKeyringWrapper",
    }
)
ALLOW_PLAINTEXT = "ELEVATE_ALLOW_PLAINTEXT_KEYRING"
SAFE_CHOICES = (
    "the OS keyring (Secret Service on Linux, the macOS Keychain, the Windows Credential Locker) "
    "or an encrypted file backend (see the README's headless section)"
)


# keyring's own backend for each platform (elevate.hostos owns the table).
PLATFORM_BACKENDS = hostos.KEYRING_BACKENDS
_backend_chosen = False


def choose_backend(platform: str = sys.platform) -> None:
    """Set keyring's backend once, in keyring's own order but without its discovery where it can:
    PYTHON_KEYRING_BACKEND, then keyring's config file (keyring.core's loaders, errors and all),
    then this platform's backend imported directly when it is usable. Only when none is does
    keyring discover on first use (the entry points of every installed package, every backend
    imported and asked for its priority), as it always did."""
    global _backend_chosen
    if _backend_chosen:
        return
    _backend_chosen = True
    backend = backend_for(platform)
    if backend is not None:
        keyring.set_keyring(backend)


def backend_for(platform: str = sys.platform) -> Optional[keyring.backend.KeyringBackend]:
    """The backend choose_backend sets on `platform` (nothing is set here), or None when
    keyring's discovery is left to decide."""
    import keyring.core

    backend = keyring.core.load_env() or keyring.core.load_config()
    name = hostos.keyring_backend(platform)
    if backend is None and name is not None:
        try:
            backend = keyring.core.load_keyring(name)
        except Exception as exc:  # noqa: BLE001 - not usable here: keyring's discovery decides
            log.debug("keyring: %s not usable (%s); discovering backends", name, cause(exc))
    return backend


def _qualified(backend: object) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def holding_backend(name: str = _INDEX) -> object:
    """The backend that holds entry `name` (a chainer's member that has it, else the one it
    writes to), so a plaintext backend cannot hide behind keyring's ChainerBackend."""
    backend = keyring.get_keyring()
    members = getattr(backend, "backends", None)
    if not members or not _qualified(backend).endswith("chainer.ChainerBackend"):
        return backend
    for member in members:
        try:
            if member.get_password(SERVICE, name) is not None:
                return member
        except Exception:  # noqa: BLE001, S112 - a member that fails holds nothing for us
            continue
    return members[0]


def backend_name(name: str = _INDEX, then: str = KEYS_ADD) -> str:
    """The backend that holds (or would store) entry `name`, by its qualified class name."""
    with _keyring_errors(then=then):
        return _qualified(holding_backend(name))


def check_backend(name: str = _INDEX, then: str = KEYS_ADD) -> None:
    """Refuse a backend that stores secrets unencrypted, unless the user opted in knowingly;
    where there is no backend at all, the remedy ends with running `then`."""
    held_by = backend_name(name, then)
    log.debug("keyring backend for %r: %s", name, held_by)
    if held_by == "keyring.backends.fail.Keyring":  # keyring found no backend at all
        raise KeyringError(f"{no_backend_help(then=then)} (keyring: {held_by})")
    if held_by in PLAINTEXT_BACKENDS and os.environ.get(ALLOW_PLAINTEXT) != "1":
        raise KeyringError(
            f"the keyring backend {held_by} keeps secrets unencrypted: refusing to keep the long-term "
            f"key there; use {SAFE_CHOICES}, or set {ALLOW_PLAINTEXT}=1 to accept it (see SECURITY.md)"
        )


def get_keys(name: str) -> SourceKeys:
    """The key set `name`, or a KeyringError naming `elevate keys add`."""
    check_backend(name)
    with _keyring_errors():
        raw = _get(name)
    if raw is None:
        raise KeyringError(f"no keys stored as {name!r}: run `elevate keys add {name}`")
    try:
        data = json.loads(raw)
        created = data.get("created")
        return SourceKeys(
            access_key_id=data["aws_access_key_id"],
            secret_access_key=data["aws_secret_access_key"],
            created=parse_utc(created) if created else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise KeyringError(
            f"the keyring entry for {name!r} is damaged: run `elevate keys add {name}` again"
        ) from None


def has_keys(name: str) -> bool:
    """Whether a key set `name` is stored (damaged or not)."""
    with _keyring_errors():
        return _get(name) is not None


def usable_has_keys(name: str, then: str) -> bool:
    """Whether a key set `name` is stored, once the keyring is known to be usable for it (a
    KeyringError, whose remedy ends with running `then`, when it is not): asked before a key
    is typed, so that a keyring that cannot take it does not lose it."""
    check_backend(name, then)
    with _keyring_errors(then=then):
        return _get(name) is not None


def put_keys(name: str, keys: SourceKeys, platform: str = sys.platform) -> None:
    """Store (or replace) the key set `name` and record it in the index."""
    check_backend(name)
    entry = {"aws_access_key_id": keys.access_key_id, "aws_secret_access_key": keys.secret_access_key}
    if keys.created is not None:
        entry["created"] = format_utc(keys.created)
    with _keyring_errors(create=True):
        _set(name, json.dumps(entry), platform)
        names = _index()
        if name not in names:
            _set(_INDEX, json.dumps(sorted([*names, name])), platform)


def delete_keys(name: str, platform: str = sys.platform) -> None:
    """Remove the key set `name`; a KeyringError if there is none."""
    with _keyring_errors():
        exists = _get(name) is not None
        if exists:
            _delete(name)
        names = _index()
        if name in names:
            _set(_INDEX, json.dumps([n for n in names if n != name]), platform)
    if not exists:
        raise KeyringError(f"no keys stored as {name!r}")


def list_key_sets() -> list[tuple[str, SourceKeys]]:
    """Every indexed key set that still exists, by name."""
    with _keyring_errors():
        names = _index()
    found = []
    for name in names:
        try:
            found.append((name, get_keys(name)))
        except KeyringError:
            continue
    return found


def get_secret(username: str) -> Optional[str]:
    """A raw entry of ours (used by the keyring-backed session cache)."""
    with _keyring_errors():
        return _get(username)


def set_secret(username: str, value: str, platform: str = sys.platform) -> None:
    """Store a raw entry of ours (in parts where the OS keyring's limit needs: elevate.keyparts)."""
    with _keyring_errors(create=True):
        _set(username, value, platform)


def delete_secret(username: str) -> None:
    with _keyring_errors():
        _delete(username)


def _index() -> list[str]:
    raw = _get(_INDEX)
    try:
        names = json.loads(raw) if raw else []
    except ValueError:
        names = []
    return [n for n in names if isinstance(n, str)]


def _get(name: str) -> Optional[str]:
    return keyparts.read(name, _entry)


def _set(name: str, value: str, platform: str) -> None:
    keyparts.write(name, value, _entry, _put_entry, _remove_entry, hostos.keyring_secret_limit(platform))


def _delete(name: str) -> None:
    keyparts.remove_all(name, _entry, _remove_entry)


def _entry(name: str) -> Optional[str]:
    return keyring.get_password(SERVICE, name)


def _put_entry(name: str, value: str) -> None:
    keyring.set_password(SERVICE, name, value)


def _remove_entry(name: str) -> None:
    try:
        keyring.delete_password(SERVICE, name)
    except keyring.errors.PasswordDeleteError:
        pass


@contextmanager
def _keyring_errors(create: bool = False, then: str = KEYS_ADD) -> Iterator[None]:
    """Translate any backend failure into a KeyringError with its real cause and a remedy (which
    ends with running `then`). Only a block that stores (`create`) makes a new keyring file:
    without one, a read finds nothing and asks for no passphrase."""
    try:
        choose_backend()
        keyfile.unlock(create=create)
        yield
    except keyring.errors.NoKeyringError as exc:
        raise KeyringError(f"{no_backend_help(then=then)} (keyring: {cause(exc)})") from exc
    except keyring.errors.KeyringLocked as exc:
        raise KeyringError(
            "the OS keyring is locked: unlock it (log in to the desktop, or "
            f"`gnome-keyring-daemon --unlock`) and retry (keyring: {cause(exc)})"
        ) from exc
    except KeyringError:
        raise
    except Exception as exc:  # backends raise their own (D-Bus, secretstorage) types
        why = cause(exc)
        if "locked" in why.lower() or "dismissed" in why.lower():
            raise KeyringError(f"the OS keyring refused access ({why}): unlock it and retry") from exc
        if isinstance(exc, RuntimeError) and "backend" in why.lower():
            raise KeyringError(f"{no_backend_help(then=then)} (keyring: {why})") from exc
        raise KeyringError(f"the OS keyring failed ({why}): {no_backend_help(then=then)}") from exc


def cause(exc: BaseException) -> str:
    """The exception's type and the whole first line of its message, its real cause (a backend's
    line of more than 2,000 characters is cut there, marked with "...")."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = first if len(first) <= 2000 else first[:2000] + "..."
    inner = exc.__cause__ or exc.__context__
    if not text and inner is not None:
        return cause(inner)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def no_backend_help(platform: str = sys.platform, then: str = KEYS_ADD) -> str:
    """What to do when no keyring backend works, for this platform (on Linux: install one, then
    run `then`)."""
    return hostos.keyring_help(platform) or _NO_BACKEND.format(then=then)
