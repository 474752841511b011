"""Issue 9, client side: `mfa enroll` closes the onboarding window; names STS cannot carry are refused.

The stack lets the key alone enrol a device only while the user carries the tag
`elevate-onboarding=true`; enrolment removes it at once, so a thief with the key cannot
enrol a device of their own later.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import boto3
import botocore.exceptions
import pyotp
import pytest
from click.testing import CliRunner
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET

from elevate import aws, keystore
from elevate.cli import cli
from elevate.core import Elevator
from elevate.errors import ConfigError, IamError, UsageError
from elevate.invocation import Invocation
from elevate.models import Profile, SourceKeys
from elevate.onboarding.configure import ConfigureAnswers, Onboarding
from elevate.onboarding.enroll import Enroller

SEED = pyotp.random_base32()
ACCOUNT = "123456789012"


class FakeClient:
    """STS and IAM in one, recording every call; `fail` maps an operation to an error code."""

    def __init__(self, user_arn: str, fail: dict[str, str] | None = None) -> None:
        self.user_arn = user_arn
        self.fail = fail or {}
        self.calls: list[tuple[str, dict[str, Any], int]] = []
        self.meta = SimpleNamespace(
            service_model=SimpleNamespace(service_name="iam"), endpoint_url="https://iam.fake.invalid"
        )

    def _record(self, name: str, params: dict[str, Any]) -> None:
        self.calls.append((name, params, id(self)))
        if name in self.fail:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": self.fail[name], "Message": f"not allowed: {name}"}}, name
            )

    def get_caller_identity(self) -> dict[str, Any]:
        self._record("GetCallerIdentity", {})
        return {"Arn": self.user_arn, "Account": ACCOUNT}

    def list_mfa_devices(self, **params: Any) -> dict[str, Any]:
        self._record("ListMFADevices", params)
        return {"MFADevices": []}

    def create_virtual_mfa_device(self, **params: Any) -> dict[str, Any]:
        self._record("CreateVirtualMFADevice", params)
        serial = f"arn:aws:iam::{ACCOUNT}:mfa/{params['VirtualMFADeviceName']}"
        return {"VirtualMFADevice": {"SerialNumber": serial, "Base32StringSeed": SEED.encode()}}

    def enable_mfa_device(self, **params: Any) -> dict[str, Any]:
        self._record("EnableMFADevice", params)
        return {}

    def untag_user(self, **params: Any) -> dict[str, Any]:
        self._record("UntagUser", params)
        return {}

    def delete_virtual_mfa_device(self, **params: Any) -> dict[str, Any]:
        self._record("DeleteVirtualMFADevice", params)
        return {}


def consecutive_codes() -> tuple[str, str]:
    totp = pyotp.TOTP(SEED)
    now = int(datetime.now(timezone.utc).timestamp()) // 30 * 30
    return totp.at(now - 30), totp.at(now)


def enroller(client: FakeClient, messages: list[str]) -> Enroller:
    return Enroller(
        invocation=Invocation.from_environ({}),
        client_factory=lambda keys, region, service="sts": client,
        notify=messages.append,
    )


KEYS = SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET)


def test_enroll_closes_the_onboarding_window_right_after_enabling_on_the_same_client() -> None:
    client = FakeClient(f"arn:aws:iam::{ACCOUNT}:user/alice")
    messages: list[str] = []
    serial = enroller(client, messages).enroll(KEYS, "us-east-1", lambda device: None, consecutive_codes)
    names = [name for name, _, _ in client.calls]
    assert names[-3:] == ["CreateVirtualMFADevice", "EnableMFADevice", "UntagUser"]
    untag = client.calls[-1][1]
    assert untag == {"UserName": "alice", "TagKeys": [aws.ONBOARDING_TAG]}
    assert aws.ONBOARDING_TAG == "elevate-onboarding"
    assert len({who for _, _, who in client.calls[-2:]}) == 1  # the client that enabled the device
    assert serial.endswith("/alice")
    assert any("closed the onboarding window" in m for m in messages)


def test_a_window_that_cannot_be_closed_still_leaves_a_working_device_and_names_the_admin_command() -> None:
    client = FakeClient(f"arn:aws:iam::{ACCOUNT}:user/alice", fail={"UntagUser": "AccessDenied"})
    messages: list[str] = []
    serial = enroller(client, messages).enroll(KEYS, "us-east-1", lambda device: None, consecutive_codes)
    assert serial.endswith("/alice")
    assert "DeleteVirtualMFADevice" not in [name for name, _, _ in client.calls]  # no roll-back
    told = next(m for m in messages if "could not close your onboarding window" in m)
    assert "aws iam untag-user --user-name alice --tag-keys elevate-onboarding" in told


def test_enrolling_with_the_window_closed_says_to_ask_the_admin() -> None:
    client = FakeClient(f"arn:aws:iam::{ACCOUNT}:user/alice", fail={"CreateVirtualMFADevice": "AccessDenied"})
    with pytest.raises(
        IamError, match="onboarding window open: ask your admin to tag your user elevate-onboarding=true"
    ):
        enroller(client, []).enroll(KEYS, "us-east-1", lambda device: None, consecutive_codes)


def test_enroll_against_moto_removes_only_the_onboarding_tag(moto_env: str) -> None:
    iam = boto3.client(
        "iam",
        endpoint_url=moto_env,
        region_name="us-east-1",
        aws_access_key_id=EXAMPLE_ID,
        aws_secret_access_key=EXAMPLE_SECRET,
    )
    name = "onb-window-user"
    iam.create_user(
        UserName=name, Tags=[{"Key": aws.ONBOARDING_TAG, "Value": "true"}, {"Key": "team", "Value": "x"}]
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    keystore.put_keys("dev", keystore.check_keys(key["AccessKeyId"], key["SecretAccessKey"]))

    def codes() -> tuple[str, str]:
        devices = iam.list_virtual_mfa_devices(AssignmentStatus="Unassigned")["VirtualMFADevices"]
        seed = next(d["Base32StringSeed"] for d in devices if d["SerialNumber"].endswith(f"/{name}"))
        totp = pyotp.TOTP(seed.decode() if isinstance(seed, bytes) else seed)
        now = int(datetime.now(timezone.utc).timestamp()) // 30 * 30
        return totp.at(now - 30), totp.at(now)

    first, second = "", ""

    def read() -> tuple[str, str]:
        nonlocal first, second
        first, second = codes()
        return first, second

    Enroller(invocation=Invocation.from_environ(dict(os.environ))).enroll(
        keystore.get_keys("dev"), "us-east-1", lambda d: None, read
    )
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=name)["Tags"]}
    assert tags == {"team": "x"}
    assert iam.list_mfa_devices(UserName=name)["MFADevices"]


# --- names STS cannot carry -------------------------------------------------------------------


def onboarding(user_arn: str) -> tuple[Onboarding, FakeClient]:
    client = FakeClient(user_arn)
    return Onboarding(
        invocation=Invocation.from_environ(dict(os.environ)),
        client_factory=lambda *a, **k: client,
        notify=lambda m: None,
    ), client


def test_configure_refuses_a_one_character_user_name_before_writing_anything(tmp_path: Path) -> None:
    flow, _ = onboarding(f"arn:aws:iam::{ACCOUNT}:user/developers/a")
    config = tmp_path / "config.toml"
    answers = ConfigureAnswers(
        profile="dev",
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/R",
        mfa_serial=f"arn:aws:iam::{ACCOUNT}:mfa/a",
        keys=(EXAMPLE_ID, EXAMPLE_SECRET),
        write_aws_config=False,
    )
    with pytest.raises(UsageError, match="IAM user 'a' is too short for elevate") as info:
        flow.configure(answers, config)
    assert info.value.exit_code == 2
    assert not config.exists()
    assert keystore.list_key_sets() == []


def test_configure_accepts_a_two_character_user_name(tmp_path: Path) -> None:
    flow, _ = onboarding(f"arn:aws:iam::{ACCOUNT}:user/ab")
    config = tmp_path / "config.toml"
    answers = ConfigureAnswers(
        profile="dev",
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/R",
        mfa_serial=f"arn:aws:iam::{ACCOUNT}:mfa/ab",
        keys=(EXAMPLE_ID, EXAMPLE_SECRET),
        write_aws_config=False,
    )
    flow.configure(answers, config)
    assert "mfa/ab" in config.read_text()


def test_a_role_session_name_that_is_not_the_user_name_is_refused_before_assume_role() -> None:
    client = FakeClient(f"arn:aws:iam::{ACCOUNT}:user/alice")
    profile = Profile(
        name="dev",
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/R",
        mfa_serial=f"arn:aws:iam::{ACCOUNT}:mfa/alice",
        role_session_name="bob",
    )
    elevator = Elevator(
        invocation=Invocation.from_environ({}),
        load_keys=lambda name: KEYS,
        # Refused after GetCallerIdentity: the fake needs no AssumeRole.
        client_factory=lambda keys, region: cast(aws.StsClient, client),
        code_source=lambda profile, token: "123456",
    )
    with pytest.raises(ConfigError, match="role_session_name 'bob' is not your IAM user name 'alice'"):
        elevator.elevate(dataclasses.replace(profile), use_cache=False)
    assert [name for name, _, _ in client.calls] == ["GetCallerIdentity"]


def test_the_cli_reports_the_short_name_in_one_line(tmp_path: Path, moto_env: str) -> None:
    iam = boto3.client(
        "iam",
        endpoint_url=moto_env,
        region_name="us-east-1",
        aws_access_key_id=EXAMPLE_ID,
        aws_secret_access_key=EXAMPLE_SECRET,
    )
    iam.create_user(UserName="z")
    key = iam.create_access_key(UserName="z")["AccessKey"]
    result = CliRunner().invoke(
        cli,
        [
            "configure",
            "dev",
            "--role-arn",
            f"arn:aws:iam::{ACCOUNT}:role/R",
            "--mfa-serial",
            f"arn:aws:iam::{ACCOUNT}:mfa/z",
            "--no-aws-config",
            "--no-input",
        ],
        input=f"{key['AccessKeyId']}\n{key['SecretAccessKey']}\n",
        standalone_mode=False,
    )
    assert isinstance(result.exception, UsageError) and "too short" in str(result.exception)
    assert not Path(os.environ["ELEVATE_CONFIG"]).exists()
