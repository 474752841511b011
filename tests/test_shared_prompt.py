"""A code that was already used, at a prompt shared by many callers, and on a busy device.

Eight credential_process callers share one prompt (one holds the entry's lock and asks, the
others wait for it). A code typed there that STS already accepted used to fail all eight;
it is now refused with the reason and asked for again. An mfa_process whose code another
elevate on the same device took first waits for the next code window, a few windows at most.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from support.cli import elevate_argv, run_elevate
from support.configs import write_config
from support.constants import ROLE, SERIAL
from support.fakests import FakeSts
from support.sessioncache import Clock as SettableClock
from support.sessioncache import FakeClient, elevator, example_keys
from support.terminal import terminal

from elevate import cache as cache_mod
from elevate import core, mfagate
from elevate.errors import MfaError
from elevate.models import Profile

CALLERS = 8
PROMPT = "MFA code for " + re.escape(SERIAL) + ": "


@pytest.mark.slow
def test_a_used_code_retyped_at_a_prompt_shared_by_eight_callers_is_asked_again(
    fake_sts: FakeSts, tmp_path: Path
) -> None:
    example_keys()
    write_config({"dev": {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev"}}, default="dev")
    used = run_elevate("credential-process", "dev", "--no-cache", "-t", "111111")
    assert used.returncode == 0, used.stderr  # STS accepted 111111: it is a used code now
    one = shlex.join(elevate_argv("credential-process", "dev"))
    script = f'for i in $(seq {CALLERS}); do {one} > "out.$i" 2> "err.$i" & done; wait; echo all-done'
    with terminal(script, tmp_path, timeout=30) as tty:
        tty.expect(PROMPT)
        tty.sendline("111111")  # retyped: the code the person used a moment ago
        tty.expect("already used")
        tty.expect(PROMPT)
        tty.sendline("222222")
        tty.expect("all-done")
    for i in range(1, CALLERS + 1):
        out = (tmp_path / f"out.{i}").read_text()
        assert json.loads(out)["AccessKeyId"].startswith("ASIA"), (tmp_path / f"err.{i}").read_text()
    assert fake_sts.count("AssumeRole") == 2  # the priming call, and one for all eight


class Codes:
    """mfa_process's answers in turn (another elevate on the device took the first ones)."""

    def __init__(self, *codes: str) -> None:
        self.codes = list(codes)
        self.calls = 0

    def __call__(self, profile: Profile, token: object) -> str:
        self.calls += 1
        return self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]


def busy_device(codes: Codes) -> tuple[core.Elevator, FakeClient, list[float], SettableClock]:
    clock = SettableClock()
    client = FakeClient(clock)
    messages: list[str] = []
    lift = elevator(clock, client, messages=messages)
    lift.code_source = codes
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    lift.sleep = sleep
    used = cache_mod.used_codes(lift.invocation, clock)
    for code in ("111111", "222222"):
        used.remember(SERIAL, code)
    return lift, client, waits, clock


def test_mfa_process_waits_out_more_than_one_used_code_window() -> None:
    codes = Codes("111111", "222222", "333333")
    lift, client, waits, _ = busy_device(codes)
    profile = Profile(name="dev", role_arn=ROLE, mfa_serial=SERIAL, keys="dev", mfa_process="/bin/true")
    creds = lift.elevate(profile, use_cache=False)
    assert creds.access_key_id.startswith("ASIA")
    assert codes.calls == 3 and len(waits) == 2  # two windows waited, not one and a failure
    assert client.count("AssumeRole") == 1 and client.calls[-1][1]["TokenCode"] == "333333"


def test_mfa_process_gives_up_after_a_few_windows() -> None:
    codes = Codes("111111")
    lift, client, waits, _ = busy_device(codes)
    profile = Profile(name="dev", role_arn=ROLE, mfa_serial=SERIAL, keys="dev", mfa_process="/bin/true")
    with pytest.raises(MfaError, match="already used"):
        lift.elevate(profile, use_cache=False)
    assert codes.calls == mfagate.USED_CODE_TRIES and len(waits) == mfagate.USED_CODE_TRIES - 1
    assert all(0 < w <= 31 for w in waits) and client.count("AssumeRole") == 0
