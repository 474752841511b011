"""The AWS boundary: clients signed with explicit keys, one call helper that turns every
botocore failure into an AwsError naming its service, the caller's identity, and the few
IAM and CloudFormation calls onboarding needs.

A client never consults the default credential chain or the AWS_PROFILE setting, so an
AWS_PROFILE whose credential_process is `elevate` itself cannot recurse; the one exception
is `ambient_client`, for the admin tools, whose user is an admin and not a developer. Endpoint
overrides (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_STS) are left to botocore, which honours them.

The elevation's STS calls (sts_client) go through elevate.stsquery: signed by botocore, sent
with http.client, without a botocore client, and so does doctor's ListMFADevices
(iam_query_client); the rest of onboarding (IAM, CloudFormation) uses clients.
botocore.session is imported only when a client is made.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Optional, Protocol, Union, cast

import botocore.exceptions

from . import stsquery
from .errors import (
    AwsError,
    CloudFormationError,
    ConfigError,
    IamError,
    MfaCodeRejected,
    ResponseTooLarge,
    StsError,
    Unsupported,
)
from .models import SessionCredentials, SourceKeys
from .ui import printable

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.config import Config

log = logging.getLogger("elevate")
_ERRORS: Mapping[str, type[AwsError]] = {
    "sts": StsError,
    "iam": IamError,
    "cloudformation": CloudFormationError,
}
_NAMES = {"sts": "STS", "iam": "IAM", "cloudformation": "CloudFormation"}
MAX_RESPONSE_BYTES = stsquery.MAX_RESPONSE_BYTES
# The admin tools' cap: a credential report of elevate.admin.audit's MAX_REPORT_ROWS users,
# base64 in XML, is under this.
MAX_ADMIN_RESPONSE_BYTES = 64 << 20

Keys = Union[SourceKeys, SessionCredentials]
# AWS's answers are JSON-shaped documents: their values are read, checked and made printable
# where they are used (elevate.validate, parse_identity), so Any stays inside the document.
Answer = Mapping[str, Any]


class StsClient(Protocol):
    """The STS operations elevate calls, as a botocore STS client and elevate.stsquery's
    QueryClient both answer them (through `call`, which translates their failures)."""

    def get_caller_identity(self) -> Answer: ...

    def assume_role(self, **params: Any) -> Answer: ...

    def get_session_token(self, **params: Any) -> Answer: ...


class IamClient(Protocol):
    """The IAM operations onboarding calls on the user's own record."""

    def list_mfa_devices(self, **params: Any) -> Answer: ...

    def get_role(self, **params: Any) -> Answer: ...

    def list_access_keys(self, **params: Any) -> Answer: ...

    def create_access_key(self, **params: Any) -> Answer: ...

    def delete_access_key(self, **params: Any) -> Answer: ...

    def create_virtual_mfa_device(self, **params: Any) -> Answer: ...

    def enable_mfa_device(self, **params: Any) -> Answer: ...

    def untag_user(self, **params: Any) -> Answer: ...

    def delete_virtual_mfa_device(self, **params: Any) -> Answer: ...


class CloudFormationClient(Protocol):
    """The CloudFormation operation configure calls: a stack's outputs."""

    def describe_stacks(self, **params: Any) -> Answer: ...


Client = Union[StsClient, IamClient, CloudFormationClient]
# How the elevation makes its STS client: keys and region in, the client out.
StsClientFactory = Callable[[Keys, str], StsClient]
# Onboarding's factory (make_client's signature): which client it returns depends on its
# `service` argument, which is a string at its callers, so its result is not one Protocol.
ClientFactory = Callable[..., Any]


def _client_config() -> Config:
    """Bounded waits and botocore's standard retries, the same as the STS transport's."""
    import botocore.config

    return botocore.config.Config(
        connect_timeout=stsquery.CONNECT_TIMEOUT,
        read_timeout=stsquery.READ_TIMEOUT,
        retries={"total_max_attempts": stsquery.MAX_ATTEMPTS, "mode": "standard"},
    )


def make_client(keys: Keys, region: str, service: str = "sts") -> BaseClient:
    """A botocore client signed with `keys` only; regional STS endpoint; bounded waits."""
    import botocore.session

    # Pin the profile to none: a missing AWS_PROFILE must not fail us, and the
    # credential chain it would select must never be consulted.
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session.set_config_variable("sts_regional_endpoints", "regional")
    token = keys.session_token if isinstance(keys, SessionCredentials) else None
    try:
        client = session.create_client(
            service,
            region_name=region,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            aws_session_token=token,
            config=_client_config(),
        )
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:  # an invalid region or endpoint URL
        raise ConfigError(
            f"cannot make an {service.upper()} client for region {region!r}: "
            f"{printable(str(exc), 500)}; check the profile's region, AWS_REGION / "
            "AWS_DEFAULT_REGION and AWS_ENDPOINT_URL"
        ) from exc
    _cap_responses(client)
    return client


def ambient_client(service: str, profile: Optional[str] = None, region: Optional[str] = None) -> BaseClient:
    """A botocore client from the default credential chain (or `profile`): the admin's own
    credentials, for the admin tools only; bounded waits as everywhere."""
    import botocore.session

    try:
        session = botocore.session.Session(profile=profile)
        # IAM is global: the region only picks the partition's endpoint.
        region = region or session.get_config_variable("region") or "us-east-1"
        client = session.create_client(service, region_name=region, config=_client_config())
    except botocore.exceptions.BotoCoreError as exc:  # an unknown profile, an invalid region
        raise ConfigError(
            f"cannot make an {_NAMES.get(service, service)} client: {printable(str(exc), 500)}; "
            "check --profile, --region and AWS_ENDPOINT_URL"
        ) from exc
    _cap_responses(client, MAX_ADMIN_RESPONSE_BYTES)
    return client


def sts_client(keys: Keys, region: str, environ: Mapping[str, str]) -> StsClient:
    """The elevation's STS client: elevate.stsquery's signed requests over http.client under
    `environ` (the invocation's, which the cache entry's key is made from too), or a botocore
    client (make_client) where that transport does not apply or botocore refuses the settings
    (the client then reports it as before; botocore reads the process environment itself)."""
    try:
        return stsquery.connect(keys, region, environ)
    except Unsupported as why:
        log.debug("STS through a botocore client: this transport does not cover %s", why)
    except botocore.exceptions.BotoCoreError as exc:
        log.debug("STS through a botocore client: %s", type(exc).__name__)
    # botocore adds a client's operations at run time, where its type stubs cannot see them.
    return cast(StsClient, make_client(keys, region))


def iam_query_client(keys: Keys, region: str, environ: Mapping[str, str]) -> IamClient:
    """An IAM client for ListMFADevices only (doctor's one IAM call): elevate.stsquery's
    transport, or a botocore client where that transport does not apply."""
    try:
        return cast(IamClient, stsquery.connect(keys, region, environ, service="iam"))
    except Unsupported as why:
        log.debug("IAM through a botocore client: this transport does not cover %s", why)
    except botocore.exceptions.BotoCoreError as exc:
        log.debug("IAM through a botocore client: %s", type(exc).__name__)
    # botocore adds a client's operations at run time, where its type stubs cannot see them.
    return cast(IamClient, make_client(keys, region, "iam"))


def _cap_responses(client: BaseClient, limit: int = MAX_RESPONSE_BYTES) -> None:
    """Read at most `limit` bytes of any answer (botocore would read all of it into memory).

    The request is sent through the client's own HTTP session, streamed, from a
    before-send handler; botocore then parses the capped body as usual.
    """
    http = getattr(getattr(client, "_endpoint", None), "http_session", None)
    if http is None:  # pragma: no cover - a botocore without the attribute: no cap, as before
        return

    def send(request: Any, **_: Any) -> Any:
        streaming = request.stream_output
        request.stream_output = True
        try:
            response = http.send(request)
        finally:
            request.stream_output = streaming
        body = response.raw.read(limit + 1)
        if len(body) > limit:
            response.raw.close()
            raise ResponseTooLarge(f"more than {limit // 1024} KiB")
        response._content = body
        return response

    client.meta.events.register_first("before-send", send)


def _service(client: object) -> str:
    try:
        return str(client.meta.service_model.service_name)  # type: ignore[attr-defined]
    except AttributeError:  # a test double without a service model
        return "sts"


def call(client: Client, method: str, operation: str, role_arn: str = "", **params: Any) -> Answer:
    """Invoke one client method by name; every botocore failure becomes the service's AwsError.

    `meta`, a botocore client's endpoint and service, is read where present (a test's fake,
    or elevate.stsquery's QueryClient, may have less of it)."""
    service = _service(client)
    error = _ERRORS.get(service, AwsError)
    name = _NAMES.get(service, service)
    meta = getattr(client, "meta", None)
    log.debug(
        "%s %s: endpoint %s, region %s",
        name,
        operation,
        getattr(meta, "endpoint_url", "?"),
        getattr(meta, "region_name", "?"),
    )
    started = time.monotonic()
    try:
        result: Answer = getattr(client, method)(**params)
    except Exception as exc:  # noqa: BLE001 - logged, then translated below (or re-raised)
        # The error's type and AWS code only: messages can echo request parameters.
        log.debug(
            "%s %s failed after %.2f s: %s %s",
            name,
            operation,
            time.monotonic() - started,
            type(exc).__name__,
            error_code(exc) if isinstance(exc, botocore.exceptions.ClientError) else "",
        )
        _translate(exc, client, error, name, operation, role_arn, service)
    log.debug("%s %s: ok in %.2f s", name, operation, time.monotonic() - started)
    return result


def _translate(
    exc: Exception,
    client: object,
    error: type[AwsError],
    name: str,
    operation: str,
    role_arn: str,
    service: str,
) -> NoReturn:
    """Raise the service's AwsError for a failed call."""
    meta = getattr(client, "meta", None)  # a test's fake may have none
    try:
        raise exc
    except botocore.exceptions.ClientError as exc:
        raise translate_client_error(exc, operation, role_arn, service) from exc
    except (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectionClosedError,
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ProxyConnectionError,
    ) as exc:
        where = getattr(meta, "endpoint_url", name)
        raise error(
            f"cannot reach {name} at {where} ({type(exc).__name__}): check the network, proxy "
            "and AWS_ENDPOINT_URL, then retry"
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise error(f"{operation} failed: {printable(str(exc), 500)}") from exc
    except ResponseTooLarge as exc:
        where = getattr(meta, "endpoint_url", name)
        raise error(
            f"{operation}: the answer from {where} is {exc}: refusing to read it; "
            "check AWS_ENDPOINT_URL and any proxy in between"
        ) from exc
    except Exception as exc:  # botocore parsers raise KeyError and the like on odd XML
        where = getattr(meta, "endpoint_url", name)
        raise error(
            f"{operation}: the answer from {where} cannot be read ({type(exc).__name__}); "
            "check AWS_ENDPOINT_URL and any proxy in between"
        ) from exc


def error_code(exc: BaseException) -> str:
    """The AWS error code behind an AwsError (or a ClientError), else ""."""
    cause = exc if isinstance(exc, botocore.exceptions.ClientError) else exc.__cause__
    if isinstance(cause, botocore.exceptions.ClientError):
        return str(cause.response.get("Error", {}).get("Code", ""))
    return ""


def response_headers(exc: BaseException) -> Mapping[str, Any]:
    """The HTTP headers of the answer behind a failed call, when there was one."""
    cause = exc.__cause__
    if isinstance(cause, botocore.exceptions.ClientError):
        headers = cause.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return headers if isinstance(headers, Mapping) else {}
    return {}


def translate_client_error(
    exc: botocore.exceptions.ClientError, operation: str, role_arn: str = "", service: str = "sts"
) -> AwsError:
    """One line saying what went wrong and what to do."""
    # Both come from the endpoint: made printable (one line, no control or bidi characters).
    error = exc.response.get("Error", {})
    code = printable(str(error.get("Code", "")), 100)
    message = printable(str(error.get("Message", "")).strip(), 500)
    kind = _ERRORS.get(service, AwsError)
    if service == "iam":
        if code in ("AccessDenied", "AccessDeniedException"):
            return IamError(
                f"{operation}: access denied ({message or code}): the developer policy allows this "
                "only on your own user, and key management only in an MFA-authenticated session; "
                "ask the admin who deployed the stack"
            )
        if code in ("LimitExceeded", "EntityAlreadyExists", "NoSuchEntity", "InvalidAuthenticationCode"):
            return IamError(f"{operation}: {message or code}")
    if "MultiFactorAuthentication" in message:
        if "unable to validate" in message:
            return MfaCodeRejected(
                f"{operation}: STS could not validate the MFA code: check that mfa_serial is "
                "the ARN of the MFA device registered to this IAM user"
            )
        return MfaCodeRejected(f"{operation}: STS rejected the MFA code")
    if code in ("InvalidClientTokenId", "UnrecognizedClientException"):
        return kind(
            f"{operation}: the stored access key is invalid or deactivated: check it in IAM and "
            "store a working key with `elevate keys add`"
        )
    # Clock skew arrives as SignatureDoesNotMatch too: look at the message first.
    if (
        code in ("RequestExpired", "RequestTimeTooSkewed")
        or "Signature expired" in message
        or ("not yet current" in message)
    ):
        return kind(
            f"{operation}: STS refused the request time: this computer's clock is off; "
            "sync it (NTP) and retry"
        )
    if code == "SignatureDoesNotMatch":
        return kind(
            f"{operation}: the stored secret key does not match its access key ID: store the "
            "pair again with `elevate keys add`"
        )
    if code in ("Throttling", "ThrottlingException", "RequestLimitExceeded"):
        return kind(f"{operation}: STS is throttling requests: wait a minute and retry")
    if code == "ExpiredToken":
        return kind(f"{operation}: the MFA session has expired: elevate again")
    if code == "RegionDisabledException":
        return kind(f"{operation}: STS is not enabled in this region: set another region")
    if code == "AccessDenied":
        target = f" {role_arn}" if role_arn else ""
        return kind(
            f"{operation}{target}: access denied ({message or code}). The role's trust policy "
            "or its MFA condition refuses this user, or the user lacks sts:AssumeRole or "
            "sts:SetSourceIdentity on it: ask the admin who deployed the stack"
        )
    return kind(f"{operation} failed: {code}: {message}")


# --- who the keys belong to -------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The principal behind a key pair, from GetCallerIdentity."""

    arn: str
    account: str
    user_name: str  # "" unless the principal is an IAM user

    @property
    def is_user(self) -> bool:
        return bool(self.user_name)

    @property
    def partition(self) -> str:
        parts = self.arn.split(":")
        return parts[1] if len(parts) > 1 else "aws"


def parse_identity(answer: Mapping[str, Any]) -> Identity:
    """The one reader of GetCallerIdentity's answer: an IAM user's name comes from `:user/`."""
    arn = printable(str(answer.get("Arn", "")), 2048)
    user = arn.rsplit("/", 1)[-1] if ":user/" in arn else ""
    return Identity(arn=arn, account=printable(str(answer.get("Account", "")), 64), user_name=user)


def caller_identity(client: StsClient) -> tuple[Identity, Mapping[str, Any]]:
    """GetCallerIdentity with `client`: the identity, and the answer's HTTP headers."""
    answer = call(client, "get_caller_identity", "GetCallerIdentity")
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return parse_identity(answer), headers if isinstance(headers, Mapping) else {}


def identify(keys: Keys, region: str, client_factory: ClientFactory = make_client) -> Identity:
    """The IAM user behind `keys`; any other principal is refused (roles hold no MFA or keys)."""
    identity, _ = caller_identity(client_factory(keys, region))
    if not identity.is_user:
        raise StsError(
            f"these keys belong to {identity.arn or 'an unknown principal'}, not an IAM user: "
            "use the long-term key of your own IAM user"
        )
    return identity


# --- IAM --------------------------------------------------------------------------------------


def mfa_devices(
    keys: Keys, region: str, user_name: str, client_factory: ClientFactory = make_client
) -> list[str]:
    """The serials of the MFA devices registered to `user_name` (ListMFADevices)."""
    client = client_factory(keys, region, service="iam")
    answer = call(client, "list_mfa_devices", "ListMFADevices", UserName=user_name)
    devices = answer.get("MFADevices", [])
    return [printable(str(d["SerialNumber"]), 256) for d in devices if d.get("SerialNumber")]


def role_exists(
    keys: Keys, region: str, role_name: str, client_factory: ClientFactory = make_client
) -> Optional[bool]:
    """Whether the role exists in the keys' account (GetRole); None when the keys may not ask."""
    client = client_factory(keys, region, service="iam")
    try:
        call(client, "get_role", "GetRole", RoleName=role_name)
    except AwsError as exc:
        if error_code(exc) == "NoSuchEntity":
            return False
        return None
    return True


def access_key_ids(iam: IamClient, user_name: str) -> list[str]:
    """The IDs of `user_name`'s access keys (ListAccessKeys)."""
    answer = call(iam, "list_access_keys", "ListAccessKeys", UserName=user_name)
    return [printable(str(k.get("AccessKeyId")), 128) for k in answer.get("AccessKeyMetadata", [])]


def create_access_key(iam: IamClient, user_name: str) -> Mapping[str, Any]:
    """A new access key for `user_name`: CreateAccessKey's AccessKey block."""
    answer = call(iam, "create_access_key", "CreateAccessKey", UserName=user_name)
    return dict(answer["AccessKey"])


def delete_access_key(iam: IamClient, user_name: str, access_key_id: str) -> None:
    call(iam, "delete_access_key", "DeleteAccessKey", UserName=user_name, AccessKeyId=access_key_id)


def create_virtual_mfa_device(iam: IamClient, name: str) -> Mapping[str, Any]:
    """CreateVirtualMFADevice's VirtualMFADevice block (serial and seed)."""
    answer = call(
        iam, "create_virtual_mfa_device", "CreateVirtualMFADevice", VirtualMFADeviceName=name, Path="/"
    )
    return dict(answer["VirtualMFADevice"])


def enable_mfa_device(iam: IamClient, user_name: str, serial: str, code1: str, code2: str) -> None:
    call(
        iam,
        "enable_mfa_device",
        "EnableMFADevice",
        UserName=user_name,
        SerialNumber=serial,
        AuthenticationCode1=code1,
        AuthenticationCode2=code2,
    )


ONBOARDING_TAG = "elevate-onboarding"  # the principal tag that opens a user's onboarding window


def close_onboarding_window(iam: IamClient, user_name: str) -> None:
    """UntagUser of the onboarding tag (that key only) on the user's own record."""
    call(iam, "untag_user", "UntagUser", UserName=user_name, TagKeys=[ONBOARDING_TAG])


def delete_virtual_mfa_device(iam: IamClient, serial: str) -> None:
    call(iam, "delete_virtual_mfa_device", "DeleteVirtualMFADevice", SerialNumber=serial)


# --- CloudFormation ---------------------------------------------------------------------------


def stack_outputs(client: CloudFormationClient, stack: str) -> dict[str, str]:
    """A stack's outputs by key (DescribeStacks)."""
    answer = call(client, "describe_stacks", "DescribeStacks", StackName=stack)
    stacks = answer.get("Stacks") or [{}]
    return {
        printable(str(o.get("OutputKey")), 255): printable(str(o.get("OutputValue")), 2048)
        for o in stacks[0].get("Outputs") or []
    }
