"""End to end: deploy the developer stack into moto with scripts/deploy-stack, create a developer
there with a key and a virtual MFA device named as the stack asks, configure `elevate` from the
stack's CliProfile output and elevate with `python -m elevate` as a subprocess.

moto checks no trust policy and no MFA code (the policies' meaning is proven in
test_policy_semantics.py); this shows the stack's outputs and the CLI fit together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pyotp
import pytest
from support.cfn import FAKE_KEY_ID, REPO, aws_env, moto_client, run_deploy_stack, venv_tool

SUPPORT = REPO / "tests" / "support"


@pytest.fixture(scope="module")
def stack_outputs(cfn_moto: str) -> dict[str, str]:
    venv_tool("cfn-lint")
    result = run_deploy_stack(["stack", "--stack-name", "e2e", "--json"], aws_env(cfn_moto))
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def developer(url: str, name: str) -> tuple[dict[str, str], pyotp.TOTP, str]:
    """An IAM user under /developers/ with an access key and an enabled virtual MFA device
    named after the user, as docs/admin.md tells developers to enrol it."""
    iam = moto_client(url, "iam")
    iam.create_user(UserName=name, Path="/developers/")
    key = iam.create_access_key(UserName=name)["AccessKey"]
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
    seed = device["Base32StringSeed"]
    totp = pyotp.TOTP(seed.decode() if isinstance(seed, bytes) else seed)
    iam.enable_mfa_device(
        UserName=name,
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=totp.at(time.time() - 30),
        AuthenticationCode2=totp.now(),
    )
    return key, totp, str(device["SerialNumber"])


def elevate_env(url: str, tmp_path: Path, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=url,
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        ELEVATE_CONFIG=str(config),
        ELEVATE_CACHE_DIR=str(tmp_path / "cache"),
        PYTHON_KEYRING_BACKEND="elevate_testkeyring.FileKeyring",
        PYTHONPATH=str(SUPPORT),
        ELEVATE_TEST_KEYRING_FILE=str(tmp_path / "keyring.json"),
    )
    return env


def elevate(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "elevate", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


@pytest.mark.parametrize("mfa_session_seconds", [None, 3600], ids=["direct", "mfa-session"])
def test_a_developer_elevates_with_the_stacks_profile(
    cfn_moto: str, stack_outputs: dict[str, str], tmp_path: Path, mfa_session_seconds: int | None
) -> None:
    name = "alice" if mfa_session_seconds is None else "bob"
    key, totp, serial = developer(cfn_moto, name)
    # The device the developer enrolled is the one the stack's pattern names.
    assert serial == stack_outputs["MfaSerialPattern"].replace("<user-name>", name)

    profile = stack_outputs["CliProfile"].replace("<user-name>", name)
    if mfa_session_seconds is not None:
        # Must not exceed the stack's MaxMfaAgeSeconds (3600 by default): see docs/admin.md.
        profile += f"mfa_session_seconds = {mfa_session_seconds}\n"
    config = tmp_path / "config.toml"
    config.write_text(profile)
    env = elevate_env(cfn_moto, tmp_path, config)

    added = elevate(env, "keys", "add", "dev", stdin=f"{key['AccessKeyId']}\n{key['SecretAccessKey']}\n")
    assert added.returncode == 0, added.stderr
    assert key["SecretAccessKey"] not in added.stdout + added.stderr

    done = elevate(env, "credential-process", "dev", "--token", totp.now())
    assert done.returncode == 0, done.stderr
    creds = json.loads(done.stdout)
    assert creds["Version"] == 1
    assert creds["AccessKeyId"] not in (key["AccessKeyId"], FAKE_KEY_ID)

    # The credentials are the role's.
    session_sts = boto3.client(
        "sts",
        endpoint_url=cfn_moto,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    caller = session_sts.get_caller_identity()["Arn"]
    role_name = stack_outputs["RoleArn"].rsplit("/", 1)[1]
    role = moto_client(cfn_moto, "iam").get_role(RoleName=role_name)["Role"]
    assert role["Arn"] == stack_outputs["RoleArn"]
    assert caller.startswith(f"arn:aws:sts::123456789012:assumed-role/{role_name}/")
