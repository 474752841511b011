"""STS calls made with explicitly given keys, and their errors turned into advice.

The client never consults the default credential chain or the AWS_PROFILE setting, so an
AWS_PROFILE whose credential_process is `elevate` itself cannot recurse. Endpoint
overrides (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_STS) are left to botocore, which honours them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional, Union

import botocore.config
import botocore.exceptions
import botocore.session

from .errors import ConfigError, MfaCodeRejected, StsError
from .models import SessionCredentials, SourceKeys

_CLIENT_CONFIG = botocore.config.Config(
    connect_timeout=5,
    read_timeout=15,
    retries={"total_max_attempts": 3, "mode": "standard"},
)
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


def make_client(keys: Union[SourceKeys, SessionCredentials], region: str, service: str = "sts") -> Any:
    """A botocore client signed with `keys` only; regional STS endpoint; bounded waits."""
    # Pin the profile to none: a missing AWS_PROFILE must not fail us, and the
    # credential chain it would select must never be consulted.
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session.set_config_variable("sts_regional_endpoints", "regional")
    token = keys.session_token if isinstance(keys, SessionCredentials) else None
    try:
        return session.create_client(
            service,
            region_name=region,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            aws_session_token=token,
            config=_CLIENT_CONFIG,
        )
    except botocore.exceptions.BotoCoreError as exc:  # an invalid region or endpoint URL
        raise ConfigError(
            f"cannot make an {service.upper()} client for region {region!r}: {exc}; check the "
            "profile's region, AWS_REGION / AWS_DEFAULT_REGION and AWS_ENDPOINT_URL"
        ) from exc


def sanitize_name(name: str) -> str:
    """Fit a user name to STS's RoleSessionName / SourceIdentity rules (2-64 of [\\w+=,.@-])."""
    clean = _UNSAFE_NAME.sub("-", name)[:64]
    return clean if len(clean) >= 2 else (clean + "--")[:2]


def caller_user_name(client: Any) -> str:
    """The IAM user name behind the client's keys, from GetCallerIdentity."""
    identity = call(client, "get_caller_identity", "GetCallerIdentity")
    arn = str(identity.get("Arn", ""))
    if ":user/" not in arn:
        raise StsError(
            f"the stored keys belong to {arn or 'an unknown principal'}, not an IAM user: "
            "store a long-term IAM user key, or set role_session_name and source_identity"
        )
    return arn.rsplit("/", 1)[-1]


def assume_role(client: Any, request: AssumeRoleRequest) -> SessionCredentials:
    """Call AssumeRole; return its credentials or raise an StsError with advice."""
    params: dict[str, Any] = {
        "RoleArn": request.role_arn,
        "RoleSessionName": request.role_session_name,
        "DurationSeconds": request.duration_seconds,
    }
    if request.source_identity:
        params["SourceIdentity"] = request.source_identity
    if request.serial_number and request.token_code:
        params["SerialNumber"] = request.serial_number
        params["TokenCode"] = request.token_code
    response = call(client, "assume_role", "AssumeRole", role_arn=request.role_arn, **params)
    return credentials_from(response, "AssumeRole")


def get_session_token(
    client: Any, duration_seconds: int, serial_number: str, token_code: str
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
    return credentials_from(response, "GetSessionToken")


def credentials_from(response: Mapping[str, Any], operation: str) -> SessionCredentials:
    """Validate STS's Credentials block; reject anything we would not dare to print."""
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
    )


def call(client: Any, method: str, operation: str, role_arn: str = "", **params: Any) -> Any:
    """Invoke one client method, translating every botocore failure into an StsError."""
    try:
        return getattr(client, method)(**params)
    except botocore.exceptions.ClientError as exc:
        raise translate_client_error(exc, operation, role_arn) from exc
    except (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectionClosedError,
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ProxyConnectionError,
    ) as exc:
        where = getattr(client.meta, "endpoint_url", "STS")
        raise StsError(
            f"cannot reach STS at {where} ({type(exc).__name__}): check the network, proxy "
            "and AWS_ENDPOINT_URL, then retry"
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise StsError(f"{operation} failed: {exc}") from exc
    except Exception as exc:  # botocore parsers raise KeyError and the like on odd XML
        where = getattr(client.meta, "endpoint_url", "STS")
        raise StsError(
            f"{operation}: the answer from {where} cannot be read ({type(exc).__name__}); "
            "check AWS_ENDPOINT_URL and any proxy in between"
        ) from exc


def translate_client_error(
    exc: botocore.exceptions.ClientError, operation: str, role_arn: str = ""
) -> StsError:
    """One line saying what went wrong and what to do."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")).strip()
    if "MultiFactorAuthentication" in message:
        if "unable to validate" in message:
            return MfaCodeRejected(
                f"{operation}: STS could not validate the MFA code: check that mfa_serial is "
                "the ARN of the MFA device registered to this IAM user"
            )
        return MfaCodeRejected(f"{operation}: STS rejected the MFA code")
    if code in ("InvalidClientTokenId", "UnrecognizedClientException"):
        return StsError(
            f"{operation}: the stored access key is invalid or deactivated: check it in IAM and "
            "store a working key with `elevate keys add`"
        )
    # Clock skew arrives as SignatureDoesNotMatch too: look at the message first.
    if (
        code in ("RequestExpired", "RequestTimeTooSkewed")
        or "Signature expired" in message
        or ("not yet current" in message)
    ):
        return StsError(
            f"{operation}: STS refused the request time: this computer's clock is off; "
            "sync it (NTP) and retry"
        )
    if code == "SignatureDoesNotMatch":
        return StsError(
            f"{operation}: the stored secret key does not match its access key ID: store the "
            "pair again with `elevate keys add`"
        )
    if code in ("Throttling", "ThrottlingException", "RequestLimitExceeded"):
        return StsError(f"{operation}: STS is throttling requests: wait a minute and retry")
    if code == "ExpiredToken":
        return StsError(f"{operation}: the MFA session has expired: elevate again")
    if code == "RegionDisabledException":
        return StsError(f"{operation}: STS is not enabled in this region: set another region")
    if code == "AccessDenied":
        target = f" {role_arn}" if role_arn else ""
        return StsError(
            f"{operation}{target}: access denied ({message or code}). The role's trust policy "
            "or its MFA condition refuses this user, or the user lacks sts:AssumeRole or "
            "sts:SetSourceIdentity on it: ask the admin who deployed the stack"
        )
    return StsError(f"{operation} failed: {code}: {message}")
