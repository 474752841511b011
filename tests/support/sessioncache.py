"""Helpers for the session-cache tests: the cache directory and its entries, seeded
credentials, a settable clock and fakes for the core (an STS client, a code source).

The core is driven with an injected clock and these fakes where timing matters; the CLI runs
in subprocesses against the fake STS in support/fakests.py, or against moto.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

from elevate import cache as cache_mod
from elevate import keystore
from elevate.config import load_config
from elevate.core import Elevator
from elevate.invocation import Invocation
from elevate.models import Profile, SessionCredentials, SourceKeys
from elevate.store import FileStore
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE, SERIAL
from support.fakests import fake_access_key_id, fake_secret

DEV: dict[str, Any] = {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev"}
DEV_PROFILE = Profile(name="dev", role_arn=ROLE, mfa_serial=SERIAL, keys="dev")


def cache_dir() -> Path:
    return Path(os.environ["ELEVATE_CACHE_DIR"])


def profile(name: str = "dev") -> Profile:
    return load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles[name]


def entry_path(name: str = "dev") -> Path:
    return FileStore(cache_dir()).path(
        cache_mod.entry_key(profile(name), Invocation.from_environ(os.environ))
    )


def entry_path_of(p: Profile) -> Path:
    return FileStore(cache_dir()).path(cache_mod.entry_key(p, Invocation.from_environ(os.environ)))


def make_creds(seconds: float, now: Optional[datetime] = None) -> SessionCredentials:
    start = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    return SessionCredentials(
        fake_access_key_id(), fake_secret(), fake_secret(300), start + timedelta(seconds=seconds)
    )


def seed(name: str = "dev", seconds: float = 3600) -> SessionCredentials:
    """Put a fresh entry for profile `name` in the file cache, as elevate would."""
    creds = make_creds(seconds)
    store = FileStore(cache_dir())
    cache_mod.SessionCache(store, store, cache_mod.utcnow).put(
        cache_mod.entry_key(profile(name), Invocation.from_environ(os.environ)), creds, "seeded"
    )
    return creds


def files_containing(secret: str, *places: Path) -> list[Path]:
    found = []
    for place in places:
        paths = [place] if place.is_file() else (list(place.rglob("*")) if place.exists() else [])
        found += [p for p in paths if p.is_file() and secret in p.read_text(errors="replace")]
    return found


def example_keys() -> SourceKeys:
    """The example key pair, stored as key set 'dev' (what the `keys` fixture does)."""
    stored = SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET)
    keystore.put_keys("dev", stored)
    return stored


@dataclasses.dataclass
class MfaScript:
    command: str
    counter: Path

    @property
    def runs(self) -> int:
        return len(self.counter.read_text().splitlines()) if self.counter.exists() else 0


def counting_mfa_script(directory: Path) -> MfaScript:
    """An mfa_process that counts its runs and prints a new code each time."""
    script = directory / "mfa-code"
    counter = directory / "mfa-runs"
    script.write_text(
        f"#!/bin/sh\necho run >> '{counter}'\nn=$(wc -l < '{counter}')\nprintf \"%06d\\n\" $((200000 + n))\n"
    )
    script.chmod(0o700)
    return MfaScript(str(script), counter)


class Clock:
    """A settable UTC clock, starting now on a whole second."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeClient:
    """Stands in for the botocore STS client; mints credentials by the test clock."""

    meta = SimpleNamespace(endpoint_url="https://sts.fake.invalid")

    def __init__(self, clock: Clock, fail: Optional[Exception] = None) -> None:
        self.clock = clock
        self.fail = fail
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def count(self, action: str) -> int:
        return sum(1 for name, _ in self.calls if name == action)

    def get_caller_identity(self) -> dict[str, Any]:
        self.calls.append(("GetCallerIdentity", {}))
        return {"Arn": "arn:aws:iam::123456789012:user/alice", "Account": "123456789012"}

    def assume_role(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("AssumeRole", params))
        if self.fail is not None:
            raise self.fail
        return {"Credentials": self._creds(params["DurationSeconds"])}

    def get_session_token(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("GetSessionToken", params))
        return {"Credentials": self._creds(params["DurationSeconds"])}

    def _creds(self, seconds: int) -> dict[str, Any]:
        made = make_creds(seconds, self.clock())
        return {
            "AccessKeyId": made.access_key_id,
            "SecretAccessKey": made.secret_access_key,
            "SessionToken": made.session_token,
            "Expiration": made.expiration,
        }


class Codes:
    """A code source that hands out a new six-digit code per call and counts the calls."""

    def __init__(self, fixed: Optional[str] = None) -> None:
        self.fixed = fixed
        self.calls = 0

    def __call__(self, profile: Profile, token: Optional[str]) -> str:
        self.calls += 1
        return token or self.fixed or f"{300000 + self.calls}"


def elevator(
    clock: Clock, client: FakeClient, codes: Optional[Codes] = None, messages: Optional[list[str]] = None
) -> Elevator:
    return Elevator(
        invocation=Invocation.from_environ(dict(os.environ)),
        clock=clock,
        load_keys=lambda name: SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET),
        client_factory=lambda keys, region: client,
        code_source=codes or Codes(),
        notify=(messages.append if messages is not None else lambda message: None),
        warn=(messages.append if messages is not None else lambda message: None),
        lock_timeout=5,
    )
