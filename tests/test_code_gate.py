"""The MFA code gate: elevation and key rotation answer the same code situations the same way.

A code already used, a code STS rejects, an mfa_process that fails: driven through the public
doors (`Elevator.elevate`, `Rotator.rotate`) with the same clock, the same record of used codes
and the same code source, both ask as many times, say the same things and end with the same
error (rotation adds only what it did not change).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Optional

import botocore.exceptions
import pytest
from support.constants import ROLE, SERIAL
from support.sessioncache import Clock, FakeClient, elevator, example_keys

from elevate import cache as cache_mod
from elevate import mfa
from elevate.errors import ElevateError, MfaCodeRejected, MfaError
from elevate.invocation import Invocation
from elevate.mfagate import MfaGate
from elevate.models import Profile
from elevate.onboarding.rotate import Rotator

USED = "111111"
REJECTED_MESSAGE = "MultiFactorAuthentication failed with invalid MFA one time pass code. "


class Stop(Exception):
    """Raised by the rotation's fault hook once its MFA session exists: the IAM steps are not ours."""


class Sts(FakeClient):
    """The fake STS client with a public control: the codes it rejects (all, when `reject_all`)."""

    def __init__(self, clock: Clock, rejected: tuple[str, ...] = (), reject_all: bool = False) -> None:
        super().__init__(clock)
        self.rejected = set(rejected)
        self.reject_all = reject_all

    def _check(self, operation: str, params: dict[str, Any]) -> None:
        code = params.get("TokenCode")
        if code is not None and (self.reject_all or code in self.rejected):
            error = {"Error": {"Code": "AccessDenied", "Message": REJECTED_MESSAGE}}
            raise botocore.exceptions.ClientError(error, operation)  # type: ignore[arg-type]

    def assume_role(self, **params: Any) -> dict[str, Any]:
        self._check("AssumeRole", params)
        return super().assume_role(**params)

    def get_session_token(self, **params: Any) -> dict[str, Any]:
        self._check("GetSessionToken", params)
        return super().get_session_token(**params)


class Source:
    """A code source: its answers in turn (the last one repeated), counting the calls."""

    def __init__(self, *codes: str, fail: Optional[Exception] = None) -> None:
        self.codes = list(codes)
        self.fail = fail
        self.calls = 0

    def __call__(self, profile: Profile, token: Optional[str]) -> str:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        if token is not None:
            return token
        return self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]


class Outcome:
    """What one run said and did: the error (or None), the prompts, the messages, the waits."""

    def __init__(self) -> None:
        self.error: Optional[ElevateError] = None
        self.through = False  # the code was accepted: elevation returned, rotation has its session
        self.told: list[str] = []
        self.waits: list[float] = []
        self.asked = 0


def settle(start: datetime) -> tuple[Clock, Callable[[float], None], list[float]]:
    clock = Clock()
    clock.now = start
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    return clock, sleep, waits


def by_elevate(
    profile: Profile, token: Optional[str], source: Source, sts: Callable[[Clock], Sts], start: datetime
) -> Outcome:
    outcome = Outcome()
    clock, sleep, outcome.waits = settle(start)
    lift = elevator(clock, sts(clock), messages=outcome.told)
    lift.code_source, lift.sleep = source, sleep
    try:
        lift.elevate(profile, token=token, use_cache=False)
        outcome.through = True
    except ElevateError as exc:
        outcome.error = exc
    outcome.asked = source.calls
    return outcome


def by_rotate(
    profile: Profile, token: Optional[str], source: Source, sts: Callable[[Clock], Sts], start: datetime
) -> Outcome:
    outcome = Outcome()
    clock, sleep, outcome.waits = settle(start)
    client = sts(clock)

    def stop_after_session(step: str) -> None:
        if step == "session":
            raise Stop

    worker = Rotator(
        invocation=Invocation.from_environ(os.environ),
        client_factory=lambda keys, region, service="sts": client,
        code_source=source,
        clock=clock,
        sleep=sleep,
        notify=outcome.told.append,
        fault=stop_after_session,
    )
    try:
        worker.rotate("dev", profile, token)
    except ElevateError as exc:
        outcome.error = exc
    except Stop:
        outcome.through = True
    outcome.asked = source.calls
    return outcome


def used_before(start: datetime, code: str = USED) -> None:
    """STS accepted `code` for the device a moment before `start` (another elevate run)."""
    earlier = Clock()
    earlier.now = start
    earlier.advance(-5)
    cache_mod.used_codes(Invocation.from_environ(os.environ), earlier).remember(SERIAL, code)


PROMPT = Profile(name="dev", role_arn=ROLE, mfa_serial=SERIAL, keys="dev", region="us-east-1")
PROCESS = Profile(
    name="dev", role_arn=ROLE, mfa_serial=SERIAL, keys="dev", region="us-east-1", mfa_process="/bin/true"
)
ACCEPTING: Callable[[Clock], Sts] = Sts
REJECTING: Callable[[Clock], Sts] = lambda clock: Sts(clock, reject_all=True)  # noqa: E731
FIRST_REJECTED: Callable[[Clock], Sts] = lambda clock: Sts(clock, rejected=("222222",))  # noqa: E731


class Situation(NamedTuple):
    profile: Profile
    token: Optional[str]
    answers: tuple[str, ...]  # the code source's, in turn
    sts: Callable[[Clock], Sts]
    used: bool  # USED is on record as accepted a moment ago
    fails: bool


SITUATIONS = {
    "a used code passed as --token": Situation(PROMPT, USED, (USED,), ACCEPTING, True, True),
    "a used code typed three times": Situation(PROMPT, None, (USED,), ACCEPTING, True, True),
    "a used code typed, then a new one": Situation(PROMPT, None, (USED, "333333"), ACCEPTING, True, False),
    "mfa_process keeps giving a used code": Situation(PROCESS, None, (USED,), ACCEPTING, True, True),
    "mfa_process gives a used code, then a new one": Situation(
        PROCESS, None, (USED, "333333"), ACCEPTING, True, False
    ),
    "a rejected --token": Situation(PROMPT, "222222", ("222222",), REJECTING, False, True),
    "a rejected code typed three times": Situation(
        PROMPT, None, ("222222", "333333", "444444"), REJECTING, False, True
    ),
    "a rejected code typed, then an accepted one": Situation(
        PROMPT, None, ("222222", "333333"), FIRST_REJECTED, False, False
    ),
    "a rejected code from mfa_process": Situation(PROCESS, None, ("222222",), REJECTING, False, True),
    "a code typed after the current one was used": Situation(
        PROMPT, None, ("333333",), ACCEPTING, True, False
    ),
}
# Elevation sends its code with AssumeRole (or GetSessionToken for an MFA session), rotation
# with GetSessionToken: STS's answer names the operation, the rest is the gate's.
OPERATION = re.compile(r"\b(AssumeRole|GetSessionToken): ")


def said(text: str) -> str:
    return OPERATION.sub("<operation>: ", text)


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Each door gets a cache directory (and so a record of used codes) of its own."""

    def use(name: str) -> None:
        monkeypatch.setenv("ELEVATE_CACHE_DIR", str(tmp_path / f"cache-{name}"))

    return use


@pytest.mark.parametrize("mfa_session", [None, 3600], ids=["AssumeRole", "MFA session"])
@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_elevate_and_rotate_answer_a_code_situation_alike(
    situation: str, mfa_session: Optional[int], own_cache: Callable[[str], None]
) -> None:
    case = SITUATIONS[situation]
    profile = dataclasses.replace(case.profile, mfa_session_seconds=mfa_session)
    example_keys()
    start = Clock().now
    outcomes = []
    for door in (by_elevate, by_rotate):
        own_cache(door.__name__)
        if case.used:
            used_before(start)
        outcomes.append(door(profile, case.token, Source(*case.answers), case.sts, start))
    elevation, rotation = outcomes
    assert (elevation.asked, elevation.waits) == (rotation.asked, rotation.waits), situation
    assert [said(m) for m in elevation.told] == [said(m) for m in rotation.told], situation
    assert elevation.asked >= 1, "the code source was asked"
    # A code is a secret for its window: no message and no error repeats one.
    for outcome in outcomes:
        words = " ".join([*outcome.told, outcome.error.message if outcome.error else ""])
        assert not any(code in words for code in {*case.answers, case.token or USED}), words
    if not case.fails:
        assert elevation.through and rotation.through, (elevation.error, rotation.error)
        return
    assert elevation.error is not None and rotation.error is not None, situation
    assert type(elevation.error) is type(rotation.error), (elevation.error, rotation.error)
    assert rotation.error.exit_code == elevation.error.exit_code
    # Rotation says the same, and then that nothing was changed.
    assert said(rotation.error.message).startswith(f"{said(elevation.error.message)}; nothing was changed"), (
        elevation.error.message,
        rotation.error.message,
    )


def test_a_failing_mfa_process_is_answered_alike(tmp_path: Path) -> None:
    """The real code source (elevate.mfa): an mfa_process that exits 3."""
    script = tmp_path / "mfa-fails"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o700)
    profile = Profile(
        name="dev", role_arn=ROLE, mfa_serial=SERIAL, keys="dev", region="us-east-1", mfa_process=str(script)
    )
    example_keys()
    clock = Clock()
    client = Sts(clock)
    lift = elevator(clock, client)
    lift.code_source = functools.partial(mfa.obtain_code, environ=os.environ)
    worker = Rotator(
        invocation=Invocation.from_environ(os.environ),
        client_factory=lambda keys, region, service="sts": client,
        clock=clock,
        sleep=lambda seconds: None,
        notify=lambda message: None,
    )
    with pytest.raises(MfaError) as elevation:
        lift.elevate(profile, use_cache=False)
    with pytest.raises(MfaError) as rotation:
        worker.rotate("dev", profile)
    assert not isinstance(elevation.value, MfaCodeRejected)
    assert elevation.value.message == f"mfa_process {str(script)!r} failed with exit status 3"
    assert type(rotation.value) is type(elevation.value)
    assert rotation.value.exit_code == elevation.value.exit_code
    assert rotation.value.message.startswith(f"{elevation.value.message}; nothing was changed")
    assert client.count("AssumeRole") == client.count("GetSessionToken") == 0


def test_the_gate_remembers_only_a_code_sts_accepted() -> None:
    """A rejected code is not recorded as used (STS did not take it); an accepted one is, and
    the attempt's answer is handed back."""
    clock = Clock()
    used = cache_mod.used_codes(Invocation.from_environ(os.environ), clock)
    told: list[str] = []
    gate = MfaGate(used, clock, Source("222222", "333333"), told.append, lambda seconds: None)

    def attempt(code: str) -> str:
        if code == "222222":
            raise MfaCodeRejected("AssumeRole: STS rejected the MFA code")
        return f"accepted {code}"

    assert gate.send(PROMPT, None, attempt) == "accepted 333333"
    assert not used.was_used(SERIAL, "222222") and used.was_used(SERIAL, "333333")
    assert [m.endswith("Try again.") for m in told] == [True]
