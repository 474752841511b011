"""Shape checks for credentials that come from outside (STS, the cache).

A hostile or broken endpoint must not get shell metacharacters, control bytes or huge
values into an export or the cache: anything that is not the shape STS documents is
refused here, before it is stored or printed.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Optional

from .errors import StsError
from .models import SessionCredentials

ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}", re.ASCII)
SECRET_ACCESS_KEY = re.compile(r"[A-Za-z0-9/+=]{16,256}", re.ASCII)
SESSION_TOKEN = re.compile(r"[A-Za-z0-9/+=]{16,16384}", re.ASCII)


def check_session_credentials(
    access_key_id: object,
    secret_access_key: object,
    session_token: object,
    expiration: object,
    *,
    source: str,
    now: Optional[datetime] = None,
) -> SessionCredentials:
    """Build SessionCredentials from untrusted values or raise StsError naming the field."""
    key_id = _check("AccessKeyId", access_key_id, ACCESS_KEY_ID, source)
    secret = _check("SecretAccessKey", secret_access_key, SECRET_ACCESS_KEY, source)
    token = _check("SessionToken", session_token, SESSION_TOKEN, source)
    if not isinstance(expiration, datetime) or expiration.tzinfo is None:
        raise StsError(f"{source} returned an invalid Expiration (need a time with a zone)")
    expiration = expiration.astimezone(timezone.utc)
    if expiration <= (now or datetime.now(timezone.utc)):
        raise StsError(f"{source} returned credentials that have already expired")
    return SessionCredentials(key_id, secret, token, expiration)


def _check(name: str, value: object, shape: re.Pattern[str], source: str) -> str:
    if isinstance(value, str) and shape.fullmatch(value):
        return value
    size = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
    raise StsError(f"{source} returned a malformed {name} ({size}); refusing to use it")
