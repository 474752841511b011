"""STS client construction and error translation, with botocore's Stubber."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import pytest
from botocore.stub import Stubber
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, SERIAL

from elevate import aws, sts
from elevate.errors import MfaCodeRejected, StsError
from elevate.models import SessionCredentials, SourceKeys

KEYS = SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET)
REQUEST = sts.AssumeRoleRequest(
    role_arn="arn:aws:iam::123456789012:role/R",
    role_session_name="alice",
    source_identity="alice",
    duration_seconds=3600,
    serial_number=SERIAL,
    token_code="975310",
)


def good_credentials(**override: Any) -> dict[str, Any]:
    creds = {
        "AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
        "SecretAccessKey": EXAMPLE_SECRET,
        "SessionToken": "FQoGZXIvYXdzEXAMPLEtokenEXAMPLEtoken==",
        "Expiration": datetime.now(timezone.utc) + timedelta(hours=1),
    }
    creds.update(override)
    return creds


class Signed(Exception):
    """Raised once a request is signed: nothing is sent."""


def signed_by(client: Any) -> tuple[str, Optional[str]]:
    """The access key a GetCallerIdentity request of `client` is signed with, and the session
    token it carries (None: none), read from the signed request, which is then not sent."""
    seen: list[Any] = []

    def stop(request: Any, **_: Any) -> None:
        seen.append(request)
        raise Signed

    client.meta.events.register_last("request-created", stop)
    with pytest.raises(Signed):
        client.get_caller_identity()
    text = {name: v.decode() if isinstance(v, bytes) else v for name, v in seen[0].headers.items()}
    key = text["Authorization"].split("Credential=", 1)[1].split("/", 1)[0]
    return key, text.get("X-Amz-Security-Token")


def test_client_uses_regional_endpoint_and_bounded_timeouts() -> None:
    client = aws.make_client(KEYS, "eu-west-1")
    assert client.meta.endpoint_url == "https://sts.eu-west-1.amazonaws.com"
    config: Any = client.meta.config  # botocore's stubs do not list Config's settings as attributes
    assert config.connect_timeout == 5 and config.read_timeout == 15
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}


def test_client_honours_endpoint_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert aws.make_client(KEYS, "eu-west-1").meta.endpoint_url == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2")
    assert aws.make_client(KEYS, "eu-west-1").meta.endpoint_url == "http://127.0.0.1:2"


def test_client_ignores_aws_profile_and_credential_chain(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    config = tmp_path / "config"
    config.write_text("[profile loop]\ncredential_process = /bin/false\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "loop")
    assert signed_by(aws.make_client(KEYS, "us-east-1")) == (KEYS.access_key_id, None)
    monkeypatch.setenv("AWS_PROFILE", "missing")
    aws.make_client(KEYS, "us-east-1")


def test_session_client_carries_token() -> None:
    session = SessionCredentials(
        "ASIAIOSFODNN7EXAMPLE", "x" * 40, "tok" * 10, datetime.now(timezone.utc) + timedelta(hours=1)
    )
    assert signed_by(aws.make_client(session, "us-east-1")) == ("ASIAIOSFODNN7EXAMPLE", "tok" * 10)


def stubbed() -> tuple[Any, Stubber]:
    client = aws.make_client(KEYS, "us-east-1")
    return client, Stubber(client)


def test_assume_role_sends_everything() -> None:
    client, stub = stubbed()
    stub.add_response(
        "assume_role",
        {"Credentials": good_credentials()},
        {
            "RoleArn": REQUEST.role_arn,
            "RoleSessionName": "alice",
            "SourceIdentity": "alice",
            "DurationSeconds": 3600,
            "SerialNumber": REQUEST.serial_number,
            "TokenCode": "975310",
        },
    )
    with stub:
        creds = sts.assume_role(client, REQUEST)
    assert creds.access_key_id == "ASIAIOSFODNN7EXAMPLE"
    assert creds.expiration.tzinfo is not None
    assert "wJalr" not in repr(creds) and "FQoG" not in repr(creds)
    assert "975310" not in repr(REQUEST)


@pytest.mark.parametrize(
    ("code", "message", "expected", "kind"),
    [
        (
            "AccessDenied",
            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
            "rejected the MFA code",
            MfaCodeRejected,
        ),
        (
            "AccessDenied",
            "MultiFactorAuthentication failed, unable to validate MFA code.",
            "check that mfa_serial",
            MfaCodeRejected,
        ),
        (
            "AccessDenied",
            "User: arn:aws:iam::1:user/a is not authorized to perform: sts:AssumeRole",
            "trust policy",
            StsError,
        ),
        (
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            "invalid or deactivated",
            StsError,
        ),
        ("SignatureDoesNotMatch", "sig", "does not match its access key ID", StsError),
        ("RequestExpired", "Request has expired.", "clock is off", StsError),
        (
            "SignatureDoesNotMatch",
            "Signature expired: 20260101T000000Z is now earlier than 20260101T001500Z",
            "clock is off",
            StsError,
        ),
        ("SignatureDoesNotMatch", "Signature not yet current: 20270101T000000Z", "clock is off", StsError),
        ("Throttling", "Rate exceeded", "throttling", StsError),
        ("ExpiredToken", "expired", "MFA session has expired", StsError),
        ("RegionDisabledException", "disabled", "not enabled in this region", StsError),
        ("ValidationError", "1 validation error", "ValidationError: 1 validation error", StsError),
    ],
)
def test_errors_become_advice(code: str, message: str, expected: str, kind: type) -> None:
    client, stub = stubbed()
    stub.add_client_error(
        "assume_role", service_error_code=code, service_message=message, http_status_code=403
    )
    with stub, pytest.raises(StsError) as info:
        sts.assume_role(client, REQUEST)
    assert type(info.value) is kind
    assert expected in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"AccessKeyId": "ASIA$(touch x)"}, "AccessKeyId"),
        ({"SecretAccessKey": "a'b\nc" * 10}, "SecretAccessKey"),
        ({"SessionToken": "tok\0" * 10}, "SessionToken"),
        ({"SessionToken": "A" * 20000}, "SessionToken"),
    ],
)
def test_malformed_credentials_refused(override: dict[str, Any], field: str) -> None:
    with pytest.raises(StsError, match=f"malformed {field}"):
        sts.credentials_from({"Credentials": good_credentials(**override)}, "AssumeRole")


def test_expired_or_naive_expiration_refused() -> None:
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    with pytest.raises(StsError, match="already expired"):
        sts.credentials_from({"Credentials": good_credentials(Expiration=past)}, "AssumeRole")
    naive = datetime.now() + timedelta(hours=1)
    with pytest.raises(StsError, match="without a time zone"):
        sts.credentials_from({"Credentials": good_credentials(Expiration=naive)}, "AssumeRole")
    with pytest.raises(StsError, match="without credentials"):
        sts.credentials_from({}, "AssumeRole")


def test_caller_user_name_and_non_user_principal() -> None:
    client, stub = stubbed()
    stub.add_response(
        "get_caller_identity",
        {"Arn": "arn:aws:iam::123456789012:user/team/alice", "Account": "1", "UserId": "x"},
    )
    stub.add_response(
        "get_caller_identity",
        {"Arn": "arn:aws:sts::123456789012:assumed-role/R/x", "Account": "1", "UserId": "x"},
    )
    with stub:
        assert sts.caller_user_name(client) == "alice"
        with pytest.raises(StsError, match="not an IAM user"):
            sts.caller_user_name(client)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("alice", "alice"), ("a", "a-"), ("first last", "first-last"), ("x" * 70, "x" * 64), ("ünï", "-n-")],
)
def test_sanitize_name(name: str, expected: str) -> None:
    assert sts.sanitize_name(name) == expected
