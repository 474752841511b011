"""A keyring backend that keeps Windows Credential Manager's size limit, for tests in this process.

Lives in tests only (every concrete KeyringBackend subclass registers itself). Like keyring's
WinVaultKeyring it stores a str as UTF-16; a secret over 2,560 bytes is refused as CredWrite
refuses it.
"""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

CRED_MAX_CREDENTIAL_BLOB_SIZE = 2560


class CredWriteError(OSError):
    """What pywin32 raises for a blob over the limit: (1783, 'CredWrite', 'The stub received bad data.')."""


class CredentialManagerLike(KeyringBackend):
    priority = 0  # never chosen by keyring's discovery

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # KeyringBackend.__init__ is untyped
        self.entries: dict[tuple[str, str], bytes] = {}
        self.largest = 0

    def get_password(self, service: str, username: str) -> str | None:
        blob = self.entries.get((service, username))
        return None if blob is None else blob.decode("utf-16-le")

    def set_password(self, service: str, username: str, password: str) -> None:
        blob = password.encode("utf-16-le")
        if len(blob) > CRED_MAX_CREDENTIAL_BLOB_SIZE:
            raise CredWriteError(1783, "CredWrite: The stub received bad data.")
        self.largest = max(self.largest, len(blob))
        self.entries[(service, username)] = blob

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)

    def names(self, service: str) -> set[str]:
        """The usernames stored under `service` (a test's view; keyring has no listing)."""
        return {user for svc, user in self.entries if svc == service}
