"""The key-age warning of every elevation (core.Elevator._warn_key_age): only past the
limit, naming `elevate rotate`, on stderr.
"""

from __future__ import annotations

import sys
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

from elevate import keystore
from elevate.core import Elevator
from elevate.invocation import Invocation
from elevate.models import Profile, SourceKeys

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

TIMEOUT = 60


@pytest.fixture
def alice(moto_env: str, request: pytest.FixtureRequest) -> Provisioned:
    return onboarding_user(moto_env, request)


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
    elevator = Elevator(
        invocation=Invocation.from_environ({}), clock=lambda: now, notify=told.append, warn=told.append
    )
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
    done = run_elevate("export", "dev", "--format", "json", "-t", alice.totp().now(), "--no-cache")
    assert done.returncode == 0, done.stderr
    assert "is 120 days old (limit 100): rotate it with `elevate rotate dev`" in done.stderr
    assert "rotate" not in done.stdout
