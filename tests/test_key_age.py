"""The key-age warning of every elevation (Elevator.elevate): only past the
limit, naming `elevate rotate`, on stderr.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from support.cli import run_elevate
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.onboarding import (
    elevate_config,
    onboarding_user,
    put,
)
from support.provision import Provisioned
from support.sessioncache import Clock, Codes, FakeClient

from elevate import keystore
from elevate.core import Elevator
from elevate.invocation import Invocation
from elevate.models import Profile, SourceKeys

TIMEOUT = 60


@pytest.fixture
def alice(moto_env: str, request: pytest.FixtureRequest) -> Provisioned:
    return onboarding_user(moto_env, request)


# --- the key-age warning of every elevation (Elevator.elevate) --------------------


def _warnings(codes: Codes, age: timedelta | None, limit: int = 90) -> list[str]:
    """What one elevation warns about, its stored keys `age` old (None: age unknown); `codes`
    shared by the calls, as each code is used once."""
    told: list[str] = []
    profile = Profile(
        name="dev",
        role_arn="arn:aws:iam::123456789012:role/R",
        mfa_serial="X" * 9,
        keys="work",
        max_key_age_days=limit,
        cache="off",
    )
    clock = Clock()
    created = None if age is None else clock.now - age
    elevator = Elevator(
        invocation=Invocation.from_environ(dict(os.environ)),
        clock=clock,
        load_keys=lambda name: SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET, created=created),
        client_factory=lambda keys, region: FakeClient(clock),
        code_source=codes,
        notify=lambda message: None,
        warn=told.append,
    )
    elevator.elevate(profile, use_cache=False)
    return told


def test_key_age_warning_names_rotate_only_past_the_limit() -> None:
    codes = Codes()
    assert _warnings(codes, timedelta(days=90)) == []
    told = _warnings(codes, timedelta(days=91))
    assert len(told) == 1 and "91 days old (limit 90)" in told[0] and "`elevate rotate work`" in told[0]
    assert _warnings(codes, timedelta(days=11), limit=10) != []
    assert _warnings(codes, None) == []
    assert codes.calls == 4  # each call elevated


def test_key_age_warning_on_stderr_of_a_real_elevation(alice: Provisioned) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=120)
    keystore.put_keys("dev", SourceKeys(alice.access_key_id, alice.secret_access_key, created=old))
    put(
        elevate_config(),
        f'[profiles.dev]\nrole_arn = "{alice.role_arn}"\nmfa_serial = "{alice.mfa_serial}"\n'
        "max_key_age_days = 100\n".encode(),
    )
    done = run_elevate("export", "dev", "--format", "json", "-t", alice.totp().now(), "--no-cache")
    assert done.returncode == 0, done.stderr
    assert "is 120 days old (limit 100): rotate it with `elevate rotate dev`" in done.stderr
    assert "rotate" not in done.stdout
