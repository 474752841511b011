"""The byte-preserving edits of elevate's TOML config (elevate.onboarding.configfile): quoting,
table headers, setting a profile in place, refusing what it cannot edit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.branches import Branches
from support.onboarding import (
    golden,
)

from elevate.config import parse_config
from elevate.errors import ConfigError
from elevate.onboarding import configfile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

TIMEOUT = 60

# --- configfile: TOML ------------------------------------------------------------------------


def test_toml_string_round_trips_any_text() -> None:
    branches = Branches()
    # st.text() never draws a lone surrogate, which TOML cannot hold: add them on purpose.
    surrogates = st.integers(0xD800, 0xDFFF).map(chr)

    @given(st.text(st.one_of(st.characters(), surrogates)))
    def check(value: str) -> None:
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            branches.took("refused")
            with pytest.raises(ConfigError):
                configfile.toml_string(value)
            return
        branches.took("round trip")
        assert tomllib.loads(f"x = {configfile.toml_string(value)}")["x"] == value

    check()
    branches.assert_each_ran("round trip", "refused")


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
