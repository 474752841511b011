"""MFA sessions (GetSessionToken): one code, then role credentials minted from the session
while it lasts; end to end against moto and in the core with a clock.
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timezone
from typing import Any, Optional, Union

import boto3
from support.cli import run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE_PROD
from support.provision import TRUST_POLICY, provision
from support.sessioncache import (
    DEV_PROFILE,
    Clock,
    Codes,
    FakeClient,
    elevator,
    profile,
)

from elevate import aws, keystore
from elevate.core import Elevator
from elevate.invocation import Invocation
from elevate.models import Profile, SessionCredentials, SourceKeys

# -- MFA sessions (GetSessionToken), end to end against moto ----------------------------------


class RecordingFactory:
    """The real client factory, recording which calls each kind of credentials made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, keys: Union[SourceKeys, SessionCredentials], region: str) -> Any:
        client = aws.make_client(keys, region)
        kind = "session" if isinstance(keys, SessionCredentials) else "long-term"
        calls = self.calls

        class Recorded:
            meta = client.meta

            def __getattr__(self, name: str) -> Any:
                calls.append((kind, name))
                return getattr(client, name)

        return Recorded()


def _role(endpoint: str, name: str) -> str:
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=EXAMPLE_ID,
        aws_secret_access_key=EXAMPLE_SECRET,
    )
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))["Role"]["Arn"]
        )


def test_mfa_session_mints_role_credentials_without_another_code(moto_env: str) -> None:
    user = provision(moto_env, user_name="cache-mfa-session")
    other_role = _role(moto_env, "CacheOtherRole")
    keystore.put_keys("ms", keystore.check_keys(user.access_key_id, user.secret_access_key))
    shared = {"mfa_serial": user.mfa_serial, "keys": "ms", "mfa_session_seconds": 7200}
    write_config(
        {
            "one": {"role_arn": user.role_arn, "duration_seconds": 3600, **shared},
            "two": {"role_arn": other_role, "duration_seconds": 1800, **shared},
            "three": {"role_arn": user.role_arn, "duration_seconds": 2700, **shared},
        },
        default="one",
    )
    totp_codes: list[str] = []

    def totp(profile: Profile, token: Optional[str]) -> str:
        totp_codes.append(user.totp().now())
        return totp_codes[-1]

    def no_code(profile: Profile, token: Optional[str]) -> str:
        raise AssertionError("no MFA code may be asked for while the MFA session lasts")

    recorder = RecordingFactory()
    first = Elevator(
        invocation=Invocation.from_environ(dict(os.environ)), client_factory=recorder, code_source=totp
    ).elevate(profile("one"))
    assert len(totp_codes) == 1
    assert recorder.calls == [
        ("long-term", "get_session_token"),
        ("session", "get_caller_identity"),
        ("session", "assume_role"),
    ]

    recorder.calls.clear()
    second = Elevator(
        invocation=Invocation.from_environ(dict(os.environ)), client_factory=recorder, code_source=no_code
    ).elevate(profile("two"))
    assert recorder.calls == [("session", "get_caller_identity"), ("session", "assume_role")]
    assert second.access_key_id != first.access_key_id
    assert 1700 < second.seconds_left(datetime.now(timezone.utc)) <= 1800

    # The same through the CLI, with no terminal and no mfa_process: only the MFA session can work.
    done = run_elevate("credential-process", "three")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"] not in (first.access_key_id, second.access_key_id)
    report = {item["profile"]: item for item in json.loads(run_elevate("status", "--json").stdout)}
    assert 7100 < report["one"]["mfa_session"]["seconds_left"] <= 7200
    assert report["three"]["credentials"]["seconds_left"] > 2600


def test_mfa_session_in_the_core_with_a_clock() -> None:
    clock = Clock()
    client = FakeClient(clock)
    codes = Codes()
    p = dataclasses.replace(DEV_PROFILE, mfa_session_seconds=7200)
    elevator(clock, client, codes).elevate(p)
    other = dataclasses.replace(p, name="prod", role_arn=ROLE_PROD)
    elevator(clock, client, codes).elevate(other)
    assert codes.calls == 1 and client.count("GetSessionToken") == 1
    assert "TokenCode" not in client.calls[-1][1]  # role credentials minted without a code
    # The session must outlive what it mints: with only the role's 3600 s left it is renewed.
    clock.advance(3600)
    elevator(clock, client, codes).elevate(other)
    assert codes.calls == 2 and client.count("GetSessionToken") == 2
