"""Long-term IAM keys in the OS keyring, under the service "aws-elevate".

Each key set is one JSON entry; an index entry lists the names, since keyring offers no
way to enumerate. Every keyring failure becomes a KeyringError that says what to
install or unlock.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import sys
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Optional

import keyring
import keyring.errors

from . import config, ui
from .errors import KeyringError, UsageError
from .models import SourceKeys, format_utc, parse_utc

log = logging.getLogger("elevate")

SERVICE = "aws-elevate"
_INDEX = "__index__"
ACCESS_KEY_ID = re.compile(r"^AKIA[A-Z0-9]{12,124}$", re.ASCII)
SECRET_ACCESS_KEY = re.compile(r"^[A-Za-z0-9/+]{40}$", re.ASCII)

NO_BACKEND_HELP = (
    "no usable OS keyring: on a Linux desktop start a Secret Service (gnome-keyring or KWallet); "
    "over SSH, on WSL or in a container install the encrypted file keyring "
    "(`./scripts/install --headless`, or pip install 'aws-elevate[headless]') and run "
    "`elevate keys add NAME`, which asks for a new passphrase (see the README's "
    "\"Headless Linux, SSH and WSL\"); PYTHON_KEYRING_BACKEND selects a backend"
)


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


def backend_name(name: str = _INDEX) -> str:
    """The backend that holds (or would store) entry `name`, by its qualified class name."""
    with _keyring_errors():
        return _qualified(holding_backend(name))


def check_backend(name: str = _INDEX) -> None:
    """Refuse a backend that stores secrets unencrypted, unless the user opted in knowingly."""
    held_by = backend_name(name)
    log.debug("keyring backend for %r: %s", name, held_by)
    if held_by == "keyring.backends.fail.Keyring":  # keyring found no backend at all
        raise KeyringError(f"{no_backend_help()} (keyring: {held_by})")
    if held_by in PLAINTEXT_BACKENDS and os.environ.get(ALLOW_PLAINTEXT) != "1":
        raise KeyringError(
            f"the keyring backend {held_by} keeps secrets unencrypted: refusing to keep the long-term "
            f"key there; use {SAFE_CHOICES}, or set {ALLOW_PLAINTEXT}=1 to accept it (see SECURITY.md)"
        )


def get_keys(name: str) -> SourceKeys:
    """The key set `name`, or a KeyringError naming `elevate keys add`."""
    check_backend(name)
    with _keyring_errors():
        raw = keyring.get_password(SERVICE, name)
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
        return keyring.get_password(SERVICE, name) is not None


def put_keys(name: str, keys: SourceKeys) -> None:
    """Store (or replace) the key set `name` and record it in the index."""
    check_backend(name)
    entry = {"aws_access_key_id": keys.access_key_id, "aws_secret_access_key": keys.secret_access_key}
    if keys.created is not None:
        entry["created"] = format_utc(keys.created)
    with _keyring_errors():
        keyring.set_password(SERVICE, name, json.dumps(entry))
        names = _index()
        if name not in names:
            keyring.set_password(SERVICE, _INDEX, json.dumps(sorted([*names, name])))


def delete_keys(name: str) -> None:
    """Remove the key set `name`; a KeyringError if there is none."""
    with _keyring_errors():
        exists = keyring.get_password(SERVICE, name) is not None
        if exists:
            keyring.delete_password(SERVICE, name)
        names = _index()
        if name in names:
            keyring.set_password(SERVICE, _INDEX, json.dumps([n for n in names if n != name]))
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
        return keyring.get_password(SERVICE, username)


def set_secret(username: str, value: str) -> None:
    with _keyring_errors():
        keyring.set_password(SERVICE, username, value)


def delete_secret(username: str) -> None:
    with _keyring_errors():
        try:
            keyring.delete_password(SERVICE, username)
        except keyring.errors.PasswordDeleteError:
            pass


def _index() -> list[str]:
    raw = keyring.get_password(SERVICE, _INDEX)
    try:
        names = json.loads(raw) if raw else []
    except ValueError:
        names = []
    return [n for n in names if isinstance(n, str)]


# Encrypted keyring files that ask for a passphrase (keyrings.cryptfile: Argon2id + AES-GCM).
# The backend would ask with getpass, which falls back to reading stdin; elevate asks on the
# terminal itself, before the backend is first used, and hands the passphrase over in memory.
ENCRYPTED_FILE_BACKENDS = frozenset({"keyrings.cryptfile.cryptfile.CryptFileKeyring"})
PASSPHRASE_ATTEMPTS = 3
PASSPHRASE_TIMEOUT = 120.0
MIN_PASSPHRASE = 8
# (prompt) -> the line typed without echo, or None when there is no terminal to ask on.
Asker = Callable[[str], Optional[str]]


def file_keyrings() -> list[Any]:
    """The passphrase-protected keyring files among the backends in use (the chainer's members too)."""
    backend = keyring.get_keyring()
    chained = _qualified(backend).endswith("chainer.ChainerBackend")
    members = list(getattr(backend, "backends", None) or []) if chained else []
    if not members:
        return [backend] if _qualified(backend) in ENCRYPTED_FILE_BACKENDS else []
    # A chainer writes to its first member only, and a file member reads nothing (so asks for
    # nothing) while its file does not exist: a desktop keyring first needs no passphrase.
    return [
        b
        for index, b in enumerate(members)
        if _qualified(b) in ENCRYPTED_FILE_BACKENDS
        and (index == 0 or os.path.exists(str(getattr(b, "file_path", ""))))
    ]


def unlock(ask: Optional[Asker] = None) -> None:
    """Give each locked keyring file its passphrase, asked on the terminal (never argv or the
    environment); a new file gets a new passphrase, typed twice. A KeyringError when no
    terminal is there to ask on, or the passphrase is wrong three times."""
    asker = ask or ask_on_tty
    for backend in file_keyrings():
        if getattr(backend, "_keyring_key", None) is not None:
            continue  # unlocked earlier in this process
        path = str(getattr(backend, "file_path", "the keyring file"))
        if _is_new(backend):
            log.debug("keyring file %s: new, asking for a new passphrase", path)
            backend.keyring_key = _new_passphrase(asker, path)
            continue
        log.debug("keyring file %s: asking for its passphrase", path)
        for attempt in range(1, PASSPHRASE_ATTEMPTS + 1):
            passphrase = _ask(asker, f"Passphrase for the encrypted keyring {path}: ", path)
            try:
                backend.keyring_key = passphrase
            except (ValueError, AssertionError, KeyError, TypeError) as exc:
                if attempt == PASSPHRASE_ATTEMPTS:
                    raise KeyringError(
                        f"wrong passphrase for the encrypted keyring {path} ({PASSPHRASE_ATTEMPTS} tries)"
                    ) from exc
                ui.tell("that passphrase does not open the keyring. Try again.")
                continue
            break


def _is_new(backend: Any) -> bool:
    check = getattr(backend, "_check_file", None)
    if callable(check):
        return not check()
    return not os.path.exists(str(getattr(backend, "file_path", "")))  # pragma: no cover


def _new_passphrase(asker: Asker, path: str) -> str:
    for _ in range(PASSPHRASE_ATTEMPTS):
        first = _ask(asker, f"New passphrase for the encrypted keyring {path}: ", path)
        if len(first) < MIN_PASSPHRASE:
            ui.tell(f"a passphrase needs at least {MIN_PASSPHRASE} characters. Try again.")
            continue
        if _ask(asker, "The same passphrase again: ", path) != first:
            ui.tell("the two passphrases differ. Try again.")
            continue
        return first
    raise KeyringError(f"no new passphrase set for the encrypted keyring {path}")


def _ask(asker: Asker, prompt: str, path: str) -> str:
    answer = asker(prompt)
    if answer is None:
        raise KeyringError(
            f"the encrypted keyring {path} needs its passphrase and there is no terminal to ask on: "
            "run the same elevate command in a terminal (a fresh session cache then answers "
            "credential_process without the keyring), or use a Secret Service (see the README's "
            '"Headless Linux, SSH and WSL")'
        )
    if not answer.strip():
        raise KeyringError("no passphrase entered")
    return answer


def ask_on_tty(prompt: str) -> Optional[str]:
    """A line typed at the controlling terminal with echo off; None when there is no terminal.

    Bounded in time, and refused at once from a background job (the keys typed would go
    to the shell).
    """
    with ui.open_tty() as tty:
        if tty is None:
            return None
        fd = tty.fileno()
        try:
            if os.tcgetpgrp(fd) != os.getpgrp():
                raise KeyringError(
                    "elevate is running in the background (a job started with &?), so it cannot "
                    "read the keyring passphrase from the terminal: run it in the foreground"
                )
            saved: Optional[list[Any]] = termios.tcgetattr(fd)
        except termios.error:
            saved = None  # not a terminal after all: read it as it comes
        tty.write(prompt)
        tty.flush()
        if saved is not None:
            quiet = list(saved)
            quiet[3] = quiet[3] & ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
        try:
            deadline = time.monotonic() + PASSPHRASE_TIMEOUT
            while not select.select([tty], [], [], max(0.0, min(1.0, deadline - time.monotonic())))[0]:
                if time.monotonic() >= deadline:
                    raise KeyringError(f"no passphrase entered within {PASSPHRASE_TIMEOUT:.0f} s")
            line = tty.readline()
        finally:
            if saved is not None:
                termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
                tty.write("\n")
                tty.flush()
        return line.rstrip("\r\n") if line else None


@contextmanager
def _keyring_errors() -> Iterator[None]:
    """Translate any backend failure into a KeyringError with its real cause and a remedy."""
    try:
        unlock()
        yield
    except keyring.errors.NoKeyringError as exc:
        raise KeyringError(f"{no_backend_help()} (keyring: {cause(exc)})") from exc
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
            raise KeyringError(f"{no_backend_help()} (keyring: {why})") from exc
        raise KeyringError(f"the OS keyring failed ({why}): {no_backend_help()}") from exc


def cause(exc: BaseException) -> str:
    """The exception's type and the first line of its message (bounded), its real cause."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    inner = exc.__cause__ or exc.__context__
    if not text and inner is not None:
        return cause(inner)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def no_backend_help(platform: str = sys.platform) -> str:
    """What to do when no keyring backend works, for this platform."""
    if platform == "darwin":
        return "no usable OS keyring: the macOS login keychain is used; unlock it (security unlock-keychain)"
    if platform.startswith("win"):
        return (
            "no usable OS keyring: Windows Credential Manager is used; log in as the user who "
            "stored the keys"
        )
    return NO_BACKEND_HELP
