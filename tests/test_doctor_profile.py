"""doctor checks the profile every other command would use: the one config reader and the one
selection rule (positional PROFILE, else ELEVATE_PROFILE, else default_profile), never a rule of
its own (it once picked the only profile where `elevate export` said "no profile chosen")."""

from __future__ import annotations

import json
import re
from typing import Any, Optional

import pytest
from click.testing import CliRunner
from support.configs import write_config

from elevate.cli import cli
from elevate.errors import ElevateError
from elevate.onboarding.doctor import FAIL, OK, SKIP


def profile(account: str = "123456789012") -> dict[str, Any]:
    return {
        "role_arn": f"arn:aws:iam::{account}:role/Dev",
        "mfa_serial": f"arn:aws:iam::{account}:mfa/dev",
        "region": "us-east-1",
    }


def invoke(args: list[str], env: dict[str, Optional[str]]) -> tuple[str, str]:
    """stdout and the error message of `elevate ARGS` (in this process; no key is stored, so
    nothing reaches the network)."""
    result = CliRunner().invoke(cli, args, env=env, standalone_mode=False)
    error = result.exception
    if error is not None and not isinstance(error, ElevateError):
        raise error
    return result.stdout, error.message if isinstance(error, ElevateError) else ""


def export_choice(requested: list[str], env: dict[str, Optional[str]]) -> str:
    """The profile `elevate export` went on with (its key set, here the profile's name), else its error."""
    _, message = invoke(["export", *requested], env)
    stored = re.search(r"no keys stored as '([^']+)'", message)
    return f"profile {stored.group(1)}" if stored else message


def doctor_choice(requested: list[str], env: dict[str, Optional[str]]) -> str:
    """The profile `elevate doctor` checked, else its config check's failure."""
    stdout, _ = invoke(["doctor", "--json", *requested], env)
    checks = {c["name"]: c for c in json.loads(stdout)["checks"]}
    config = checks["config"]
    if config["status"] == OK:
        checked = re.fullmatch(r".* parses; checking profile '([^']+)'", config["detail"])
        assert checked, config
        assert checks["keys"]["status"] == FAIL, "no key is stored in these cases"
        assert f"no keys stored as '{checked.group(1)}'" in checks["keys"]["detail"]
        return f"profile {checked.group(1)}"
    assert config["status"] == FAIL, config
    assert checks["keys"]["status"] == SKIP and checks["AWS CLI profile"]["status"] == SKIP
    return str(config["detail"])


CASES = [
    # id, profiles, default_profile, ELEVATE_PROFILE, positional, what both must say
    ("default_profile", ("dev", "ops"), "ops", None, None, "profile ops"),
    ("env over default", ("dev", "ops"), "dev", "ops", None, "profile ops"),
    ("positional over env", ("dev", "ops", "prod"), "dev", "ops", "prod", "profile prod"),
    ("one profile, no default", ("dev",), None, None, None, "no profile chosen"),
    ("two profiles, no default", ("dev", "ops"), None, None, None, "no profile chosen"),
    ("no profile at all", (), None, None, None, "no profile chosen"),
    ("unknown from env", ("dev",), None, "ghost", None, "unknown profile 'ghost'"),
    ("unknown positional", ("dev",), "dev", None, "ghost", "unknown profile 'ghost'"),
    ("default names none", ("dev",), "ghost", None, None, "default_profile 'ghost' is not a profile"),
    ("env rescues a bad default", ("dev",), "ghost", "dev", None, "profile dev"),
]


@pytest.mark.parametrize(
    ("profiles", "default", "env_profile", "positional", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_doctor_and_export_choose_the_same_profile(
    profiles: tuple[str, ...],
    default: Optional[str],
    env_profile: Optional[str],
    positional: Optional[str],
    expected: str,
) -> None:
    write_config({name: profile() for name in profiles}, default=default)
    env = {"ELEVATE_PROFILE": env_profile}
    requested = [positional] if positional else []
    exported = export_choice(requested, env)
    doctored = doctor_choice(requested, env)
    assert expected in exported, exported
    assert expected in doctored, doctored
    if not expected.startswith("profile "):
        assert doctored == exported, "the same rule words the same failure"


def test_a_hostile_profile_name_reaches_no_fix_line_raw() -> None:
    # ELEVATE_PROFILE is not checked against the name rule before selection: it must not be
    # echoed raw (terminal escapes) into the suggested command.
    write_config({"dev": profile()}, default="dev")
    stdout, _ = invoke(["doctor"], {"ELEVATE_PROFILE": "x\x1b]0;owned\x07; rm -rf ~"})
    assert "\x1b" not in stdout and "rm -rf" not in stdout.split("fix:")[-1]
    assert "unknown profile 'x\\x1b]0;owned\\x07; rm -rf ~'" in stdout
    assert "fix: name one (`elevate doctor PROFILE`) or set default_profile" in stdout


def test_an_unknown_but_valid_name_is_offered_to_configure() -> None:
    write_config({"dev": profile()}, default="dev")
    stdout, _ = invoke(["doctor", "ops"], {})
    assert "fix: run `elevate configure ops`" in stdout


def test_a_profile_the_reader_refuses_is_not_checked_but_every_fault_is_named() -> None:
    broken = {**profile(), "role_arn": "arn:aws:iam::12345:role/Short"}
    path = write_config({"dev": broken}, default="dev")
    stdout, message = invoke(["doctor", "--json"], {})
    checks = {c["name"]: c for c in json.loads(stdout)["checks"]}
    assert checks["config"]["status"] == FAIL
    assert f"{path}:3: profile 'dev': role_arn" in checks["config"]["detail"]
    assert "is not a role ARN" in checks["config"]["detail"]
    # The keyring and the cache directory do not depend on the profile: still checked.
    assert checks["keyring"]["status"] == OK and checks["cache directory"]["status"] == OK
    for name in ("keys", "identity", "MFA device", "role ARN", "AWS CLI profile"):
        assert checks[name]["status"] == SKIP, checks[name]
    assert message == "1 check failed: config"
