"""The STS calls of an elevation (AssumeRole, GetSessionToken) and the checks on their answers.

Clients and error translation live in elevate.aws; what comes back is validated here
before anything is cached or printed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from .aws import StsClient, call, caller_identity
from .errors import StsError
from .models import SessionCredentials

_UNSAFE_NAME = re.compile(r"[^\w+=,.@-]", re.ASCII)


@dataclass(frozen=True)
class AssumeRoleRequest:
    """Everything AssumeRole is sent; the MFA code stays out of the repr."""

    role_arn: str
    role_session_name: str
    source_identity: Optional[str]
    duration_seconds: int
    serial_number: Optional[str] = None
    token_code: Optional[str] = field(default=None, repr=False)
    # The session policy of a scope (elevate.scopes): managed policy ARNs, inline JSON.
    policy_arns: tuple[str, ...] = ()
    policy: Optional[str] = None


def sanitize_name(name: str) -> str:
    """Fit a user name to STS's RoleSessionName / SourceIdentity rules (2-64 of [\\w+=,.@-])."""
    clean = _UNSAFE_NAME.sub("-", name)[:64]
    return clean if len(clean) >= 2 else (clean + "--")[:2]


def caller_user_name(client: StsClient) -> str:
    """The IAM user name behind the client's keys, from GetCallerIdentity."""
    identity, _ = caller_identity(client)
    if not identity.is_user:
        raise StsError(
            f"the stored keys belong to {identity.arn or 'an unknown principal'}, not an IAM user: "
            "store a long-term IAM user key, or set role_session_name and source_identity"
        )
    return identity.user_name


def assume_role(
    client: StsClient, request: AssumeRoleRequest, now: Optional[datetime] = None
) -> SessionCredentials:
    """Call AssumeRole; return its credentials or raise an StsError with advice."""
    params: dict[str, Any] = {
        "RoleArn": request.role_arn,
        "RoleSessionName": request.role_session_name,
        "DurationSeconds": request.duration_seconds,
    }
    if request.source_identity:
        params["SourceIdentity"] = request.source_identity
    if request.policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in request.policy_arns]
    if request.policy is not None:
        params["Policy"] = request.policy
    if request.serial_number and request.token_code:
        params["SerialNumber"] = request.serial_number
        params["TokenCode"] = request.token_code
    response = call(client, "assume_role", "AssumeRole", role_arn=request.role_arn, **params)
    return credentials_from(response, "AssumeRole", request.duration_seconds, now)


def get_session_token(
    client: StsClient,
    duration_seconds: int,
    serial_number: str,
    token_code: str,
    now: Optional[datetime] = None,
) -> SessionCredentials:
    """GetSessionToken with MFA: an MFA-authenticated session for later AssumeRole calls."""
    response = call(
        client,
        "get_session_token",
        "GetSessionToken",
        DurationSeconds=duration_seconds,
        SerialNumber=serial_number,
        TokenCode=token_code,
    )
    return credentials_from(response, "GetSessionToken", duration_seconds, now)


def credentials_from(
    response: Mapping[str, Any],
    operation: str,
    duration_seconds: Optional[int] = None,
    now: Optional[datetime] = None,
) -> SessionCredentials:
    """Validate STS's Credentials block; reject anything we would not dare to print or cache."""
    from .validate import check_session_credentials

    raw = response.get("Credentials")
    if not isinstance(raw, Mapping):
        raise StsError(f"{operation} answered without credentials")
    expiration = raw.get("Expiration")
    if isinstance(expiration, datetime):
        if expiration.tzinfo is None:
            raise StsError(f"{operation} returned an Expiration without a time zone")
        expiration = expiration.astimezone(timezone.utc)
    return check_session_credentials(
        raw.get("AccessKeyId"),
        raw.get("SecretAccessKey"),
        raw.get("SessionToken"),
        expiration,
        source=operation,
        now=now,
        max_seconds=duration_seconds,
        role=operation != "GetSessionToken",
    )
