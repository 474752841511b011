"""An accepted MFA code is not sent twice: elevate remembers used codes for their window and
explains a code STS refuses because it was used elsewhere.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
from support.cli import one_error_line, run_elevate
from support.configs import write_config
from support.constants import ROLE_PROD, SERIAL
from support.fakests import FakeSts
from support.sessioncache import (
    DEV,
    DEV_PROFILE,
    Clock,
    FakeClient,
    elevator,
)

from elevate.errors import MfaError
from elevate.models import SourceKeys
from elevate.usedcodes import UsedCodes

# -- an accepted MFA code is not sent twice ---------------------------------------------------


def test_the_same_token_twice_is_refused_without_calling_sts(fake_sts: FakeSts, keys: SourceKeys) -> None:
    write_config({"dev": DEV, "prod": {**DEV, "role_arn": ROLE_PROD}}, default="dev")
    first = run_elevate("credential-process", "dev", "-t", "123456")
    assert first.returncode == 0, first.stderr
    assert fake_sts.last("AssumeRole")["TokenCode"] == "123456"
    assert fake_sts.last("AssumeRole")["SerialNumber"] == SERIAL

    for args in (["prod", "-t", "123456"], ["dev", "--no-cache", "-t", "123 456"]):
        message = one_error_line(run_elevate("credential-process", *args))
        wait = re.search(
            r"already used and STS accepts each code once: wait (\d+) s for the next code", message
        )
        assert wait is not None, message
        assert 1 <= int(wait.group(1)) <= 30
    assert fake_sts.count("AssumeRole") == 1

    fresh = run_elevate("credential-process", "prod", "-t", "654321")
    assert fresh.returncode == 0, fresh.stderr
    assert fake_sts.count("AssumeRole") == 2


def test_a_code_used_elsewhere_is_explained_when_sts_refuses_it(
    fake_sts: FakeSts, keys: SourceKeys, tmp_path: Path
) -> None:
    write_config({"dev": DEV}, default="dev")
    assert run_elevate("credential-process", "dev", "-t", "123456").returncode == 0
    # Another machine (here: another cache directory) does not know the code was used.
    elsewhere = dict(os.environ, ELEVATE_CACHE_DIR=str(tmp_path / "other-cache"))
    message = one_error_line(run_elevate("credential-process", "dev", "-t", "123456", env=elsewhere))
    assert "STS rejected the MFA code" in message and "each code works once" in message
    assert re.search(r"the next code appears in \d+ s", message)
    assert fake_sts.count("AssumeRole") == 2  # this time STS itself refused it


def test_core_refuses_a_remembered_code_and_says_how_long_to_wait() -> None:
    clock = Clock()
    client = FakeClient(clock)
    elevator(clock, client).elevate(DEV_PROFILE, token="111111")
    prod = dataclasses.replace(DEV_PROFILE, name="prod", role_arn=ROLE_PROD)
    with pytest.raises(MfaError, match=r"wait \d+ s for the next code"):
        elevator(clock, client).elevate(prod, token="111111")
    assert client.count("AssumeRole") == 1
    clock.advance(UsedCodes.KEEP_SECONDS)  # the code's window is over: forgotten
    elevator(clock, client).elevate(prod, token="111111")
    assert client.count("AssumeRole") == 2
