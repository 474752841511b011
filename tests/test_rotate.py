"""elevate rotate against moto: the happy path, and an interruption after every step.

"Usable" is checked against moto itself: the key in the keyring must answer
GetCallerIdentity as the user (moto answers an unknown key as user/moto) and be listed
Active for that user.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
import pytest
from click.testing import CliRunner
from support.cli import run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.provision import AwsService, Provisioned, provision

from elevate import aws, keystore
from elevate.cli import cli
from elevate.errors import ElevateError, StsError, UsageError
from elevate.invocation import Invocation
from elevate.models import Profile, SourceKeys
from elevate.onboarding.rotate import STEPS, Rotator

TIMEOUT = 60


def boto(service: AwsService, endpoint: str, keys: Any) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    )


def assert_usable(endpoint: str, user: Provisioned, name: str = "dev") -> SourceKeys:
    """The keyring's key for `name` is an active key of `user` that STS recognises."""
    keys = keystore.get_keys(name)
    arn = boto("sts", endpoint, keys).get_caller_identity()["Arn"]
    assert arn == f"arn:aws:iam::{user.account_id}:user/{user.user_name}"
    listed = boto("iam", endpoint, user).list_access_keys(UserName=user.user_name)["AccessKeyMetadata"]
    assert {k["AccessKeyId"]: k["Status"] for k in listed}[keys.access_key_id] == "Active"
    return keys


def active_keys(endpoint: str, user: Provisioned) -> list[str]:
    iam = boto("iam", endpoint, user)
    return sorted(
        k["AccessKeyId"] for k in iam.list_access_keys(UserName=user.user_name)["AccessKeyMetadata"]
    )


@pytest.fixture
def user(moto_env: str, request: pytest.FixtureRequest) -> Provisioned:
    name = f"rot-{zlib.crc32(request.node.nodeid.encode()):08x}"
    p = provision(moto_env, user_name=name)
    keystore.put_keys("dev", keystore.check_keys(p.access_key_id, p.secret_access_key))
    return p


def profile_of(user: Provisioned) -> Profile:
    return Profile(name="dev", role_arn=user.role_arn, mfa_serial=user.mfa_serial, region="us-east-1")


def rotator(user: Provisioned, **kwargs: Any) -> tuple[Rotator, list[str]]:
    told: list[str] = []
    kwargs.setdefault("code_source", lambda profile, token: user.totp().now())
    kwargs.setdefault("sleep", lambda seconds: None)
    return Rotator(invocation=Invocation.from_environ(dict(os.environ)), notify=told.append, **kwargs), told


def test_rotate_cli_replaces_and_deletes_the_old_key(user: Provisioned, moto_env: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["rotate", "dev", "--mfa-serial", user.mfa_serial, "-t", user.totp().now()],
        standalone_mode=False,
    )
    assert result.exception is None, result.output
    assert result.stdout == ""
    new = assert_usable(moto_env, user)
    assert new.access_key_id != user.access_key_id
    assert active_keys(moto_env, user) == [new.access_key_id]
    assert new.created is not None
    assert "rotated 'dev'" in result.stderr and new.secret_access_key not in result.output


def test_rotate_subprocess_finds_the_mfa_device_from_the_profile(user: Provisioned, moto_env: str) -> None:
    write_config({"work": {"role_arn": user.role_arn, "mfa_serial": user.mfa_serial, "keys": "dev"}})
    done = run_elevate("rotate", "dev", "-t", user.totp().now(), timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    new = assert_usable(moto_env, user)
    assert active_keys(moto_env, user) == [new.access_key_id]


class Stop(Exception):
    """An unexpected failure injected between two steps."""


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("how", ["error", "ctrl-c"])
def test_rotate_interrupted_after_each_step_leaves_a_usable_key(
    user: Provisioned, moto_env: str, step: str, how: str
) -> None:
    def fault(at: str) -> None:
        if at == step:
            raise (KeyboardInterrupt() if how == "ctrl-c" else ElevateError(f"injected after {at}"))

    worker, told = rotator(user, fault=fault)
    with pytest.raises((KeyboardInterrupt, ElevateError)) as caught:
        worker.rotate("dev", profile_of(user))
    message = " ".join([str(caught.value), *told])
    stored = assert_usable(moto_env, user)
    keys = active_keys(moto_env, user)
    if step == "session":
        assert stored.access_key_id == user.access_key_id
        assert keys == [user.access_key_id]
        assert "nothing was changed" in message
    elif step in ("created", "verified"):
        assert stored.access_key_id == user.access_key_id
        if how == "error":
            assert keys == [user.access_key_id]
            assert "was deleted again: nothing to clean up" in message
        else:
            # No rollback after Ctrl-C: the message names the key to delete, by its full ID.
            left = [k for k in keys if k != user.access_key_id]
            assert len(left) == 1
            assert f"--access-key-id {left[0]}" in message
    elif step == "stored":
        assert stored.access_key_id != user.access_key_id
        assert sorted(keys) == sorted([user.access_key_id, stored.access_key_id])
        assert f"the old key {user.access_key_id} is still active" in message
        assert f"--access-key-id {user.access_key_id}" in message
    else:
        assert keys == [stored.access_key_id] and stored.access_key_id != user.access_key_id
        assert "nothing to clean up" in message


def test_rotate_unexpected_exception_is_reported_with_the_clean_up(user: Provisioned, moto_env: str) -> None:
    def fault(at: str) -> None:
        if at == "stored":
            raise Stop("disk full")

    worker, _ = rotator(user, fault=fault)
    with pytest.raises(
        ElevateError, match=r"rotation failed \(Stop: disk full\); the keyring holds the new key"
    ):
        worker.rotate("dev", profile_of(user))
    assert_usable(moto_env, user)


def flaky_new_key(old_id: str, failures: int, calls: list[str]) -> Callable[..., Any]:
    """A client factory: GetCallerIdentity with any key but `old_id` fails `failures` times first."""

    def factory(keys: Any, region: str, service: str = "sts") -> Any:
        client: Any = aws.make_client(keys, region, service)  # its operations are replaced below
        if service == "sts" and isinstance(keys, SourceKeys) and keys.access_key_id != old_id:
            real = client.get_caller_identity

            def identity(**params: Any) -> Any:
                calls.append(keys.access_key_id)
                if len(calls) <= failures:
                    error = {"Error": {"Code": "InvalidClientTokenId", "Message": "not yet"}}
                    raise botocore.exceptions.ClientError(error, "GetCallerIdentity")  # type: ignore[arg-type]
                return real(**params)

            client.get_caller_identity = identity
        return client

    return factory


def test_rotate_waits_for_iam_eventual_consistency(user: Provisioned, moto_env: str) -> None:
    calls: list[str] = []
    slept: list[float] = []
    worker, _ = rotator(user, client_factory=flaky_new_key(user.access_key_id, 3, calls), sleep=slept.append)
    worker.rotate("dev", profile_of(user))
    assert len(calls) == 4
    assert slept == [1.0, 1.5, 2.25]
    assert_usable(moto_env, user)
    assert keystore.get_keys("dev").access_key_id != user.access_key_id


def test_rotate_gives_up_after_bounded_tries_and_rolls_back(user: Provisioned, moto_env: str) -> None:
    calls: list[str] = []
    slept: list[float] = []
    worker, _ = rotator(
        user,
        client_factory=flaky_new_key(user.access_key_id, 100, calls),
        sleep=slept.append,
        verify_attempts=5,
    )
    with pytest.raises(StsError, match="did not work after 5 tries") as caught:
        worker.rotate("dev", profile_of(user))
    assert len(calls) == 5 and len(slept) == 4 and sum(slept) < 30
    assert "nothing to clean up" in str(caught.value)
    assert assert_usable(moto_env, user).access_key_id == user.access_key_id
    assert active_keys(moto_env, user) == [user.access_key_id]


def test_rotate_refuses_when_the_user_already_has_two_keys(user: Provisioned, moto_env: str) -> None:
    second = boto("iam", moto_env, user).create_access_key(UserName=user.user_name)["AccessKey"][
        "AccessKeyId"
    ]
    worker, _ = rotator(user)
    with pytest.raises(UsageError, match=f"another access key \\({second}\\)") as caught:
        worker.rotate("dev", profile_of(user))
    assert "nothing was changed" in str(caught.value)
    assert sorted(active_keys(moto_env, user)) == sorted([user.access_key_id, second])
    assert keystore.get_keys("dev").access_key_id == user.access_key_id


def test_rotate_refuses_a_reused_code(user: Provisioned, moto_env: str) -> None:
    code = user.totp().now()
    worker, _ = rotator(user, code_source=lambda profile, token: code)
    worker.rotate("dev", profile_of(user))
    second, _ = rotator(user, code_source=lambda profile, token: code)
    with pytest.raises(ElevateError, match="already used"):
        second.rotate("dev", profile_of(user))
    assert_usable(moto_env, user)


def test_rotate_without_any_mfa_device_says_to_enroll(moto_env: str) -> None:
    admin = boto("iam", moto_env, keystore.check_keys(EXAMPLE_ID, EXAMPLE_SECRET))
    admin.create_user(UserName="rot-nomfa")
    raw = admin.create_access_key(UserName="rot-nomfa")["AccessKey"]
    keystore.put_keys("solo", keystore.check_keys(raw["AccessKeyId"], raw["SecretAccessKey"]))
    result = CliRunner().invoke(cli, ["rotate", "solo", "-t", "123456"], standalone_mode=False)
    assert isinstance(result.exception, UsageError)
    assert "`elevate mfa enroll solo`" in str(result.exception)
    assert keystore.get_keys("solo").access_key_id == raw["AccessKeyId"]


def test_rotate_missing_key_set_names_keys_add() -> None:
    result = CliRunner().invoke(cli, ["rotate", "ghost", "-t", "123456"], standalone_mode=False)
    assert isinstance(result.exception, ElevateError)
    assert "elevate keys add ghost" in str(result.exception)
