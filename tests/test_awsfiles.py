"""The byte-preserving ~/.aws edits (elevate.onboarding.awsfiles): reading and removing a
credentials section, the credential_process profile, replacing a file in place.

Golden files in tests/golden hold ~/.aws files with comments, odd spacing and other
profiles; every edit must leave every byte outside the edited section as it was.
"""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

import pytest
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.onboarding import (
    botocore_sections,
    golden,
    put,
)

from elevate.errors import ConfigError, ElevateError
from elevate.onboarding import awsfiles

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

TIMEOUT = 60

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
