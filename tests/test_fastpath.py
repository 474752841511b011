"""The import-light fast path: a cache hit imports neither boto, keyring nor click; a miss
falls back to the full CLI; anything unusual goes to the full CLI.
"""

from __future__ import annotations

import json
import os

import pytest
from support.cli import run_elevate
from support.configs import write_config
from support.fakests import FakeSts
from support.servers import free_port
from support.sessioncache import (
    DEV,
    MfaScript,
    seed,
)

from elevate.models import SourceKeys

HEAVY = ("boto3", "botocore", "keyring", "click")
IMPORTTIME = ("-X", "importtime")  # each import on stderr


def imported_modules(importtime_log: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_log.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


# -- the fast path ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["credential-process", "dev"],
        ["credential-process"],
        ["export", "dev", "--format", "bash"],
        ["export", "--format=fish", "dev"],
        ["--config", "CONFIG", "export", "dev", "--format", "json"],
    ],
)
def test_a_cache_hit_imports_neither_boto_keyring_nor_click(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config({"dev": DEV}, default="dev")
    # No keys stored and no reachable STS: anything but the cache would fail. The entry is
    # seeded for that endpoint (issue 11: entries are keyed by endpoint and region).
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    creds = seed()
    env = dict(os.environ)
    argv = [str(config) if a == "CONFIG" else a for a in args]
    done = run_elevate(*argv, python_options=IMPORTTIME, timeout=30, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = imported_modules(done.stderr)
    assert {"elevate.fastpath", "elevate.cache"} <= modules
    assert not sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert creds.secret_access_key in done.stdout
    if args[0] == "credential-process":
        assert json.loads(done.stdout)["Expiration"] == creds.expiration_iso()


def test_a_miss_falls_back_to_the_full_cli_then_hits(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    miss = run_elevate("credential-process", "dev", python_options=IMPORTTIME)
    assert miss.returncode == 0, miss.stderr[-2000:]
    assert {"botocore", "click", "keyring"} <= imported_modules(miss.stderr)
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1
    assert json.loads(miss.stdout)["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"]

    hit = run_elevate("credential-process", "dev", python_options=IMPORTTIME)
    assert hit.returncode == 0 and hit.stdout == miss.stdout
    assert not [m for m in imported_modules(hit.stderr) if m.split(".")[0] in HEAVY]
    assert fake_sts.count("AssumeRole") == 1

    exported = run_elevate("export", "dev", "--format", "bash")
    assert exported.returncode == 0
    assert f"export AWS_ACCESS_KEY_ID='{fake_sts.issued[0]['AccessKeyId']}'\n" in exported.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["credential-process", "dev", "--no-cache"],
        ["credential-process", "dev", "-t", "123456"],
        ["--debug", "credential-process", "dev"],
        ["export", "dev", "--format", "nonsense"],
        ["export", "dev", "--token=123456"],
    ],
)
def test_the_fast_path_declines_anything_unusual(args: list[str]) -> None:
    write_config({"dev": DEV}, default="dev")
    seed()
    done = run_elevate(
        *args,
        python_options=IMPORTTIME,
        env=dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"),
    )
    assert "click" in imported_modules(done.stderr)  # the full CLI decided
