"""Encrypted keyring files (keyrings.cryptfile): the passphrase asked on the terminal (Windows: the
console), never read from stdin, argv or the environment, and handed to the backend in memory."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import select
import time
from collections.abc import Callable, Mapping
from typing import Any, Optional

import keyring

from . import errors, hostos, ui
from .errors import KeyringError, NeedPassphrase

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
UNLOCK_SECONDS = "ELEVATE_KEYRING_UNLOCK_SECONDS"
DEFAULT_UNLOCK_SECONDS = 8 * 3600
MAX_UNLOCK_SECONDS = 7 * 24 * 3600
_OPENED = "_elevate_file_keys"
_HELD = "held in the kernel keyring"  # a stand-in for the passphrase the backend never sees
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


def unlock(ask: Optional[Asker] = None, create: bool = False) -> None:
    """Open each keyring file elevate uses: with the key the kernel holds from an earlier unlock
    in this login session, else with the passphrase asked on the terminal (never argv or the
    environment). A file that does not exist yet is made (with a new passphrase, typed twice)
    only to store something (`create`); to read, it holds nothing and is left unmade, since
    the backend reads no missing file and so asks for nothing. A KeyringError when no
    terminal is there to ask on, or the passphrase is wrong three times."""
    asker = ask or ask_on_tty
    for backend in file_keyrings():
        opened = getattr(backend, _OPENED, None)
        if isinstance(opened, FileKeys) and opened.opened:
            continue  # opened earlier in this process (a failed try is tried again, never left to getpass)
        if not create and not os.path.lexists(str(getattr(backend, "file_path", ""))):
            log.debug("keyring file %s: none yet, so no key sets (a read makes none)", backend.file_path)
            continue
        FileKeys(backend, asker).open()


def lock() -> list[str]:
    """Forget the keys the kernel holds for elevate's keyring files; the files they opened."""
    from . import kernelkeys  # ctypes: only where a keyring file is in use

    return [
        str(backend.file_path)
        for backend in file_keyrings()
        if kernelkeys.forget(_description(str(backend.file_path)))
    ]


def unlock_seconds(environ: Optional[Mapping[str, str]] = None) -> int:
    """How long an unlock lasts: $ELEVATE_KEYRING_UNLOCK_SECONDS, else 8 hours; 0 = this process only."""
    raw = (os.environ if environ is None else environ).get(UNLOCK_SECONDS, "").strip()
    if not raw:
        return DEFAULT_UNLOCK_SECONDS
    if not raw.isdigit() or int(raw) > MAX_UNLOCK_SECONDS:
        raise KeyringError(
            f"{UNLOCK_SECONDS}={raw[:20]!r} is not a whole number of seconds from 0 to {MAX_UNLOCK_SECONDS}"
        )
    return int(raw)


def _description(path: str) -> str:
    return f"aws-elevate:keyring-file:{os.path.realpath(path)}"


class FileKeys:
    """The Argon2id keys of one keyring file, by salt, derived once each.

    keyrings.cryptfile derives a key from the passphrase for every entry it reads or writes
    (a random salt each): seconds per entry. Here each salt's key is derived once, entries
    written get the salt of the file's password reference (whose key opening the file needs
    anyway), and the keys go to the kernel's session keyring for `unlock_seconds()`, so a
    later process of the session opens the file with no passphrase and no derivation.
    """

    def __init__(self, backend: Any, asker: Asker) -> None:
        self.backend = backend
        self.asker = asker
        self.path = str(getattr(backend, "file_path", "the keyring file"))
        self.keys: dict[bytes, bytes] = {}
        self.write_salt: Optional[bytes] = None
        self.passphrase: Optional[str] = None
        self.opened = False

    def open(self) -> None:
        backend = self.backend
        backend._create_cipher = self._cipher
        backend.encrypt = self._encrypt
        setattr(backend, _OPENED, self)
        if _is_new(backend):
            log.debug("keyring file %s: new, asking for a new passphrase", self.path)
            self.passphrase = _new_passphrase(self.asker, self.path)
            _private_directory(self.path)  # before the backend, which creates the file as it takes the key
            backend.keyring_key = self.passphrase  # writes the password reference: one derivation
            self._opened()
            return
        if self._open_with_kernel_keys():
            self.opened = True
            return
        for attempt in range(1, PASSPHRASE_ATTEMPTS + 1):
            log.debug("keyring file %s: asking for its passphrase", self.path)
            passphrase = _ask(self.asker, f"Passphrase for the encrypted keyring {self.path}: ", self.path)
            self.keys.clear()
            self.write_salt = None
            self.passphrase = passphrase
            try:
                backend.keyring_key = passphrase  # reads the password reference back
            except (ValueError, AssertionError, KeyError, TypeError) as exc:
                self.passphrase = backend._keyring_key = None
                self.keys.clear()
                if attempt == PASSPHRASE_ATTEMPTS:
                    raise _wrong(self.path) from exc
                ui.tell("that passphrase does not open the keyring. Try again.")
                continue
            self._opened()
            return

    def _opened(self) -> None:
        self.opened = True
        self._keep()

    def _open_with_kernel_keys(self) -> bool:
        from . import kernelkeys  # ctypes: only where a keyring file is in use

        description = _description(self.path)
        raw = kernelkeys.load(description)
        if raw is None:
            return False
        try:
            held = json.loads(raw)
            self.keys = {base64.b64decode(s): base64.b64decode(k) for s, k in held["keys"].items()}
            self.write_salt = base64.b64decode(held["write_salt"])
        except (ValueError, KeyError, TypeError, AttributeError):
            self.keys.clear()
            self.write_salt = None
            return False
        self.backend._keyring_key = _HELD  # the backend's "unlocked" mark; _cipher never reads it
        try:
            self.backend._unlock()  # decrypts the password reference with the held key
        except (ValueError, AssertionError, KeyError, TypeError, NeedPassphrase):
            log.debug("keyring file %s: the kernel's key does not open it; forgetting it", self.path)
            kernelkeys.forget(description)
            self.keys.clear()
            self.write_salt = None
            self.backend._keyring_key = None
            return False
        log.debug("keyring file %s: opened with the key held in the kernel's session keyring", self.path)
        return True

    def _keep(self) -> None:
        from . import kernelkeys

        seconds = unlock_seconds()
        if seconds == 0 or self.write_salt is None:
            return
        text = base64.b64encode
        held = {
            "write_salt": text(self.write_salt).decode(),
            "keys": {text(s).decode(): text(k).decode() for s, k in self.keys.items()},
        }
        if kernelkeys.store(_description(self.path), json.dumps(held).encode(), seconds):
            log.debug("keyring file %s: key held in the session keyring for %d s", self.path, seconds)
        else:
            log.debug("keyring file %s: no kernel keyring; the unlock lasts this process only", self.path)

    def _key(self, salt: bytes) -> bytes:
        key = self.keys.get(salt)
        if key is not None:
            return key
        if self.passphrase is None:
            if not self.opened:
                raise NeedPassphrase()  # held keys that do not open this file
            # An entry sealed under another salt (written before elevate kept one salt per
            # file) in a file opened with held keys: only the passphrase derives its key.
            self.passphrase = self._ask_again()
        key = self._derive(self.passphrase, salt)
        self.keys[salt] = key
        if self.write_salt is None:
            self.write_salt = salt  # the password reference's salt: read (or written) first
        if self.opened:
            self._keep()
        return key

    def _ask_again(self) -> str:
        salt = self.write_salt or b""  # held keys always come with their salt
        for _ in range(PASSPHRASE_ATTEMPTS):
            passphrase = _ask(self.asker, f"Passphrase for the encrypted keyring {self.path}: ", self.path)
            if hmac.compare_digest(self._derive(passphrase, salt), self.keys.get(salt, b"")):
                return passphrase
            ui.tell("that passphrase does not open the keyring. Try again.")
        raise _wrong(self.path)

    def _derive(self, passphrase: str, salt: bytes) -> bytes:
        from argon2.low_level import Type, hash_secret_raw

        backend = self.backend
        log.debug("keyring file %s: deriving a key from the passphrase (Argon2id)", self.path)
        return hash_secret_raw(
            secret=passphrase.encode(backend.password_encoding),
            salt=salt,
            time_cost=backend.time_cost,
            memory_cost=backend.memory_cost,
            parallelism=backend.parallelism,
            hash_len=16,
            type=Type.ID,
        )

    def _cipher(self, password: object, salt: bytes, nonce: Optional[bytes] = None) -> Any:
        """The backend's cipher, from the key of `salt` (`password` is the backend's; unused)."""
        # Crypto is PyCryptodome (maintained), the cipher library keyrings.cryptfile itself uses.
        from Crypto.Cipher import AES  # nosec B413

        mode = self.backend._get_mode(self.backend.aesmode)
        return AES.new(self._key(salt), mode, nonce)

    def _encrypt(self, secret: bytes, assoc: Optional[bytes] = None) -> bytes:
        """keyrings.cryptfile's encrypt, sealing under the file's one salt (a fresh nonce each time)."""
        salt = self.write_salt or os.urandom(16)
        cipher = self._cipher(None, salt)
        if assoc is not None:
            cipher.update(assoc)
        data, mac = cipher.encrypt_and_digest(secret)
        fields = {"salt": salt, "data": data, "mac": mac, "nonce": cipher.nonce}
        return json.dumps({k: base64.encodebytes(v).decode()[:-1] for k, v in fields.items()}).encode()


def _wrong(path: str) -> KeyringError:
    return KeyringError(f"wrong passphrase for the encrypted keyring {path} ({PASSPHRASE_ATTEMPTS} tries)")


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
            "run `elevate keys list` in a terminal of this login session once: the unlock then "
            f"lasts ({UNLOCK_SECONDS}, default 8 hours) and this command needs no terminal (see "
            'the README\'s "Headless Linux, SSH and WSL")'
        )
    if not answer.strip():
        raise KeyringError("no passphrase entered")
    return answer


def ask_on_tty(
    prompt: str, console: Callable[[], Optional[hostos.Console]] = hostos.console
) -> Optional[str]:
    """A line typed at the controlling terminal with echo off; None when there is no terminal.

    Bounded in time, and refused at once from a background job (the keys typed would go
    to the shell). Windows has no /dev/tty: `console()` (hostos.console) is asked on there.
    """
    with ui.open_tty() as tty:
        if tty is None:
            con = console()
            return None if con is None else _ask_on_console(con, prompt)
        fd = tty.fileno()
        if hostos.in_background(fd):
            raise KeyringError(
                "elevate is running in the background (a job started with &?), so it cannot "
                "read the keyring passphrase from the terminal: run it in the foreground"
            )
        tty.write(prompt)
        tty.flush()
        with hostos.echo_off(fd) as hidden:  # not hidden: not a terminal after all, read as it comes
            try:
                deadline = time.monotonic() + PASSPHRASE_TIMEOUT
                while not select.select([tty], [], [], max(0.0, min(1.0, deadline - time.monotonic())))[0]:
                    if time.monotonic() >= deadline:
                        raise KeyringError(f"no passphrase entered within {PASSPHRASE_TIMEOUT:.0f} s")
                line = tty.readline()
            finally:
                if hidden:
                    tty.write("\n")
                    tty.flush()
        return line.rstrip("\r\n") if line else None


def _ask_on_console(con: hostos.Console, prompt: str) -> Optional[str]:
    """The passphrase typed at the Windows console, not shown; bounded in time."""
    try:
        return hostos.console_line(con, prompt, False, PASSPHRASE_TIMEOUT)
    except errors.ConsoleTimeout:
        raise KeyringError(f"no passphrase entered within {PASSPHRASE_TIMEOUT:.0f} s") from None
