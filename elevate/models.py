"""Value types that flow through elevate. Secrets are excluded from every repr."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from .disk import DEFAULT_REFRESH_BEFORE

DEFAULT_DURATION = 3600
DEFAULT_MAX_KEY_AGE_DAYS = 90
CACHE_MODES = ("file", "keyring", "off")
MFA_PROMPTS = ("auto", "terminal", "dialog", "none")


@dataclass(frozen=True)
class Scope:
    """A named session policy (elevate.scopes): STS grants the role's rights intersected with it.

    `policy` is the inline policy exactly as sent (compact JSON); `policy_file` is where it
    was read from, when it came from a file rather than the config itself.
    """

    name: str
    policy_arns: tuple[str, ...] = ()
    policy: Optional[str] = None
    policy_file: Optional[str] = None

    @property
    def digest(self) -> str:
        """A short hash of what STS is sent: part of the cache entry's key."""
        text = "\0".join([*self.policy_arns, "\0", self.policy or ""])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Origin:
    """Where a profile was read: the config file, its table's line and each key's line
    (found once, as the file is parsed), so an error can name them without reading it again."""

    path: str
    table_line: Optional[int] = None
    key_lines: tuple[tuple[str, int], ...] = ()

    def at(self, key: Optional[str] = None) -> str:
        """'FILE:LINE' of `key` (else of the profile's table, else FILE)."""
        line = dict(self.key_lines).get(key) if key else None
        line = line or self.table_line
        return f"{self.path}:{line}" if line else self.path


@dataclass(frozen=True)
class Profile:
    """One `[profiles.NAME]` table of the config, validated."""

    name: str
    role_arn: str
    mfa_serial: str
    region: Optional[str] = None
    duration_seconds: int = DEFAULT_DURATION
    role_session_name: Optional[str] = None
    source_identity: Optional[str] = None
    keys: str = ""
    mfa_process: Optional[str] = None
    cache: str = "file"
    refresh_before_seconds: int = DEFAULT_REFRESH_BEFORE
    mfa_session_seconds: Optional[int] = None
    max_key_age_days: int = DEFAULT_MAX_KEY_AGE_DAYS
    mfa_prompt: str = "auto"
    # The session policy this profile's credentials are narrowed to (None: the role's full rights).
    scope: Optional[Scope] = None
    # Where it was read (None when made in code); never part of its identity.
    origin: Optional[Origin] = field(default=None, compare=False, repr=False)

    @property
    def key_set(self) -> str:
        """The name of the stored key set this profile uses."""
        return self.keys or self.name


@dataclass(frozen=True)
class SourceKeys:
    """A long-term IAM access key pair, as held in the keyring."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    created: Optional[datetime] = None


@dataclass(frozen=True)
class SessionCredentials:
    """Temporary credentials from STS, with a timezone-aware UTC expiration."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime

    def seconds_left(self, now: datetime) -> float:
        return (self.expiration - now).total_seconds()

    def expiration_iso(self) -> str:
        """UTC ISO 8601 with a Z suffix, as credential_process and the SDKs expect."""
        return format_utc(self.expiration)


def format_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 time that carries a zone; naive times are refused."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time without a time zone: {text!r}")
    return value.astimezone(timezone.utc)
