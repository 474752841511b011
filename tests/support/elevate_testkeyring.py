"""A file-backed keyring backend for tests that run elevate as a subprocess.

Lives in tests only: every concrete KeyringBackend subclass registers itself, so it
must never be importable from the installed package. Selected with
PYTHON_KEYRING_BACKEND=elevate_testkeyring.FileKeyring and PYTHONPATH=tests/support;
the file is named by ELEVATE_TEST_KEYRING_FILE. Plaintext on purpose: test data only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError


class BackendFailure(Exception):
    """What a real backend raises when its D-Bus connection drops mid-operation."""


class FileKeyring(KeyringBackend):
    priority = 1
    operations = 0

    def _path(self) -> Path:
        return Path(os.environ["ELEVATE_TEST_KEYRING_FILE"])

    def _tick(self) -> None:
        """ELEVATE_TEST_KEYRING_FAIL_AT=N: the N-th operation of this process fails."""
        FileKeyring.operations += 1
        if str(FileKeyring.operations) == os.environ.get("ELEVATE_TEST_KEYRING_FAIL_AT"):
            raise BackendFailure("org.freedesktop.DBus.Error.NoReply: connection lost")

    def _load(self) -> dict[str, str]:
        self._tick()
        if os.environ.get("ELEVATE_TEST_KEYRING_LOCKED"):
            raise KeyringLocked("test keyring is locked")
        try:
            return dict(json.loads(self._path().read_text()))
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, str]) -> None:
        self._tick()
        self._path().write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\0{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        try:
            del data[f"{service}\0{username}"]
        except KeyError:
            raise PasswordDeleteError(username) from None
        self._save(data)
