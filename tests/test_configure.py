"""`elevate configure` against moto: flags, stdin, a stack output, the wizard (scripted and in a
real terminal), the credential_process line it writes, and what it refuses.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pexpect
import pytest
from support.cli import elevate_argv, run_elevate
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.onboarding import (
    aws_config_file,
    botocore_sections,
    credentials_file,
    elevate_config,
    golden,
    invoke,
    onboarding_user,
    put,
    user_name,
)
from support.provision import AwsService, Provisioned

from elevate import keystore
from elevate.config import parse_config
from elevate.errors import UsageError
from elevate.invocation import Invocation
from elevate.models import SourceKeys
from elevate.onboarding.command_line import elevate_command
from elevate.onboarding.configure import ConfigureAnswers, Onboarding

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

TIMEOUT = 60


def client(service: AwsService, endpoint: str, keys: Any = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys.access_key_id if keys else EXAMPLE_ID,
        aws_secret_access_key=keys.secret_access_key if keys else EXAMPLE_SECRET,
    )


def bare_user(endpoint: str, name: str) -> SourceKeys:
    """An IAM user with an access key and no MFA device."""
    iam = client("iam", endpoint)
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return SourceKeys(key["AccessKeyId"], key["SecretAccessKey"])


# --- configure against moto ------------------------------------------------------------------


@pytest.fixture
def alice(moto_env: str, request: pytest.FixtureRequest) -> Provisioned:
    return onboarding_user(moto_env, request)


def test_configure_non_interactive_then_elevate_through_aws_config(alice: Provisioned) -> None:
    put(aws_config_file(), golden("aws-config.in"))
    result = invoke(
        "configure",
        "dev",
        "--role-arn",
        alice.role_arn,
        "--region",
        "us-east-1",
        "--aws-config",
        stdin=f"{alice.access_key_id}\n{alice.secret_access_key}\n",
    )
    assert result.exception is None, result.output
    assert result.stdout == ""
    config = parse_config(elevate_config().read_text(), elevate_config())
    assert config.default_profile == "dev"
    profile = config.profiles["dev"]
    assert (profile.role_arn, profile.mfa_serial, profile.region) == (
        alice.role_arn,
        alice.mfa_serial,
        "us-east-1",
    )
    assert keystore.get_keys("dev").access_key_id == alice.access_key_id
    command = shlex.join([*elevate_command(), "credential-process", "dev"])
    # The region too, so `aws --profile dev ...` needs no other step (issue 12).
    assert (
        aws_config_file().read_bytes()
        == golden("aws-config.after-configure", COMMAND=command) + b"region = us-east-1\n"
    )
    assert "+credential_process = " in result.stderr  # the change was shown
    assert alice.secret_access_key not in result.output
    # What was written works: warm the cache, then boto3 runs the written line itself, in an
    # environment without ELEVATE_CONFIG, as the AWS CLI would from another shell.
    assert run_elevate("credential-process", "dev", "-t", alice.totp().now()).returncode == 0
    assert sdk_caller_arn("dev").endswith(f"assumed-role/DeveloperElevated/{alice.user_name}")


def sdk_caller_arn(aws_profile: str) -> str:
    """The caller ARN boto3 gets through the profile's credential_process, ELEVATE_CONFIG unset."""
    env = {k: v for k, v in os.environ.items() if k != "ELEVATE_CONFIG"}
    script = (
        "import boto3, sys; s = boto3.Session(profile_name=sys.argv[1]); "
        "print(s.client('sts', region_name='us-east-1').get_caller_identity()['Arn'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, aws_profile], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_configure_names_a_non_default_config_in_the_credential_process_line(
    alice: Provisioned, tmp_path: Path
) -> None:
    other = tmp_path / "team" / "elevate.toml"
    env = dict(os.environ, ELEVATE_CONFIG=str(other))
    done = run_elevate(
        "configure",
        "work",
        "--role-arn",
        alice.role_arn,
        "--region",
        "us-east-1",
        "--aws-config",
        stdin=f"{alice.access_key_id}\n{alice.secret_access_key}\n",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert f"--config {other} credential-process work" in aws_config_file().read_text()
    warm = run_elevate("credential-process", "work", "-t", alice.totp().now(), env=env)
    assert warm.returncode == 0, warm.stderr
    assert sdk_caller_arn("work").endswith(f"/{alice.user_name}")


def test_configure_refuses_an_aws_profile_name_botocore_would_ignore(alice: Provisioned) -> None:
    done = run_elevate(
        "configure",
        "dev",
        "--role-arn",
        alice.role_arn,
        "--aws-config",
        "--aws-profile",
        "my dev",
        stdin=f"{alice.access_key_id}\n{alice.secret_access_key}\n",
    )
    assert done.returncode == 2 and "--aws-profile 'my dev' must be" in done.stderr
    assert not aws_config_file().exists() or "my dev" not in aws_config_file().read_text()


def test_configure_subprocess_from_aws_profile_golden_files(alice: Provisioned) -> None:
    put(
        credentials_file(),
        golden("credentials.in", KEY_ID=alice.access_key_id, SECRET=alice.secret_access_key),
    )
    put(aws_config_file(), golden("aws-config-existing.in"))
    put(elevate_config(), golden("config.toml.in"), 0o644)
    done = run_elevate(
        "configure",
        "dev",
        "--from-aws-profile",
        "work",
        "--delete-plaintext",
        "--role-arn",
        alice.role_arn,
        "--region",
        "us-east-1",
        "--aws-config",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert credentials_file().read_bytes() == golden("credentials.after-import")
    assert elevate_config().read_bytes() == golden(
        "config.toml.after-configure", ROLE_ARN=alice.role_arn, MFA_SERIAL=alice.mfa_serial
    )
    assert stat.S_IMODE(elevate_config().stat().st_mode) == 0o644
    command = shlex.join([*elevate_command(), "credential-process", "dev"])
    # --region replaces the profile's region in ~/.aws/config too (the rest is kept; issue 12).
    expected = golden("aws-config-existing.after-configure", COMMAND=command).replace(
        b"region = eu-central-1", b"region = us-east-1"
    )
    assert aws_config_file().read_bytes() == expected
    assert keystore.get_keys("dev").access_key_id == alice.access_key_id
    # A second run changes nothing and says so.
    again = run_elevate("configure", "dev", "--stored-keys", "--aws-config")
    assert again.returncode == 0, again.stderr
    assert "already runs elevate" in again.stderr
    assert elevate_config().read_bytes() == golden(
        "config.toml.after-configure", ROLE_ARN=alice.role_arn, MFA_SERIAL=alice.mfa_serial
    )
    assert aws_config_file().read_bytes() == expected


def test_configure_from_stack_reads_the_role_arn_output(alice: Provisioned, moto_env: str) -> None:
    stack = "dev-access-" + alice.user_name[-20:].replace("_", "-")
    template = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {"RoleArn": {"Value": alice.role_arn}, "GroupName": {"Value": "developers"}},
    }
    client("cloudformation", moto_env).create_stack(StackName=stack, TemplateBody=json.dumps(template))
    keys = f"{alice.access_key_id}\n{alice.secret_access_key}\n"
    done = run_elevate("configure", "dev", "--from-stack", stack, "--no-aws-config", stdin=keys)
    assert done.returncode == 0, done.stderr
    assert (
        parse_config(elevate_config().read_text(), elevate_config()).profiles["dev"].role_arn
        == alice.role_arn
    )
    assert f"role ARN from stack {stack!r}" in done.stderr
    assert not aws_config_file().exists()
    missing = run_elevate(
        "configure", "dev", "--from-stack", stack, "--stack-output", "Nope", "--stored-keys"
    )
    assert missing.returncode == 2
    assert "no output 'Nope' (it has: GroupName, RoleArn)" in missing.stderr
    elsewhere = run_elevate(
        "configure", "dev", "--from-stack", stack, "--region", "ap-south-1", "--stored-keys", "--no-input"
    )
    assert elsewhere.returncode == 1
    assert "in region ap-south-1" in elsewhere.stderr and "pass --region REGION" in elsewhere.stderr


def test_configure_without_mfa_device_names_enroll(moto_env: str, request: pytest.FixtureRequest) -> None:
    keys = bare_user(moto_env, user_name(request, "nomfa"))
    done = run_elevate(
        "configure",
        "dev",
        "--role-arn",
        "arn:aws:iam::123456789012:role/DeveloperElevated",
        stdin=f"{keys.access_key_id}\n{keys.secret_access_key}\n",
    )
    assert done.returncode == 2
    assert "has no MFA device: run `elevate mfa enroll dev`" in done.stderr
    assert keystore.get_keys("dev").access_key_id == keys.access_key_id  # stored, so enroll can use it
    assert not elevate_config().exists()


def test_configure_non_interactive_names_the_missing_flag(alice: Provisioned) -> None:
    done = run_elevate(
        "configure", "dev", "--no-input", stdin=f"{alice.access_key_id}\n{alice.secret_access_key}\n"
    )
    assert done.returncode == 2
    assert "pass --role-arn ARN or --from-stack NAME" in done.stderr
    no_keys = invoke("configure", "dev", "--role-arn", alice.role_arn, stdin="")
    assert isinstance(no_keys.exception, UsageError)
    assert "expected 2 lines on stdin" in str(no_keys.exception) and "--stored-keys" in str(no_keys.exception)


def test_configure_refuses_keys_of_another_shape() -> None:
    result = invoke(
        "configure", "dev", "--role-arn", "arn:aws:iam::123456789012:role/R", stdin="ASIAXXXX\nshort\n"
    )
    assert isinstance(result.exception, UsageError)
    assert "temporary" in str(result.exception)
    assert not elevate_config().exists()


class ScriptedPrompter:
    """Answers from a script, in order; records every question."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.questions: list[str] = []

    def _next(self, question: str) -> Any:
        self.questions.append(question)
        return self.answers.pop(0)

    def ask(self, question: str, default: str | None = None) -> str:
        answer = self._next(question)
        return default or "" if answer is None else str(answer)

    def secret(self, question: str) -> str:
        return str(self._next(question))

    def confirm(self, question: str, default: bool) -> bool:
        answer = self._next(question)
        return default if answer is None else bool(answer)


def test_configure_wizard_core_asks_and_shows_the_change_first(alice: Provisioned) -> None:
    messages: list[str] = []
    prompter = ScriptedPrompter(
        None,  # profile name: default "dev"
        "us-east-1",  # region
        alice.access_key_id,
        alice.secret_access_key,
        alice.role_arn,
        None,  # write ~/.aws/config: default yes
    )
    written_at_confirm: list[bool] = []
    original_confirm = prompter.confirm

    def confirm(question: str, default: bool) -> bool:
        written_at_confirm.append(aws_config_file().exists())
        return original_confirm(question, default)

    prompter.confirm = confirm  # type: ignore[method-assign]
    onboarding = Onboarding(
        invocation=Invocation.from_environ(dict(os.environ)), notify=messages.append, command=["/bin/elevate"]
    )
    result = onboarding.configure(ConfigureAnswers(), elevate_config(), prompter)
    assert result.profile == "dev" and result.aws_config_written
    assert prompter.questions[0] == "Profile name" and prompter.questions[-1].startswith("Write this to")
    assert written_at_confirm == [False]
    assert any("+credential_process = /bin/elevate credential-process dev" in m for m in messages)
    assert (
        aws_config_file().read_text()
        == "[profile dev]\ncredential_process = /bin/elevate credential-process dev\nregion = us-east-1\n"
    )


def test_configure_wizard_in_a_real_terminal(alice: Provisioned) -> None:
    # A real pty, so the wizard prompts as it would for a person: run_elevate has no terminal.
    python, *args = elevate_argv("configure")
    child = pexpect.spawn(
        python,
        args,
        env=dict(os.environ),
        timeout=TIMEOUT,
        encoding="utf-8",
    )
    try:
        child.expect(r"Profile name \[dev\]: ")
        child.sendline("")
        child.expect(r"Region \[us-east-1\]: ")
        child.sendline("")
        child.expect("Access key ID: ")
        child.sendline(alice.access_key_id)
        child.expect("Secret access key: ")
        child.sendline(alice.secret_access_key)
        child.expect(r"Role ARN \(from the admin\): ")
        child.sendline(alice.role_arn)
        child.expect(r"\+credential_process = ")
        child.expect(r"Write this to .*\? \[Y/n\]: ")
        child.sendline("y")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert alice.secret_access_key not in (child.before or "")
    assert (
        parse_config(elevate_config().read_text(), elevate_config()).profiles["dev"].mfa_serial
        == alice.mfa_serial
    )
    assert "credential-process dev" in aws_config_file().read_text()


def test_configure_with_explicit_config_puts_it_in_credential_process(
    alice: Provisioned, tmp_path: Path
) -> None:
    other = tmp_path / "other.toml"
    keys = f"{alice.access_key_id}\n{alice.secret_access_key}\n"
    done = run_elevate(
        "--config", str(other), "configure", "w", "--role-arn", alice.role_arn, "--aws-config", stdin=keys
    )
    assert done.returncode == 0, done.stderr
    line = botocore_sections(aws_config_file())["profile w"]["credential_process"]
    assert shlex.split(line)[-4:] == ["--config", str(other), "credential-process", "w"]
    assert not elevate_config().exists()


def test_elevate_command_prefers_the_installed_script(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "elevate"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    python = tmp_path / "bin" / "python"
    assert elevate_command(str(script), str(python)) == [str(script)]
    assert elevate_command("/x/elevate/__main__.py", str(python)) == [str(script)]
    # -I: never import from the caller's working directory (issue 11).
    assert elevate_command("/x/elevate/__main__.py", str(tmp_path / "python")) == [
        str(tmp_path / "python"),
        "-I",
        "-m",
        "elevate",
    ]


# --- enrolment from configure: no camera, no interruption ------------------------------------------


def _configure_to_enrolment(moto_env: str, request: pytest.FixtureRequest, *flags: str) -> pexpect.spawn[str]:
    """`elevate configure` on a pty for a user with no MFA device, up to "enrol one now?" answered yes."""
    keys = bare_user(moto_env, user_name(request, "camless"))
    argv = elevate_argv(
        "configure", "dev", "--region", "us-east-1", "--role-arn", ROLE_WITHOUT_DEVICE, "--no-default", *flags
    )
    child = pexpect.spawn(argv[0], argv[1:], env=dict(os.environ), timeout=TIMEOUT, encoding="utf-8")
    child.expect("Access key ID: ")
    child.sendline(keys.access_key_id)
    child.expect("Secret access key: ")
    child.sendline(keys.secret_access_key)
    child.expect(r"has no MFA device\. Enroll a virtual one now\? \[Y/n\]: ")
    child.sendline("y")
    return child


ROLE_WITHOUT_DEVICE = "arn:aws:iam::210987654321:role/DeveloperElevated"  # another account: not looked up


def _stop_at_the_codes(child: pexpect.spawn[str]) -> None:
    child.expect("Code shown now: ")
    child.sendintr()  # the device made is deleted again
    child.expect(pexpect.EOF)
    child.close()


def test_configure_offers_the_typed_key_before_the_device_is_made(
    moto_env: str, request: pytest.FixtureRequest
) -> None:
    child = _configure_to_enrolment(moto_env, request)
    try:
        first = child.expect([r"No camera\? .*\[y/N\]: ", "Scan this QR code"])
        assert first == 0, "the no-camera choice comes only after the device exists"
        child.sendline("y")
        child.expect("Scan this QR code")
        child.expect(r"secret key: [A-Z2-7]{16,}")
        _stop_at_the_codes(child)
    finally:
        child.close(force=True)


def test_configure_show_secret_is_passed_to_enrolment(moto_env: str, request: pytest.FixtureRequest) -> None:
    child = _configure_to_enrolment(moto_env, request, "--show-secret")
    try:
        child.expect("Scan this QR code")
        child.expect(r"secret key: [A-Z2-7]{16,}")
        assert "No camera" not in (child.before or "")
        _stop_at_the_codes(child)
    finally:
        child.close(force=True)
