"""configure, keys import, the byte-preserving ~/.aws and TOML edits, completion, key-age warning.

Golden files in tests/golden hold ~/.aws files and a config with comments, odd spacing and
other profiles; every edit must leave every byte outside the edited section as it was.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import stat
import subprocess
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.configloader
import pexpect
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from support.cli import run_elevate
from support.provision import Provisioned, provision

from elevate import keystore
from elevate.cli import cli
from elevate.config import parse_config
from elevate.core import Elevator
from elevate.errors import ConfigError, ElevateError, UsageError
from elevate.models import Profile, SourceKeys
from elevate.onboarding import awsfiles, configfile
from elevate.onboarding.configure import ConfigureAnswers, Onboarding, elevate_command

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _root_conftest() -> ModuleType:
    """tests/conftest.py itself: tests/cfn has a conftest too, and pytest imports both as `conftest`."""
    name = "_elevate_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("conftest.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


require_tool = _root_conftest().require_tool

GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLE_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TIMEOUT = 60


def golden(name: str, **subst: str) -> bytes:
    text = (GOLDEN / name).read_text(encoding="utf-8")
    for key, value in subst.items():
        text = text.replace(f"@{key}@", value)
    return text.encode("utf-8")


run = run_elevate


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, standalone_mode=False)


def aws_config_file() -> Path:
    return Path(os.environ["AWS_CONFIG_FILE"])


def credentials_file() -> Path:
    return Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])


def elevate_config() -> Path:
    return Path(os.environ["ELEVATE_CONFIG"])


def put(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def client(service: str, endpoint: str, keys: Any = None) -> Any:
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


def user_name(request: pytest.FixtureRequest, prefix: str) -> str:
    return f"{prefix}-{zlib.crc32(request.node.nodeid.encode()):08x}"


def botocore_sections(path: Path) -> dict[str, Any]:
    """The file as the AWS CLI reads it."""
    return dict(botocore.configloader.raw_config_parse(str(path)))


# --- awsfiles: reading and removing a credentials section ----------------------------------


def test_read_key_pair_with_odd_spacing_and_colon() -> None:
    data = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET)
    pair = awsfiles.read_key_pair(data, "work", Path("credentials"))
    assert (pair.access_key_id, pair.secret_access_key) == (EXAMPLE_ID, EXAMPLE_SECRET)
    assert EXAMPLE_SECRET not in repr(pair)


def test_remove_section_matches_golden_and_botocore_sees_the_rest(tmp_path: Path) -> None:
    data = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET)
    result = awsfiles.remove_section(data, "work", Path("credentials"))
    assert result == golden("credentials.after-import")
    before, after = tmp_path / "before", tmp_path / "after"
    before.write_bytes(data)
    after.write_bytes(result)
    expected = botocore_sections(before)
    del expected["work"]
    assert botocore_sections(after) == expected


def test_remove_section_keeps_crlf_and_non_utf8_bytes() -> None:
    data = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET).replace(b"\n", b"\r\n")
    data = data.replace(b"# created by the admin", b"# cr\xe9\xff by the admin")  # Latin-1, not UTF-8
    data = data.replace(b"[default]", b"# caf\xe9\r\n[default]")
    result = awsfiles.remove_section(data, "work", Path("credentials"))
    expected = (
        golden("credentials.after-import")
        .replace(b"\n", b"\r\n")
        .replace(b"[default]", b"# caf\xe9\r\n[default]")
    )
    assert result == expected


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ("ci", "temporary credentials"),
        ("nope", "no [nope] section"),
    ],
)
def test_read_key_pair_refuses(profile: str, message: str) -> None:
    data = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        awsfiles.read_key_pair(data, profile, Path("credentials"))


def test_duplicate_section_is_refused_not_guessed() -> None:
    data = b"[work]\naws_access_key_id = a\n[work]\naws_access_key_id = b\n"
    with pytest.raises(ConfigError, match="appears 2 times"):
        awsfiles.remove_section(data, "work", Path("credentials"))


def test_indented_header_after_an_option_is_a_continuation_as_in_configparser() -> None:
    data = b"[a]\nkey =\n  [b]\n[c]\nx = 1\n"
    assert [s.header for s in awsfiles.IniText(data, Path("f")).sections] == ["a", "c"]


# --- awsfiles: the credential_process profile ----------------------------------------------

COMMAND = ["/opt/tools dir/bin/elevate", "credential-process", "dev"]


def test_credential_process_appended_matches_golden_and_is_idempotent(tmp_path: Path) -> None:
    data = golden("aws-config.in")
    result = awsfiles.set_credential_process(data, "dev", COMMAND, Path("config"))
    assert result == golden("aws-config.after-configure", COMMAND=shlex.join(COMMAND))
    assert awsfiles.set_credential_process(result, "dev", COMMAND, Path("config")) == result
    path = tmp_path / "config"
    path.write_bytes(result)
    parsed = botocore_sections(path)
    assert shlex.split(parsed["profile dev"]["credential_process"]) == COMMAND
    assert parsed["profile admin"]["s3"] == {"max_concurrent_requests": "20"}


def test_credential_process_added_to_existing_profile_keeps_its_settings() -> None:
    data = golden("aws-config-existing.in")
    result = awsfiles.set_credential_process(data, "dev", COMMAND, Path("config"))
    assert result == golden("aws-config-existing.after-configure", COMMAND=shlex.join(COMMAND))
    moved = ["/usr/bin/elevate", "credential-process", "dev"]
    again = awsfiles.set_credential_process(result, "dev", moved, Path("config"))
    assert again == result.replace(shlex.join(COMMAND).encode(), shlex.join(moved).encode())


def test_credential_process_in_a_new_file_and_for_default() -> None:
    assert awsfiles.set_credential_process(None, "default", COMMAND, Path("c")) == (
        f"[default]\ncredential_process = {shlex.join(COMMAND)}\n".encode()
    )


def test_credential_process_refuses_a_profile_with_other_credentials() -> None:
    with pytest.raises(ConfigError, match="already gets credentials from role_arn, source_profile"):
        awsfiles.set_credential_process(golden("aws-config.in"), "admin", COMMAND, Path("config"))


def test_replace_file_keeps_mode_and_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "credentials"
    put(real, b"old", 0o640)
    link = tmp_path / "credentials"
    link.symlink_to(real)
    awsfiles.replace_file(link, b"new", expect=b"old")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    with pytest.raises(ElevateError, match="changed while elevate was editing"):
        awsfiles.replace_file(link, b"newer", expect=b"old")
    assert real.read_bytes() == b"new"
    assert sorted(p.name for p in real.parent.iterdir()) == ["credentials"]


# --- configfile: TOML ------------------------------------------------------------------------


@given(st.text())
def test_toml_string_round_trips_any_text(value: str) -> None:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        with pytest.raises(ConfigError):
            configfile.toml_string(value)
        return
    assert tomllib.loads(f"x = {configfile.toml_string(value)}")["x"] == value


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,20}", fullmatch=True))
def test_profile_header_round_trips_every_valid_name(name: str) -> None:
    assert tomllib.loads(configfile.table_header(name) + "\nx = 1\n")["profiles"][name] == {"x": 1}


def test_set_profile_matches_golden_and_is_idempotent() -> None:
    text = golden("config.toml.in").decode()
    values = {"role_arn": "arn:aws:iam::123456789012:role/New", "mfa_serial": "arn:aws:iam::1:mfa/x"}
    values["mfa_serial"] = "arn:aws:iam::123456789012:mfa/new"
    result = configfile.set_profile(text, "dev", {**values, "region": "us-east-1"}, Path("c"))
    expected = golden(
        "config.toml.after-configure", ROLE_ARN=values["role_arn"], MFA_SERIAL=values["mfa_serial"]
    ).decode()
    assert result == expected
    assert configfile.set_profile(result, "dev", values, Path("c")) == result
    parse_config(result, Path("c"))


def test_set_profile_appends_a_new_table_and_sets_default() -> None:
    text = "# only a comment"
    result = configfile.set_profile(text, "new.one", {"role_arn": "x", "duration_seconds": 900}, Path("c"))
    result = configfile.set_default_profile(result, "new.one", Path("c"))
    assert result == (
        '# only a comment\n\ndefault_profile = "new.one"\n\n[profiles."new.one"]\nrole_arn = "x"\n'
        "duration_seconds = 900\n"
    )


def test_set_profile_refuses_a_profile_it_cannot_edit_in_place() -> None:
    text = 'profiles.dev.role_arn = "x"\n'
    with pytest.raises(ConfigError, match="cannot update profile 'dev' in place"):
        configfile.set_profile(text, "dev", {"role_arn": "y"}, Path("c"))


def test_set_profile_replaces_a_multi_line_value_whole() -> None:
    text = '[profiles.dev]\nmfa_process = """\nop read\n  x"""\nregion = "eu-west-1"\n'
    result = configfile.set_profile(text, "dev", {"mfa_process": 'say "hi"'}, Path("c"))
    assert result == '[profiles.dev]\nmfa_process = "say \\"hi\\""\nregion = "eu-west-1"\n'


def test_update_profile_refuses_invalid_values_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError, match="not a role ARN"):
        configfile.update_profile(path, "dev", {"role_arn": "nope", "mfa_serial": "arn:aws:iam::1:mfa/x"})
    assert not path.exists()
    path.write_text('[profiles.dev]\nrole_arn = "arn:aws:iam::123456789012:role/R"\ncache = true\n')
    with pytest.raises(ConfigError, match="cache must be a string or an integer, not bool"):
        configfile.update_profile(path, "dev", {"mfa_serial": "arn:aws:iam::123456789012:mfa/x"})
    assert "mfa_serial" not in path.read_text()


# --- keys import -----------------------------------------------------------------------------


def test_keys_import_delete_plaintext_golden_backup_and_keyring(sealed_env: Path) -> None:
    original = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET)
    put(credentials_file(), original, 0o600)
    result = invoke("keys", "import", "work", "--from-aws-profile", "work", "--delete-plaintext")
    assert result.exception is None, result.output
    assert result.stdout == ""
    assert credentials_file().read_bytes() == golden("credentials.after-import")
    assert stat.S_IMODE(credentials_file().stat().st_mode) == 0o600
    backups = list(credentials_file().parent.glob("credentials.elevate-backup-*"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == original
    assert stat.S_IMODE(backups[0].stat().st_mode) == 0o600
    assert str(backups[0]) in result.stderr
    assert EXAMPLE_SECRET not in result.stderr
    stored = keystore.get_keys("work")
    assert (stored.access_key_id, stored.secret_access_key) == (EXAMPLE_ID, EXAMPLE_SECRET)


def test_keys_import_subprocess_keeps_the_file_without_delete_plaintext() -> None:
    original = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET)
    put(credentials_file(), original)
    done = run("keys", "import", "mine", "--from-aws-profile", "work")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "--delete-plaintext" in done.stderr
    assert credentials_file().read_bytes() == original
    assert keystore.get_keys("mine").access_key_id == EXAMPLE_ID


def test_keys_import_subprocess_honours_the_credentials_variable(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "creds"
    put(elsewhere, golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET))
    env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(elsewhere)}
    done = run("keys", "import", "mine", "--from-aws-profile", "work", "--delete-plaintext", env=env)
    assert done.returncode == 0, done.stderr
    assert elsewhere.read_bytes() == golden("credentials.after-import")
    assert not credentials_file().exists()


@pytest.mark.parametrize(
    ("profile", "code", "message"),
    [
        ("ci", 2, "temporary credentials"),
        ("absent", 2, "no [absent] section"),
    ],
)
def test_keys_import_errors_change_nothing(profile: str, code: int, message: str) -> None:
    original = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET)
    put(credentials_file(), original)
    done = run("keys", "import", "x", "--from-aws-profile", profile, "--delete-plaintext")
    assert done.returncode == code
    assert done.stderr.startswith("elevate: error: ") and message in done.stderr
    assert "Traceback" not in done.stderr
    assert credentials_file().read_bytes() == original
    assert list(credentials_file().parent.iterdir()) == [credentials_file()]


# --- configure against moto ------------------------------------------------------------------


@pytest.fixture
def alice(moto_env: str, request: pytest.FixtureRequest) -> Provisioned:
    return provision(moto_env, user_name=user_name(request, "onb"))


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
    # The region too, so `aws --profile dev ...` needs no other step.
    assert aws_config_file().read_bytes() == golden(
        "aws-config.after-configure", COMMAND=command
    ) + b"region = us-east-1\n"
    assert "+credential_process = " in result.stderr  # the change was shown
    assert alice.secret_access_key not in result.output
    # What was written works: warm the cache, then boto3 runs the written line itself, in an
    # environment without ELEVATE_CONFIG, as the AWS CLI would from another shell.
    assert run("credential-process", "dev", "-t", alice.totp().now()).returncode == 0
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
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "elevate",
            "configure",
            "work",
            "--role-arn",
            alice.role_arn,
            "--region",
            "us-east-1",
            "--aws-config",
        ],
        input=f"{alice.access_key_id}\n{alice.secret_access_key}\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert f"--config {other} credential-process work" in aws_config_file().read_text()
    warm = subprocess.run(
        [sys.executable, "-m", "elevate", "credential-process", "work", "-t", alice.totp().now()],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert warm.returncode == 0, warm.stderr
    assert sdk_caller_arn("work").endswith(f"/{alice.user_name}")


def test_configure_refuses_an_aws_profile_name_botocore_would_ignore(alice: Provisioned) -> None:
    done = run(
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
    done = run(
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
    # --region replaces the profile's region in ~/.aws/config too (the rest is kept).
    expected = golden("aws-config-existing.after-configure", COMMAND=command).replace(
        b"region = eu-central-1", b"region = us-east-1"
    )
    assert aws_config_file().read_bytes() == expected
    assert keystore.get_keys("dev").access_key_id == alice.access_key_id
    # A second run changes nothing and says so.
    again = run("configure", "dev", "--stored-keys", "--aws-config")
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
    done = run("configure", "dev", "--from-stack", stack, "--no-aws-config", stdin=keys)
    assert done.returncode == 0, done.stderr
    assert (
        parse_config(elevate_config().read_text(), elevate_config()).profiles["dev"].role_arn
        == alice.role_arn
    )
    assert f"role ARN from stack {stack!r}" in done.stderr
    assert not aws_config_file().exists()
    missing = run("configure", "dev", "--from-stack", stack, "--stack-output", "Nope", "--stored-keys")
    assert missing.returncode == 2
    assert "no output 'Nope' (it has: GroupName, RoleArn)" in missing.stderr


def test_configure_without_mfa_device_names_enroll(moto_env: str, request: pytest.FixtureRequest) -> None:
    keys = bare_user(moto_env, user_name(request, "nomfa"))
    done = run(
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
    done = run("configure", "dev", "--no-input", stdin=f"{alice.access_key_id}\n{alice.secret_access_key}\n")
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
    onboarding = Onboarding(environ=dict(os.environ), notify=messages.append, command=["/bin/elevate"])
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
    child = pexpect.spawn(
        sys.executable,
        ["-m", "elevate", "configure"],
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
    done = run(
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
    assert elevate_command("/x/elevate/__main__.py", str(tmp_path / "python")) == [
        str(tmp_path / "python"),
        "-m",
        "elevate",
    ]


# --- the key-age warning of every elevation (core.Elevator._warn_key_age) --------------------


def _warnings(created: datetime | None, now: datetime, limit: int = 90) -> list[str]:
    told: list[str] = []
    profile = Profile(
        name="dev",
        role_arn="arn:aws:iam::123456789012:role/R",
        mfa_serial="X" * 9,
        keys="work",
        max_key_age_days=limit,
    )
    elevator = Elevator(environ={}, clock=lambda: now, notify=told.append, warn=told.append)
    elevator._warn_key_age(profile, SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET, created=created))
    return told


def test_key_age_warning_names_rotate_only_past_the_limit() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert _warnings(now - timedelta(days=90), now) == []
    told = _warnings(now - timedelta(days=91), now)
    assert len(told) == 1 and "91 days old (limit 90)" in told[0] and "`elevate rotate work`" in told[0]
    assert _warnings(now - timedelta(days=11), now, limit=10) != []
    assert _warnings(None, now) == []


def test_key_age_warning_on_stderr_of_a_real_elevation(alice: Provisioned) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=120)
    keystore.put_keys("dev", SourceKeys(alice.access_key_id, alice.secret_access_key, created=old))
    put(
        elevate_config(),
        f'[profiles.dev]\nrole_arn = "{alice.role_arn}"\nmfa_serial = "{alice.mfa_serial}"\n'
        "max_key_age_days = 100\n".encode(),
    )
    done = run("export", "dev", "--format", "json", "-t", alice.totp().now(), "--no-cache")
    assert done.returncode == 0, done.stderr
    assert "is 120 days old (limit 100): rotate it with `elevate rotate dev`" in done.stderr
    assert "rotate" not in done.stdout


# --- completion --------------------------------------------------------------------------------


@pytest.fixture
def elevate_on_path(tmp_path: Path) -> dict[str, str]:
    """PATH with an `elevate` that runs this checkout (the completion scripts call it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "elevate"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m elevate "$@"\n')
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_completion_bash_completes_commands_and_profiles(elevate_on_path: dict[str, str]) -> None:
    bash = require_tool("bash")
    put(
        elevate_config(),
        b'[profiles.dev]\nrole_arn = "arn:aws:iam::123456789012:role/R"\n'
        b'mfa_serial = "arn:aws:iam::123456789012:mfa/u"\n[profiles.demo]\n'
        b'role_arn = "arn:aws:iam::123456789012:role/R"\nmfa_serial = "arn:aws:iam::123456789012:mfa/u"\n',
    )
    complete = 'COMPREPLY=(); _elevate_completion elevate; echo "${COMPREPLY[@]}"'
    script = (
        f'eval "$(elevate completion bash)"; COMP_WORDS=(elevate con); COMP_CWORD=1; {complete}; '
        f"COMP_WORDS=(elevate doctor de); COMP_CWORD=2; {complete}"
    )
    done = subprocess.run(
        [bash, "--norc", "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=elevate_on_path,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["configure", "demo dev"]


def test_completion_zsh_script_loads(elevate_on_path: dict[str, str]) -> None:
    zsh = require_tool("zsh")
    script = (
        "autoload -Uz compinit && compinit -u -D && "
        'eval "$(elevate completion zsh)" && print -r -- $_comps[elevate]'
    )
    done = subprocess.run(
        [zsh, "-f", "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=elevate_on_path,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "_elevate_completion"


def test_completion_fish_completes_subcommands(elevate_on_path: dict[str, str]) -> None:
    fish = require_tool("fish")
    script = "elevate completion fish | source; complete -C 'elevate mfa '"
    done = subprocess.run(
        [fish, "--no-config", "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=elevate_on_path,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["enroll"]


def test_completion_through_clirunner_prints_the_zsh_script() -> None:
    result = CliRunner().invoke(cli, ["completion", "zsh"], standalone_mode=False)
    assert result.exception is None
    assert result.stdout.startswith("#compdef elevate") and "_ELEVATE_COMPLETE=zsh_complete" in result.stdout
    refused = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert refused.exit_code == 2


def test_completion_env_var_mechanism_matches_the_command(elevate_on_path: dict[str, str]) -> None:
    via_var = subprocess.run(
        ["elevate"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        start_new_session=True,
        env={**elevate_on_path, "_ELEVATE_COMPLETE": "bash_source"},
    )
    assert via_var.returncode == 0, via_var.stderr
    assert via_var.stdout.strip() == run("completion", "bash").stdout.strip()
