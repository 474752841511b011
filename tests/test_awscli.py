"""elevate as the credential_process of real clients: the AWS CLI v2 and boto3.

The AWS CLI v2 from Debian (2.9) ignores AWS_ENDPOINT_URL for its own calls, so it gets
--endpoint-url; the elevate child it starts inherits AWS_ENDPOINT_URL and reaches moto.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from support.awsclitools import TIMEOUT, aws_v2, set_up
from support.cli import elevate_argv, run_elevate
from support.provision import Provisioned

RECURSION_TIMEOUT = 20


def write_aws_config(credential_process: list[str]) -> None:
    """[profile dev] in the (sealed) AWS config file, with the given credential_process."""
    path = Path(os.environ["AWS_CONFIG_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(arg) for arg in credential_process)
    path.write_text(f"[profile dev]\ncredential_process = {command}\nregion = us-east-1\n", encoding="utf-8")


def assumed_role_arn(user: Provisioned) -> str:
    role = user.role_arn.rsplit("/", 1)[-1]
    return f"arn:aws:sts::{user.account_id}:assumed-role/{role}/{user.user_name}"


def run_aws(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [aws_v2(), *args, "--profile", "dev", "--endpoint-url", endpoint, "--output", "json"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=TIMEOUT,
    )


def test_aws_cli_v2_uses_elevate_as_credential_process(moto_env: str) -> None:
    aws_v2()
    user = set_up(moto_env, "awscli-v2")
    write_aws_config(elevate_argv("credential-process", "dev", "--token", user.totp().now()))
    done = run_aws(moto_env, "sts", "get-caller-identity")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"] == assumed_role_arn(user)


def test_boto3_session_uses_elevate_as_credential_process(moto_env: str) -> None:
    user = set_up(moto_env, "awscli-boto3")
    write_aws_config(elevate_argv("credential-process", "dev", "--token", user.totp().now()))
    session = boto3.Session(profile_name="dev")
    identity = session.client("sts", endpoint_url=moto_env).get_caller_identity()
    assert identity["Arn"] == assumed_role_arn(user)
    creds = session.get_credentials()
    assert creds is not None
    assert creds.method == "custom-process"
    access_key = creds.get_frozen_credentials().access_key
    assert access_key is not None and access_key.startswith("ASIA")


def test_aws_profile_pointing_at_elevate_does_not_recurse(moto_env: str, tmp_path: Path) -> None:
    """AWS_PROFILE=dev, whose credential_process is elevate: elevate must not consult it."""
    user = set_up(moto_env, "awscli-recursion")
    code = user.totp().now()
    calls = tmp_path / "credential_process_calls"
    # elevate itself, behind a one-line shim that records each time a client runs it.
    elevate = elevate_argv("credential-process", "dev", "--token", code)
    shim = f"import os; open({str(calls)!r}, 'a').write('called\\n'); os.execv({elevate[0]!r}, {elevate!r})"
    write_aws_config([sys.executable, "-c", shim])
    child = subprocess.Popen(  # not run_elevate: a runaway recursion must be killable as a group
        elevate,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AWS_PROFILE": "dev"},
        start_new_session=True,  # its own process group, so a runaway chain can be stopped whole
    )
    try:
        stdout, stderr = child.communicate(timeout=RECURSION_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail("elevate credential-process did not finish: it recursed through AWS_PROFILE")
    assert child.returncode == 0, stderr
    assert json.loads(stdout)["AccessKeyId"].startswith("ASIA")
    assert not calls.exists(), "elevate ran the AWS_PROFILE's credential_process"

    # Control: a client that does follow AWS_PROFILE runs the shim, so the check above can fail.
    follower = subprocess.run(
        [sys.executable, "-c", "import boto3; boto3.client('sts').get_caller_identity()"],
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_PROFILE": "dev"},
        timeout=TIMEOUT,
    )
    assert follower.returncode == 0, follower.stderr
    assert calls.read_text() == "called\n"


def test_failure_gives_empty_stdout_and_the_aws_cli_reports_it(moto_env: str) -> None:
    aws = aws_v2()
    user = set_up(moto_env, "awscli-failure", add_keys=False)  # no keys stored: elevation fails
    args = ("credential-process", "dev", "--token", user.totp().now())

    direct = run_elevate(*args, timeout=TIMEOUT)
    assert direct.returncode != 0
    assert direct.stdout == ""
    assert direct.stderr.startswith("elevate: error: ")
    assert "elevate keys add dev" in direct.stderr
    assert "Traceback" not in direct.stderr

    write_aws_config(elevate_argv(*args))
    done = run_aws(moto_env, "sts", "get-caller-identity")
    assert done.returncode != 0, f"{aws} succeeded without credentials: {done.stdout}"
    assert done.stdout == ""
    assert "elevate keys add dev" in done.stderr
