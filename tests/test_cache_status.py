"""`elevate status` and `elevate clear`: what is cached, never a secret; clearing one
profile or all.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta

from click.testing import CliRunner
from support.cli import run_elevate
from support.configs import write_config
from support.constants import ROLE, ROLE_PROD
from support.sessioncache import (
    DEV,
    cache_dir,
    entry_path,
    profile,
    seed,
)

from elevate.cli import cli
from elevate.core import status_of
from elevate.invocation import Invocation

# -- status and clear -------------------------------------------------------------------------


def _status_config() -> None:
    write_config(
        {"dev": DEV, "prod": {**DEV, "role_arn": ROLE_PROD}, "quiet": {**DEV, "cache": "off"}}, default="dev"
    )


def test_status_json_and_text_never_show_a_secret() -> None:
    _status_config()
    creds = seed("dev", seconds=1800)
    secrets_ = (creds.access_key_id, creds.secret_access_key, creds.session_token)

    result = CliRunner().invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = {item["profile"]: item for item in json.loads(result.stdout)}
    assert set(report) == {"dev", "prod", "quiet"}
    assert report["dev"]["credentials"]["expiration"] == creds.expiration_iso()
    assert 1790 <= report["dev"]["credentials"]["seconds_left"] <= 1800
    assert report["prod"]["credentials"] is None
    assert report["quiet"] == {"profile": "quiet", "role_arn": ROLE, "cache": "off", "credentials": None}

    text = CliRunner().invoke(cli, ["status"])
    assert text.exit_code == 0
    assert re.search(r"^dev: cached, (29|30) min \d+ s left \(until .*Z\)$", text.stdout, re.M)
    assert "prod: nothing cached" in text.stdout and "quiet: cache off" in text.stdout

    sub = run_elevate("status", "--json")
    assert sub.returncode == 0 and sub.stderr == ""
    assert json.loads(sub.stdout)[0]["profile"] == "dev"
    one = run_elevate("status", "prod")
    assert one.returncode == 0 and one.stdout == "prod: nothing cached\n"
    for output in (result.output, text.output, sub.stdout + sub.stderr):
        assert not [s for s in secrets_ if s in output]


def test_status_is_pure_and_counts_down() -> None:
    _status_config()
    creds = seed("dev", seconds=1000)
    now = creds.expiration - timedelta(seconds=250)
    listing_before = sorted(p.name for p in cache_dir().iterdir())
    described = status_of(profile("dev"), Invocation.from_environ(dict(os.environ)), now=now)
    # 250 s left is inside the default refresh window: cached, but not served (issue 21.12).
    assert described["credentials"] == {
        "expiration": creds.expiration_iso(),
        "seconds_left": 250,
        "served": False,
    }
    assert sorted(p.name for p in cache_dir().iterdir()) == listing_before


def test_clear_one_profile_then_all() -> None:
    _status_config()
    seed("dev")
    seed("prod")
    runner = CliRunner()
    cleared = runner.invoke(cli, ["clear", "dev"])
    assert cleared.exit_code == 0 and cleared.stdout == ""
    assert cleared.stderr == "dev: cleared\n"
    assert not entry_path("dev").exists() and entry_path("prod").exists()
    assert runner.invoke(cli, ["clear", "dev"]).stderr == "dev: nothing cached\n"

    seed("dev")
    everything = run_elevate("clear", "--all")
    assert everything.returncode == 0 and everything.stdout == ""
    assert everything.stderr.splitlines() == ["dev: cleared", "prod: cleared", "quiet: nothing cached"]
    assert not entry_path("dev").exists() and not entry_path("prod").exists()
    report = json.loads(run_elevate("status", "--json").stdout)
    assert [item["credentials"] for item in report] == [None, None, None]

    # No PROFILE: the default profile, as for export (issue 12).
    default = run_elevate("clear")
    assert default.returncode == 0 and default.stderr == "dev: nothing cached\n"
