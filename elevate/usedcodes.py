"""MFA codes STS already accepted, remembered (hashed) per device for their TOTP window."""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import datetime
from typing import Callable, Optional

from .errors import CacheError
from .store import FileStore

FORMAT_VERSION = 1


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


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
