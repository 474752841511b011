"""The small cuts of first use, each through the real CLI (subprocess) or click's runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.cli import run_elevate
from support.constants import ROLE
from support.fakests import FakeSts

from elevate import keystore
from elevate.cli import cli
from elevate.core import Elevator
from elevate.errors import MfaCodeRejected
from elevate.invocation import Invocation
from elevate.models import Profile, SourceKeys

EXAMPLE_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MFA = "arn:aws:iam::123456789012:mfa/alice"


def write_config(text: str) -> Path:
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def profiles(default: str = "") -> str:
    head = f'default_profile = "{default}"\n' if default else ""
    return head + "".join(
        f'[profiles.{n}]\nrole_arn = "{ROLE}"\nmfa_serial = "{MFA}"\ncache = "file"\n' for n in ("dev", "ops")
    )


def test_clear_honours_default_profile() -> None:
    write_config(profiles(default="dev"))
    done = run_elevate("clear")
    assert done.returncode == 0, done.stderr
    assert "dev: nothing cached" in done.stderr and "ops" not in done.stderr


def test_clear_without_any_profile_chosen_says_what_to_do() -> None:
    write_config(profiles())
    done = run_elevate("clear")
    assert done.returncode == 2 and "name a PROFILE, or pass --all" in done.stderr


def test_a_stale_default_profile_is_no_error_when_a_profile_is_named() -> None:
    write_config(profiles(default="gone"))
    assert run_elevate("clear", "ops").returncode == 0
    stale = run_elevate("clear")
    assert stale.returncode == 2 and "default_profile 'gone' is not a profile" in stale.stderr


def test_exec_without_double_dash_hints_at_it() -> None:
    write_config(profiles(default="dev"))
    done = run_elevate("exec", "dev", "aws", "s3", "ls")
    assert done.returncode == 2
    assert "Put the command after --: elevate exec dev -- aws s3 ls" in done.stderr


def test_export_under_tcsh_is_a_clear_error_not_bash_syntax() -> None:
    write_config(profiles(default="dev"))
    keystore.put_keys("dev", SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET))
    done = run_elevate(
        "export",
        "dev",
        "-t",
        "123456",
        env={**os.environ, "SHELL": "/bin/tcsh", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    )
    assert done.stdout == ""
    assert done.returncode != 0 and "csh" in done.stderr and "elevate exec" in done.stderr


def test_keys_add_refuses_to_overwrite_without_force() -> None:
    keystore.put_keys("dev", SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET))
    other = "AKIAI44QH8DHBEXAMPLE"
    done = run_elevate("keys", "add", "dev", stdin=f"{other}\n{EXAMPLE_SECRET}\n")
    assert done.returncode == 2 and "--force" in done.stderr
    assert keystore.get_keys("dev").access_key_id == EXAMPLE_ID
    forced = run_elevate("keys", "add", "dev", "--force", stdin=f"{other}\n{EXAMPLE_SECRET}\n")
    assert forced.returncode == 0, forced.stderr
    assert keystore.get_keys("dev").access_key_id == other


def test_an_empty_keys_list_says_so_on_stderr() -> None:
    done = run_elevate("keys", "list")
    assert done.returncode == 0 and done.stdout == ""
    assert "no key sets stored" in done.stderr and "elevate keys add" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["export", ""],
        ["exec", ""],
        ["credential-process", ""],
        ["status", ""],
        ["clear", ""],
        ["doctor", ""],
        ["configure", ""],
        ["mfa", "enroll", ""],
        ["rotate", "k", "--profile", ""],
    ],
)
def test_profile_names_complete_after_every_command_that_takes_one(args: list[str]) -> None:
    write_config(profiles())
    env = {
        **os.environ,
        "_ELEVATE_COMPLETE": "bash_complete",
        "COMP_WORDS": " ".join(["elevate", *args]),
        "COMP_CWORD": str(len(args)),
    }
    done = CliRunner().invoke(cli, [], prog_name="elevate", env=env)
    assert "plain,dev" in done.output and "plain,ops" in done.output, (args, done.output)


def test_a_code_typed_at_the_prompt_and_rejected_is_asked_again(fake_sts: FakeSts) -> None:
    profile = Profile(name="dev", role_arn=ROLE, mfa_serial=MFA, cache="off")
    fake_sts.mark_code_used(MFA, "111111")  # used elsewhere: STS rejects it
    typed = iter(["111111", "222222", "333333"])
    told: list[str] = []
    elevator = Elevator(
        invocation=Invocation.from_environ(dict(os.environ)),
        load_keys=lambda name: SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET),
        code_source=lambda p, t: next(typed),
        notify=told.append,
    )
    creds = elevator.elevate(profile, use_cache=False)
    assert creds.access_key_id == fake_sts.issued[-1]["AccessKeyId"]
    assert [r.params.get("TokenCode") for r in fake_sts.of("AssumeRole")] == ["111111", "222222"]
    assert any("rejected" in line and "Try again" in line for line in told)


def test_a_rejected_code_from_token_or_mfa_process_is_not_asked_again(fake_sts: FakeSts) -> None:
    profile = Profile(name="dev", role_arn=ROLE, mfa_serial=MFA, cache="off")
    fake_sts.mark_code_used(MFA, "111111")
    elevator = Elevator(
        invocation=Invocation.from_environ(dict(os.environ)),
        load_keys=lambda name: SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET),
    )
    with pytest.raises(MfaCodeRejected):
        elevator.elevate(profile, token="111111", use_cache=False)
    assert fake_sts.count("AssumeRole") == 1


def test_rejected_codes_are_asked_for_a_bounded_number_of_times(fake_sts: FakeSts) -> None:
    profile = Profile(name="dev", role_arn=ROLE, mfa_serial=MFA, cache="off")
    codes = [f"{n}{n}{n}{n}{n}{n}" for n in range(1, 9)]
    for code in codes:
        fake_sts.mark_code_used(MFA, code)
    typed = iter(codes)
    elevator = Elevator(
        invocation=Invocation.from_environ(dict(os.environ)),
        load_keys=lambda name: SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET),
        code_source=lambda p, t: next(typed),
        notify=lambda m: None,
    )
    with pytest.raises(MfaCodeRejected):
        elevator.elevate(profile, use_cache=False)
    assert fake_sts.count("AssumeRole") == 3


def test_a_keyring_error_shows_its_real_cause_in_one_line(tmp_path: Path) -> None:
    # An EncryptedKeyring without its crypto library, as in the issue: the cause is named.
    # The test environment has pycryptodome (for the headless extra), so hide it here.
    hidden = tmp_path / "no-crypto"
    (hidden / "Crypto").mkdir(parents=True)
    (hidden / "Crypto" / "__init__.py").write_text("raise ImportError('no pycryptodome here')\n")
    pythonpath = os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.EncryptedKeyring",
        "PYTHONPATH": pythonpath,
    }
    env.pop("ELEVATE_TEST_KEYRING_FILE", None)
    done = run_elevate("keys", "list", env=env)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "keyring" in done.stderr and ":" in done.stderr


def test_the_no_backend_help_is_per_platform() -> None:
    assert "keychain" in keystore.no_backend_help("darwin")
    assert "Credential Manager" in keystore.no_backend_help("win32")
    assert "gnome-keyring" in keystore.no_backend_help("linux")
