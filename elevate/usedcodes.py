"""MFA codes STS already accepted, remembered (hashed) per device for their TOTP window."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Optional

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
    FUTURE_SLACK = 5  # a record dated later than this is from a clock that was stepped back: ignored

    def __init__(self, files: FileStore, clock: Callable[[], datetime]) -> None:
        self.files = files
        self.clock = clock

    def _key(self, serial: str) -> str:
        return _digest(["mfa-used", serial])

    def _fingerprint(self, serial: str, code: str) -> str:
        return hashlib.sha256(f"{serial}\0{code}".encode()).hexdigest()

    def _current(self, serial: str) -> list[dict[str, object]]:
        """The records still inside their window; ones dated in the future are ignored."""
        now = self.clock().timestamp()
        try:
            data = json.loads(self.files.read(self._key(serial)) or "{}")
            return [
                entry
                for entry in data.get("used", [])
                if -self.FUTURE_SLACK <= now - float(entry.get("t", 0)) < self.KEEP_SECONDS
            ]
        except (CacheError, ValueError, TypeError, AttributeError):
            return []

    def was_used(self, serial: str, code: str) -> bool:
        """Whether STS accepted `code` for `serial` within its window."""
        fingerprint = self._fingerprint(serial, code)
        return any(entry.get("fp") == fingerprint for entry in self._current(serial))

    def last_use(self, serial: str) -> Optional[float]:
        """When STS last accepted a code for `serial` (epoch), within the window."""
        times = [float(str(e.get("t", 0))) for e in self._current(serial)]
        return max(times) if times else None

    def remember(self, serial: str, code: str) -> None:
        """Record that STS accepted `code` for `serial` now."""
        now = self.clock().timestamp()
        used = self._current(serial)
        used.append({"fp": self._fingerprint(serial, code), "t": now})
        with contextlib.suppress(CacheError):
            self.files.write(self._key(serial), json.dumps({"version": FORMAT_VERSION, "used": used}))
