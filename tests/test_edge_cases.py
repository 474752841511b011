"""Edge cases a review found: each ends in one clear line, never a traceback or a hang."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.cli import one_error_line, run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE

from elevate import cache, keystore
from elevate.config import parse_config
from elevate.errors import ConfigError, UsageError
from elevate.invocation import Invocation
from elevate.models import SessionCredentials
from elevate.store import FileStore

MFA = "arn:aws:iam::123456789012:mfa/a"
DEV = {"role_arn": ROLE, "mfa_serial": MFA}

run = run_elevate


@pytest.mark.parametrize("region", ["eu west 1", "../../x"])
def test_invalid_region_from_the_environment(region: str) -> None:
    write_config({"dev": DEV})
    keystore.put_keys("dev", keystore.check_keys(EXAMPLE_ID, EXAMPLE_SECRET))
    line = one_error_line(
        run("credential-process", "dev", "-t", "123456", env=dict(os.environ, AWS_REGION=region)), 2
    )
    assert f"region {region!r}" in line


def test_swapped_key_lines_show_no_part_of_the_secret() -> None:
    with pytest.raises(UsageError) as info:
        keystore.check_keys(EXAMPLE_SECRET, EXAMPLE_ID)
    assert "of 40 characters" in info.value.message
    for piece in (EXAMPLE_SECRET[:4], EXAMPLE_SECRET[-4:]):
        assert piece not in info.value.message
    done = run("keys", "add", "dev", stdin=f"{EXAMPLE_SECRET}\n{EXAMPLE_ID}\n")
    assert (
        done.returncode == 2
        and EXAMPLE_SECRET[:4] not in done.stderr
        and EXAMPLE_SECRET[-4:] not in done.stderr
    )


def _cache_with_odd_error_file(kind: str) -> tuple[cache.SessionCache, str]:
    profile = parse_config(write_config({"dev": DEV}).read_text(), Path("c")).profiles["dev"]
    store = FileStore(cache.cache_dir(os.environ))
    store.ensure()
    key = cache.entry_key(profile, Invocation.from_environ(os.environ))
    odd = store.path(key, ".error")
    if kind == "directory":
        odd.mkdir()
    else:
        os.mkfifo(odd, 0o600)
    return cache.SessionCache(store, store, cache.utcnow), key


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_odd_error_file_neither_crashes_nor_hangs(kind: str) -> None:
    sessions, key = _cache_with_odd_error_file(kind)
    assert sessions.failure_since(key, 0) is None  # a FIFO must not block waiting for a writer
    creds = SessionCredentials(
        "ASIAIOSFODNN7EXAMPLE",
        "A" * 40,
        "B" * 100,
        datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1),
    )
    sessions.put(key, creds, "dev")  # an .error we cannot remove does not lose the credentials
    assert sessions.get(key, 0) == creds


def test_configure_on_a_config_whose_profiles_is_not_a_table() -> None:
    from elevate.onboarding import configfile

    with pytest.raises(ConfigError, match="'profiles' must be a table"):
        configfile.set_profile("profiles = 1\n", "dev", {"role_arn": ROLE}, Path("c.toml"))


def test_replacing_a_toml_value_keeps_its_comment() -> None:
    from elevate.onboarding import configfile

    text = (
        'default_profile = "a" # team default\n\n'
        '[profiles.a]\nrole_arn = "arn:aws:iam::123456789012:role/R"\n'
        'mfa_serial = "arn:aws:iam::123456789012:mfa/a"\n\n[profiles.dev]\n'
        'role_arn = "arn:aws:iam::123456789012:role/R"  # the role\n'
        'mfa_serial = "arn:aws:iam::123456789012:mfa/old#x"   # phone, 2023\n'
    )
    out = configfile.set_profile(
        text, "dev", {"mfa_serial": "arn:aws:iam::123456789012:mfa/new"}, Path("c.toml")
    )
    out = configfile.set_default_profile(out, "dev", Path("c.toml"))
    assert 'mfa_serial = "arn:aws:iam::123456789012:mfa/new"   # phone, 2023\n' in out
    assert 'default_profile = "dev" # team default\n' in out
    assert out.replace("mfa/new", "mfa/old#x").replace('"dev" # team', '"a" # team') == text
