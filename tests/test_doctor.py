"""elevate doctor: a healthy set-up passes; each deliberately broken part is named with its fix."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from click.testing import CliRunner
from support.cli import run_elevate
from support.configs import write_config
from support.provision import Provisioned, provision

from elevate import aws, keystore
from elevate.cli import cli
from elevate.errors import ElevateError
from elevate.invocation import Invocation
from elevate.models import SourceKeys
from elevate.onboarding import awsfiles
from elevate.onboarding.command_line import elevate_command
from elevate.onboarding.doctor import FAIL, OK, SKIP, WARN, Check, Doctor

TIMEOUT = 60


def config_file() -> Path:
    return Path(os.environ["ELEVATE_CONFIG"])


def write_dev_config(user: Provisioned, role_arn: str | None = None, serial: str | None = None) -> None:
    """Profile dev for `user` (or with another role or MFA serial), keys at most 30 days old."""
    dev = {
        "role_arn": role_arn or user.role_arn,
        "mfa_serial": serial or user.mfa_serial,
        "region": "us-east-1",
        "max_key_age_days": 30,
    }
    write_config({"dev": dev}, default="dev")


def write_aws_config(command: list[str]) -> None:
    path = Path(os.environ["AWS_CONFIG_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(awsfiles.set_credential_process(None, "dev", command, path))


@pytest.fixture
def healthy(moto_env: str, request: pytest.FixtureRequest) -> Provisioned:
    user = provision(moto_env, user_name=f"doc-{zlib.crc32(request.node.nodeid.encode()):08x}")
    keystore.put_keys("dev", keystore.check_keys(user.access_key_id, user.secret_access_key))
    write_dev_config(user)
    write_aws_config([*elevate_command(), "credential-process", "dev"])
    return user


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def run_doctor(**kwargs: Any) -> dict[str, Check]:
    return by_name(Doctor(Invocation.from_environ(os.environ), **kwargs).run(config_file()))


NAMES = [
    "config",
    "keyring",
    "keys",
    "key age",
    "identity",
    "MFA device",
    "role ARN",
    "clock",
    "AWS CLI profile",
    "cache directory",
]


def test_healthy_set_up_passes_every_check(healthy: Provisioned) -> None:
    checks = Doctor(Invocation.from_environ(os.environ)).run(config_file())
    assert [c.name for c in checks] == NAMES
    assert {c.name: c.status for c in checks} == dict.fromkeys(NAMES, OK)
    assert healthy.user_name in by_name(checks)["identity"].detail


def test_healthy_subprocess_exit_zero_one_line_per_check(healthy: Provisioned) -> None:
    done = run_elevate("doctor", timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(NAMES)
    assert all(line.startswith("[ ok ] ") for line in lines)
    assert done.stderr == ""


Breakage = Callable[[Provisioned], dict[str, Any]]


def _no_keys(user: Provisioned) -> dict[str, Any]:
    keystore.delete_keys("dev")
    return {}


def _old_keys(user: Provisioned) -> dict[str, Any]:
    created = datetime.now(timezone.utc) - timedelta(days=45)
    keystore.put_keys("dev", SourceKeys(user.access_key_id, user.secret_access_key, created=created))
    return {}


def _wrong_serial(user: Provisioned) -> dict[str, Any]:
    write_dev_config(user, serial="arn:aws:iam::123456789012:mfa/someone-else")
    return {}


def _bad_role(user: Provisioned) -> dict[str, Any]:
    write_dev_config(user, role_arn="arn:aws:iam::12345:role/Short")
    return {}


def _skewed_clock(user: Provisioned) -> dict[str, Any]:
    return {"clock": lambda: datetime.now(timezone.utc) + timedelta(minutes=10)}


def _missing_program(user: Provisioned) -> dict[str, Any]:
    write_aws_config(["/nonexistent/bin/elevate", "credential-process", "dev"])
    return {}


def _open_cache(user: Provisioned) -> dict[str, Any]:
    directory = Path(os.environ["ELEVATE_CACHE_DIR"])
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    return {}


def _invalid_key(user: Provisioned) -> dict[str, Any]:
    def factory(keys: Any, region: str, service: str = "sts") -> Any:
        client: Any = aws.make_client(keys, region, service)  # its operation is replaced below

        def refuse(**params: Any) -> Any:
            error = {"Error": {"Code": "InvalidClientTokenId", "Message": "The security token is invalid"}}
            raise botocore.exceptions.ClientError(error, "GetCallerIdentity")  # type: ignore[arg-type]

        client.get_caller_identity = refuse
        return client

    return {"client_factory": factory}


def _broken_toml(user: Provisioned) -> dict[str, Any]:
    config_file().write_text("[profiles.dev\nrole_arn = 1\n")
    return {}


def _locked_keyring(user: Provisioned) -> dict[str, Any]:
    os.environ["ELEVATE_TEST_KEYRING_LOCKED"] = "1"
    return {}


@pytest.mark.parametrize(
    ("breakage", "failing", "detail", "fix"),
    [
        (_no_keys, "keys", "no keys stored as 'dev'", "`elevate keys add dev`"),
        (_old_keys, "key age", "45 days old (limit 30)", "`elevate rotate dev`"),
        (_invalid_key, "identity", "GetCallerIdentity failed", "invalid or deactivated"),
        (_wrong_serial, "MFA device", "is not registered to", "`elevate configure dev --stored-keys`"),
        (_bad_role, "config", "is not a role ARN", "correct the file"),
        (_skewed_clock, "clock", "ahead of STS", "NTP"),
        (
            _missing_program,
            "AWS CLI profile",
            "/nonexistent/bin/elevate, which is not an executable",
            "--aws-config",
        ),
        (_open_cache, "cache directory", "open to group or others", "chmod 700"),
        (_broken_toml, "config", "not valid TOML", "correct the file"),
        (_locked_keyring, "keyring", "locked", "keyring backend usable"),
    ],
)
def test_each_broken_part_is_named_with_its_fix(
    healthy: Provisioned,
    monkeypatch: pytest.MonkeyPatch,
    breakage: Breakage,
    failing: str,
    detail: str,
    fix: str,
) -> None:
    monkeypatch.setenv("ELEVATE_TEST_KEYRING_LOCKED", "")
    checks = run_doctor(**breakage(healthy))
    assert checks[failing].status == FAIL, checks[failing]
    assert detail in checks[failing].detail
    assert fix in checks[failing].fix
    # Everything else either passed or could not run because of this one fault.
    for name, check in checks.items():
        if name != failing:
            assert check.status in (OK, SKIP), check


def test_bad_role_arn_is_reported_by_config_and_the_profile_is_not_checked(healthy: Provisioned) -> None:
    # One config reader: a profile it refuses is not checked (no command would use it); the
    # config check names the key with its file and line, and the parts that need no profile run.
    _bad_role(healthy)
    checks = run_doctor()
    assert checks["config"].status == FAIL and "role_arn" in checks["config"].detail
    assert f"{config_file()}:3: profile 'dev'" in checks["config"].detail
    assert checks["keyring"].status == OK and checks["cache directory"].status == OK
    assert checks["identity"].status == SKIP and checks["role ARN"].status == SKIP


def test_missing_credential_process_block_is_only_a_warning(healthy: Provisioned) -> None:
    Path(os.environ["AWS_CONFIG_FILE"]).unlink()
    checks = run_doctor()
    assert checks["AWS CLI profile"].status == WARN
    assert "--aws-config" in checks["AWS CLI profile"].fix


def test_no_config_at_all_says_to_run_configure() -> None:
    checks = by_name(Doctor(Invocation.from_environ(os.environ)).run(config_file()))
    assert checks["config"].status == FAIL and "elevate configure" in checks["config"].fix
    assert checks["keys"].status == SKIP and checks["identity"].status == SKIP


def test_everything_broken_at_once_names_every_fault(healthy: Provisioned) -> None:
    _old_keys(healthy)
    _wrong_serial(healthy)
    _missing_program(healthy)
    _open_cache(healthy)
    done = run_elevate("doctor", "dev", timeout=TIMEOUT)
    assert done.returncode == 1
    assert done.stderr == (
        "elevate: error: 4 checks failed: key age, MFA device, AWS CLI profile, cache directory\n"
    )
    failures = [line for line in done.stdout.splitlines() if line.startswith("[FAIL]")]
    fixes = [line for line in done.stdout.splitlines() if line.strip().startswith("fix: ")]
    assert len(failures) == 4 and len(fixes) == 4


def test_doctor_json_through_clirunner(healthy: Provisioned) -> None:
    _old_keys(healthy)
    result = CliRunner().invoke(cli, ["doctor", "--json"], standalone_mode=False)
    assert isinstance(result.exception, ElevateError)
    report = json.loads(result.stdout)
    assert report["ok"] is False
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["key age"] == FAIL and statuses["identity"] == OK
    assert healthy.secret_access_key not in result.output


def test_a_region_botocore_refuses_fails_the_identity_check_and_the_rest_still_runs(
    keys: SourceKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AWS_REGION is read from the environment unchecked: a malformed one once stopped doctor
    # before it printed any line.
    write_config(
        {
            "dev": {
                "role_arn": "arn:aws:iam::123456789012:role/Dev",
                "mfa_serial": "arn:aws:iam::123456789012:mfa/dev",
            }
        },
        default="dev",
    )
    keystore.put_keys("dev", keys)
    monkeypatch.setenv("AWS_REGION", "eu west\x1b[2J")
    checks = run_doctor()
    assert checks["identity"].status == FAIL
    assert "cannot make an STS client for region" in checks["identity"].detail
    assert "\x1b" not in checks["identity"].detail
    assert "valid region" in checks["identity"].fix
    assert checks["clock"].status == SKIP and checks["MFA device"].status == SKIP
    assert checks["config"].status == OK and checks["keys"].status == OK
