"""Config parsing, validation messages and profile selection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.branches import Branches
from support.cli import run_elevate
from support.constants import ROLE

from elevate.config import config_path, load_config, parse_config, resolve_region, select_profile
from elevate.errors import ConfigError

MFA = "arn:aws:iam::123456789012:mfa/alice"
PATH = Path("/cfg/config.toml")


def profile_text(**extra: str) -> str:
    lines = ['default_profile = "dev"', "", "[profiles.dev]", f'role_arn = "{ROLE}"', f'mfa_serial = "{MFA}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, PATH)
    assert info.value.exit_code == 2
    return info.value.message


def test_full_profile_parses_with_every_key() -> None:
    text = profile_text(
        region='"eu-west-1"',
        duration_seconds="7200",
        role_session_name='"alice"',
        source_identity='"alice"',
        keys='"alice-keys"',
        mfa_process='"ykman oath accounts code -s aws"',
        cache='"keyring"',
        refresh_before_seconds="300",
        mfa_session_seconds="43200",
        max_key_age_days="30",
    )
    config = parse_config(text, PATH)
    dev = config.profiles["dev"]
    assert config.default_profile == "dev"
    assert (dev.role_arn, dev.mfa_serial, dev.region) == (ROLE, MFA, "eu-west-1")
    assert (dev.duration_seconds, dev.refresh_before_seconds, dev.mfa_session_seconds) == (7200, 300, 43200)
    assert dev.key_set == "alice-keys"
    assert dev.cache == "keyring"


def test_defaults() -> None:
    dev = parse_config(profile_text(), PATH).profiles["dev"]
    assert dev.duration_seconds == 3600
    assert dev.refresh_before_seconds == 1200  # botocore's 15-minute window plus a 5-minute margin (issue 11)
    assert dev.cache == "file"
    assert dev.key_set == "dev"
    assert dev.region is None and dev.mfa_process is None and dev.mfa_session_seconds is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"colour": '"blue"'}, r"/cfg/config.toml:6: profile 'dev': unknown key 'colour'"),
        ({"duration_seconds": '"3600"'}, r":6: profile 'dev': duration_seconds must be an integer"),
        ({"duration_seconds": "899"}, r"duration_seconds = 899 is out of range 900\.\.43200"),
        ({"duration_seconds": "43201"}, r"duration_seconds = 43201 is out of range 900\.\.43200"),
        ({"duration_seconds": "true"}, r"duration_seconds must be an integer"),
        ({"region": "1"}, r"region must be a string"),
        ({"region": '"Europe"'}, r"region 'Europe' is not a region name"),
        ({"role_session_name": '"a b"'}, r"role_session_name 'a b' must be 2-64"),
        ({"source_identity": '"aws:me"'}, r"source_identity 'aws:me' must be 2-64 letters"),
        ({"cache": '"redis"'}, r"cache 'redis' must be one of file, keyring, off"),
        ({"mfa_process": '"ykman \'unclosed"'}, r"mfa_process cannot be split into a command"),
        ({"mfa_process": '"   "'}, r"mfa_process is empty"),
        (
            {"refresh_before_seconds": "3600"},
            r"refresh_before_seconds \(3600\) must be less than duration_seconds",
        ),
        ({"mfa_session_seconds": "600"}, r"mfa_session_seconds = 600 is out of range 900\.\.129600"),
        ({"keys": '"../etc"'}, r"keys '\.\./etc' must be 1-64"),
    ],
)
def test_invalid_values_name_file_profile_key(extra: dict[str, str], expected: str) -> None:
    message = error_of(profile_text(**extra))
    assert re.search(expected, message), message
    assert message.startswith("/cfg/config.toml")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("role_arn", "arn:aws:iam::123:role/x"),
        ("role_arn", "arn:aws:iam::123456789012:user/alice"),
        ("role_arn", "arn:aws:iam::123456789012:role/"),
        ("role_arn", "arn:aws:sts::123456789012:role/x"),
        ("mfa_serial", "arn:aws:iam::123456789012:user/alice"),
        ("mfa_serial", "mfa/alice"),
    ],
)
def test_malformed_arns_are_refused(key: str, value: str) -> None:
    text = profile_text().replace(ROLE if key == "role_arn" else MFA, value)
    message = error_of(text)
    assert f"profile 'dev': {key} '{value}' is not" in message
    line = 4 if key == "role_arn" else 5
    assert message.startswith(f"/cfg/config.toml:{line}:")


def test_role_with_path_partition_and_hardware_serial_accepted() -> None:
    text = profile_text().replace(ROLE, "arn:aws-cn:iam::123456789012:role/team/ops/Admin")
    text = text.replace(MFA, "GAHT12345678")
    dev = parse_config(text, PATH).profiles["dev"]
    assert dev.role_arn.endswith("team/ops/Admin")


def test_missing_required_key() -> None:
    message = error_of(f'[profiles.dev]\nrole_arn = "{ROLE}"\n')
    assert "/cfg/config.toml:1: profile 'dev': missing required key 'mfa_serial'" in message


def test_toml_syntax_error_gives_line() -> None:
    message = error_of('[profiles.dev]\nrole_arn = "unterminated\n')
    assert "not valid TOML" in message and "line 2" in message


def test_unknown_top_level_key_and_bad_default() -> None:
    assert "unknown key 'profile'" in error_of('profile = "x"\n')
    stale = parse_config(profile_text().replace('default_profile = "dev"', 'default_profile = "prod"'), PATH)
    # A stale default_profile is an error only when it is the one used.
    assert select_profile(stale, "dev", {}).name == "dev"
    assert select_profile(stale, None, {"ELEVATE_PROFILE": "dev"}).name == "dev"
    with pytest.raises(ConfigError) as info:
        select_profile(stale, None, {})
    assert "default_profile 'prod' is not a profile; known profiles: dev" in info.value.message


def test_profile_name_must_be_safe() -> None:
    text = f'[profiles."a b"]\nrole_arn = "{ROLE}"\nmfa_serial = "{MFA}"\n'
    assert "profile name 'a b'" in error_of(text)


def test_quoted_profile_header_line_found() -> None:
    text = f'[profiles."ops"]\nrole_arn = "{ROLE}"\nmfa_serial = "{MFA}"\nbogus = 1\n'
    assert error_of(text).startswith("/cfg/config.toml:4: profile 'ops': unknown key 'bogus'")


def test_profile_selection_order() -> None:
    text = profile_text() + f'\n[profiles.prod]\nrole_arn = "{ROLE}"\nmfa_serial = "{MFA}"\n'
    config = parse_config(text, PATH)
    assert select_profile(config, "prod", {"ELEVATE_PROFILE": "dev"}).name == "prod"
    assert select_profile(config, None, {"ELEVATE_PROFILE": "prod"}).name == "prod"
    assert select_profile(config, None, {}).name == "dev"
    with pytest.raises(ConfigError, match=r"unknown profile 'qa' .*known profiles: dev, prod"):
        select_profile(config, "qa", {})
    no_default = parse_config(text.replace('default_profile = "dev"\n', ""), PATH)
    with pytest.raises(ConfigError, match=r"no profile chosen.*known profiles: dev, prod"):
        select_profile(no_default, None, {})


def test_config_path_precedence(tmp_path: Path) -> None:
    assert config_path("/x.toml", {"ELEVATE_CONFIG": "/y.toml"}) == Path("/x.toml")
    assert config_path(None, {"ELEVATE_CONFIG": "/y.toml"}) == Path("/y.toml")
    assert config_path(None, {"XDG_CONFIG_HOME": "/xdg"}) == Path("/xdg/elevate/config.toml")
    assert config_path(None, {"HOME": "/home/u"}) == Path("/home/u/.config/elevate/config.toml")


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "absent.toml")


def test_region_resolution() -> None:
    assert resolve_region("eu-west-1", {"AWS_REGION": "us-west-2"}) == "eu-west-1"
    assert (
        resolve_region(None, {"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "ap-south-1"}) == "us-west-2"
    )
    assert resolve_region(None, {"AWS_DEFAULT_REGION": "ap-south-1"}) == "ap-south-1"
    assert resolve_region(None, {}) == "us-east-1"


# A role ARN in its documented shape, beside arbitrary text, so both branches below run.
ROLE_ARNS = st.from_regex(r"arn:aws:iam::[0-9]{12}:role(/[A-Za-z0-9_+=,.@-]{1,16}){1,3}", fullmatch=True)


def test_any_role_arn_string_is_accepted_or_named() -> None:
    branches = Branches()

    @given(st.one_of(ROLE_ARNS, st.text(max_size=80)))
    def check(value: str) -> None:
        text = profile_text().replace(f'"{ROLE}"', _toml_string(value))
        try:
            config = parse_config(text, PATH)
        except ConfigError as exc:
            branches.took("refused")
            assert "role_arn" in exc.message or "not valid TOML" in exc.message
        else:
            branches.took("accepted")
            assert config.profiles["dev"].role_arn == value
            assert value.startswith("arn:aws") and ":role/" in value

    check()
    branches.assert_each_ran("accepted", "refused")


def test_any_duration_is_accepted_or_named() -> None:
    branches = Branches()
    durations = st.one_of(
        st.integers(900, 43200),  # the documented range, beside anything else
        st.integers(),
        st.text(max_size=10),
        st.booleans(),
        st.floats(allow_nan=False),
    )

    @given(durations)
    def check(value: object) -> None:
        rendered = _toml_string(value) if isinstance(value, str) else str(value).lower()
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            rendered = "inf" if value > 0 else "-inf"
        try:
            config = parse_config(profile_text(duration_seconds=rendered), PATH)
        except ConfigError as exc:
            branches.took("refused")
            assert "duration_seconds" in exc.message or "not valid TOML" in exc.message
        else:
            branches.took("accepted")
            assert 900 <= config.profiles["dev"].duration_seconds <= 43200

    check()
    branches.assert_each_ran("accepted", "refused")


def _toml_string(value: str) -> str:
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in value)
    return f'"{escaped}"'


def test_cli_config_error_exit_2_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(profile_text(duration_seconds="60"))
    done = run_elevate("--config", str(config), "credential-process", "dev", "-t", "123456")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert f"{config}:6: profile 'dev': duration_seconds = 60 is out of range" in done.stderr
    assert "Traceback" not in done.stderr
