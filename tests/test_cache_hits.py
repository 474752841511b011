"""Freshness: when a cached entry is served and when it is refreshed, what the cache key
separates, the expiration reported, and answers elevate refuses never being cached.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta

import pytest
from support.cli import one_error_line, run_elevate
from support.configs import write_config
from support.constants import ROLE_PROD
from support.fakests import FakeSts, fake_access_key_id, fake_secret
from support.sessioncache import (
    DEV,
    DEV_PROFILE,
    Clock,
    Codes,
    FakeClient,
    MfaScript,
    cache_dir,
    elevator,
    entry_path,
    entry_path_of,
    files_containing,
    seed,
)

from elevate import cache as cache_mod
from elevate import core
from elevate.models import SourceKeys

# -- freshness --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refresh_before", "seconds_left", "served"),
    [
        (600, 601, True),
        (600, 600, False),  # exactly refresh_before_seconds left: refresh
        (600, 599, False),
        (60, 61, True),
        (60, 60, False),
        (0, 1, True),
        (0, 0, False),
        (600, -30, False),  # expired
    ],
)
def test_refresh_boundary(refresh_before: int, seconds_left: int, served: bool) -> None:
    clock = Clock()
    client = FakeClient(clock)
    codes = Codes()
    p = dataclasses.replace(DEV_PROFILE, refresh_before_seconds=refresh_before)
    first = elevator(clock, client, codes).elevate(p)
    assert first.expiration == clock.now + timedelta(seconds=3600)
    clock.advance(3600 - seconds_left)

    second = elevator(clock, client, codes).elevate(p)
    assert (second == first) is served
    assert client.count("AssumeRole") == (1 if served else 2)
    assert codes.calls == (1 if served else 2)
    if not served:
        assert second.expiration == clock.now + timedelta(seconds=3600)
        assert cache_mod.decode(entry_path_of(p).read_text()) == second


def test_cache_key_separates_role_serial_key_set_session_name_duration_and_region() -> None:
    clock = Clock()
    client = FakeClient(clock)
    base = dataclasses.replace(DEV_PROFILE, role_session_name="alice", source_identity="alice")
    variants = [
        base,
        dataclasses.replace(base, role_arn=ROLE_PROD),
        dataclasses.replace(base, mfa_serial="arn:aws:iam::123456789012:mfa/bob"),
        dataclasses.replace(base, keys="other"),
        dataclasses.replace(base, role_session_name="alice2"),
        dataclasses.replace(base, duration_seconds=7200),
        # Issue 11: the STS endpoint and region are part of the key (the region was not before).
        dataclasses.replace(base, region="eu-west-1"),
    ]
    codes = Codes()
    answers = [elevator(clock, client, codes).elevate(v) for v in variants]
    assert len({a.access_key_id for a in answers}) == len(variants)
    assert client.count("AssumeRole") == len(variants)
    # The same values under another profile name (or cache window): the same entry.
    same = dataclasses.replace(base, name="alias", refresh_before_seconds=300)
    assert elevator(clock, client, codes).elevate(same) == answers[0]
    assert client.count("AssumeRole") == len(variants)


def test_credential_process_reports_the_real_expiration(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command, "duration_seconds": 7200}}, default="dev")
    cold = run_elevate("credential-process", "dev")
    warm = run_elevate("credential-process", "dev")
    assert cold.returncode == warm.returncode == 0, cold.stderr + warm.stderr
    issued = fake_sts.issued[0]["Expiration"]
    assert json.loads(cold.stdout)["Expiration"] == json.loads(warm.stdout)["Expiration"] == issued
    assert fake_sts.last("AssumeRole")["DurationSeconds"] == "7200"


def test_entry_inside_the_refresh_window_is_refreshed_through_the_cli(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    stale = seed(seconds=300)  # fresh for 300 s, but refresh_before_seconds is 1200
    done = run_elevate("credential-process", "dev")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"] != stale.access_key_id
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1


def hostile_assume_role(key_id: str) -> str:
    """An AssumeRole answer whose secret would run a command if pasted into a shell."""
    return (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
        f"<Credentials><AccessKeyId>{key_id}</AccessKeyId>"
        f"<SecretAccessKey>x'$(touch /tmp/elevate-pwned)'{fake_secret(20)}</SecretAccessKey>"
        f"<SessionToken>{fake_secret(300)}</SessionToken>"
        "<Expiration>2999-01-01T00:00:00Z</Expiration></Credentials>"
        "</AssumeRoleResult></AssumeRoleResponse>"
    )


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [(True, "AssumeRole returned a malformed SecretAccessKey"), (False, "AssumeRole")],
)
def test_an_answer_elevate_refuses_is_not_cached(
    hostile: bool, expected: str, fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    key_id = fake_access_key_id()
    fake_sts.behave(
        "AssumeRole", body=hostile_assume_role(key_id) if hostile else "<AssumeRoleResponse><open>"
    )
    message = one_error_line(run_elevate("credential-process", "dev"))
    assert expected in message and "touch" not in message
    assert not entry_path().exists()
    assert files_containing(key_id, cache_dir()) == []
    fake_sts.reset("AssumeRole")
    time.sleep(core.SDK_FAILURE_MEMORY_SECONDS)  # the same client asking at once is told the same
    done = run_elevate("credential-process", "dev")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"]
