"""Shape checks for credentials that come from outside (STS, the cache).

A hostile or broken endpoint must not get shell metacharacters, control bytes or huge
values into an export or the cache: anything that is not the shape STS documents is
refused here, before it is stored or printed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Optional

from . import disk
from .disk import CLOCK_ALLOWANCE_SECONDS
from .errors import StsError
from .models import SessionCredentials

# The shapes are elevate.disk's (the cache hit checks entries with them too). Role
# credentials need a temporary key (ASIA). An MFA session (GetSessionToken) never leaves
# elevate: it only signs AssumeRole. Real STS gives it an ASIA key too, but moto (which the
# tests use) answers with AKIA-shaped IDs.


def check_session_credentials(
    access_key_id: object,
    secret_access_key: object,
    session_token: object,
    expiration: object,
    *,
    source: str,
    now: Optional[datetime] = None,
    max_seconds: Optional[int] = None,
    role: bool = True,
) -> SessionCredentials:
    """Build SessionCredentials from untrusted values or raise StsError naming the field.

    The key must be temporary (ASIA...), and with `max_seconds` (the DurationSeconds asked
    for) the Expiration must lie no further ahead than that plus a clock allowance: an
    endpoint cannot make us cache credentials "for ever" or hand out a long-term key.
    """
    if role and isinstance(access_key_id, str) and access_key_id.startswith("AKIA"):
        raise StsError(
            f"{source} returned a long-term access key (AKIA...) instead of temporary credentials; "
            "refusing it: check AWS_ENDPOINT_URL"
        )
    key_id = _check("AccessKeyId", access_key_id, lambda v: disk.access_key_id_ok(v, role), source)
    secret = _check("SecretAccessKey", secret_access_key, disk.secret_ok, source)
    token = _check("SessionToken", session_token, disk.token_ok, source)
    if not isinstance(expiration, datetime) or expiration.tzinfo is None:
        raise StsError(f"{source} returned an invalid Expiration (need a time with a zone)")
    expiration = expiration.astimezone(timezone.utc)
    now = now or datetime.now(timezone.utc)
    if expiration <= now:
        raise StsError(f"{source} returned credentials that have already expired")
    if max_seconds is not None and (expiration - now).total_seconds() > max_seconds + CLOCK_ALLOWANCE_SECONDS:
        raise StsError(
            f"{source} returned credentials valid until {expiration:%Y-%m-%dT%H:%M:%SZ}, longer than the "
            f"{max_seconds} s asked for: refusing them (check AWS_ENDPOINT_URL and this computer's clock)"
        )
    return SessionCredentials(key_id, secret, token, expiration)


def _check(name: str, value: object, shape: Callable[[object], bool], source: str) -> str:
    if isinstance(value, str) and shape(value):
        return value
    size = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
    raise StsError(f"{source} returned a malformed {name} ({size}); refusing to use it")
