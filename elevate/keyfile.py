"""Encrypted keyring files (keyrings.cryptfile): the passphrase asked on the terminal, never read
from stdin, argv or the environment, and handed to the backend in memory."""

from __future__ import annotations

import logging
import os
import select
import termios
import time
from collections.abc import Callable
from typing import Any, Optional

import keyring

from . import ui
from .errors import KeyringError

log = logging.getLogger("elevate")


def _qualified(backend: object) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


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
            passphrase = _new_passphrase(asker, path)
            _private_directory(path)  # before the backend, which creates the file as it takes the key
            backend.keyring_key = passphrase
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


def _private_directory(path: str) -> None:
    """Create the new keyring file's directory 0700: the backend would make it 0755, showing
    everyone that the file is there and when it changes."""
    directory = os.path.dirname(path)
    if not directory or os.path.isdir(directory):
        return
    try:
        os.makedirs(directory, 0o700)
    except OSError as exc:
        raise KeyringError(f"cannot create the keyring directory {directory} ({exc.strerror})") from exc


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
