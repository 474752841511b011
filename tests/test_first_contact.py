"""First contact: configure leaves the AWS CLI v2 working; background jobs never wait; the role check."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path

import pexpect
import pytest
from support.awsclitools import aws_v2
from support.cli import run_elevate
from support.fakests import FakeSts
from support.provision import Provisioned, provision
from support.realparts import require_tool
from support.ttyprompt import set_up as tty_set_up

from elevate import keystore
from elevate.models import SourceKeys

EXAMPLE_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

PEXPECT_TIMEOUT = 60
ELEVATE = f"{shlex.quote(sys.executable)} -m elevate"


def _user_name(request: pytest.FixtureRequest, prefix: str) -> str:
    return f"{prefix}-{abs(hash(request.node.name)) % 10**8}"


@pytest.mark.slow
def test_configure_with_aws_config_leaves_the_aws_cli_v2_working(
    moto_env: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    aws = aws_v2()
    bash = require_tool("bash")
    user = provision(moto_env, user_name=_user_name(request, "first"))
    done = run_elevate(
        "configure",
        "dev",
        "--role-arn",
        user.role_arn,
        "--region",
        "eu-west-1",
        "--aws-config",
        "--no-input",
        stdin=f"{user.access_key_id}\n{user.secret_access_key}\n",
    )
    assert done.returncode == 0, done.stderr
    written = Path(os.environ["AWS_CONFIG_FILE"]).read_text()
    assert "region = eu-west-1" in written
    # No other step: no AWS_REGION, no ELEVATE_CONFIG (the AWS CLI runs from another shell);
    # the code is typed at the prompt the credential_process child shows on the terminal.
    env = {
        k: v for k, v in os.environ.items() if k not in ("ELEVATE_CONFIG", "AWS_REGION", "AWS_DEFAULT_REGION")
    }
    command = (
        f"{shlex.quote(aws)} --endpoint-url {shlex.quote(moto_env)} --profile dev "
        "sts get-caller-identity --query Arn --output text"
    )
    child = pexpect.spawn(
        bash,
        ["--norc", "--noprofile", "-c", command],
        cwd=str(tmp_path),
        env={**env, "TERM": "dumb", "AWS_PAGER": ""},
        encoding="utf-8",
        timeout=PEXPECT_TIMEOUT,
    )
    try:
        child.expect("MFA code for " + re.escape(user.mfa_serial) + ": ")
        child.sendline(user.totp().now())
        child.expect(pexpect.EOF)
        shown = str(child.before)
        child.close()
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, shown
    assert f"assumed-role/DeveloperElevated/{user.user_name}" in shown
    assert user.secret_access_key not in shown


def test_a_background_job_says_so_at_once_and_fails(moto_env: str, tmp_path: Path) -> None:
    bash = require_tool("bash")
    user: Provisioned = tty_set_up(moto_env, "tty-background")
    # `set -m`: job control, so the & job gets a process group that is not the terminal's
    # foreground group, as in an interactive shell.
    script = f"set -m; {ELEVATE} credential-process dev > out.json & wait $!; echo STATUS=$?"
    child = pexpect.spawn(
        bash,
        ["--norc", "--noprofile", "-c", script],
        cwd=str(tmp_path),
        env={**os.environ, "TERM": "dumb"},
        encoding="utf-8",
        timeout=30,
    )
    started = time.monotonic()
    try:
        child.expect(pexpect.EOF)
        shown = str(child.before)
    finally:
        child.close(force=True)
    assert "STATUS=1" in shown, shown
    assert "running in the background" in shown and "foreground" in shown
    assert "MFA code for" not in shown, "it must not prompt, then wait"
    assert time.monotonic() - started < 20
    assert (tmp_path / "out.json").read_text() == ""
    assert user.secret_access_key not in shown


def test_a_background_job_with_a_token_still_works(moto_env: str, tmp_path: Path) -> None:
    bash = require_tool("bash")
    user = tty_set_up(moto_env, "tty-background-token")
    script = (
        f"set -m; {ELEVATE} credential-process dev -t {user.totp().now()} > out.json & "
        "wait $!; echo STATUS=$?"
    )
    child = pexpect.spawn(
        bash,
        ["--norc", "--noprofile", "-c", script],
        cwd=str(tmp_path),
        env={**os.environ, "TERM": "dumb"},
        encoding="utf-8",
        timeout=60,
    )
    try:
        child.expect(pexpect.EOF)
        shown = str(child.before)
    finally:
        child.close(force=True)
    assert "STATUS=0" in shown, shown
    assert '"AccessKeyId"' in (tmp_path / "out.json").read_text()


def test_configure_says_when_the_role_is_in_another_account(
    moto_env: str, request: pytest.FixtureRequest
) -> None:
    user = provision(moto_env, user_name=_user_name(request, "xacct"))
    other = "arn:aws:iam::999999999999:role/DeveloperElevated"
    done = run_elevate(
        "configure",
        "dev",
        "--role-arn",
        other,
        "--region",
        "us-east-1",
        "--no-aws-config",
        "--no-input",
        stdin=f"{user.access_key_id}\n{user.secret_access_key}\n",
    )
    assert done.returncode == 0, done.stderr
    assert "account 999999999999" in done.stderr and "cannot see roles in another account" in done.stderr


def test_configure_refuses_a_role_that_does_not_exist_in_the_keys_account(
    moto_env: str, request: pytest.FixtureRequest
) -> None:
    user = provision(moto_env, user_name=_user_name(request, "norole"))
    account = user.role_arn.split(":")[4]
    typo = f"arn:aws:iam::{account}:role/DeveloperElevatd"
    done = run_elevate(
        "configure",
        "dev",
        "--role-arn",
        typo,
        "--region",
        "us-east-1",
        "--no-aws-config",
        "--no-input",
        stdin=f"{user.access_key_id}\n{user.secret_access_key}\n",
    )
    assert done.returncode == 2, done.stderr
    assert "no role 'DeveloperElevatd'" in done.stderr
    assert user.secret_access_key not in done.stderr


def test_access_denied_on_assume_role_names_role_arn_the_profile_and_the_line(fake_sts: FakeSts) -> None:
    keystore.put_keys("dev", SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET))
    config = Path(os.environ["ELEVATE_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    role = "arn:aws:iam::123456789012:role/DeveloperElevatd"
    config.write_text(
        '# comment\n[profiles.dev]\nmfa_serial = "arn:aws:iam::123456789012:mfa/alice"\n'
        f'role_arn = "{role}"\n'
    )
    fake_sts.behave("AssumeRole", error=(403, "AccessDenied", "not authorized to perform sts:AssumeRole"))
    done = run_elevate("credential-process", "dev", "-t", "123456")
    assert done.returncode == 1 and done.stdout == ""
    assert f"role_arn = '{role}'" in done.stderr
    assert "profile 'dev'" in done.stderr
    assert f"{config}:4" in done.stderr
    assert EXAMPLE_SECRET not in done.stderr
