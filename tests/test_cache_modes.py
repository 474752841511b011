"""The cache modes: --no-cache neither reads nor writes, cache = "off" writes nothing
anywhere, cache = "keyring" keeps entries in the keyring instead of the directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from support.cli import run_elevate
from support.configs import write_config
from support.fakests import FakeSts
from support.sessioncache import (
    DEV,
    MfaScript,
    cache_dir,
    entry_path,
    files_containing,
    profile,
    seed,
)

from elevate import cache as cache_mod
from elevate import keystore
from elevate.invocation import Invocation
from elevate.models import SourceKeys

# -- cache modes and --no-cache ---------------------------------------------------------------


def test_no_cache_neither_reads_nor_writes(fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    seeded = seed()
    entry = entry_path()
    before = (entry.read_bytes(), entry.stat().st_mtime_ns)

    done = run_elevate("credential-process", "dev", "--no-cache")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"] != seeded.access_key_id
    assert (entry.read_bytes(), entry.stat().st_mtime_ns) == before
    assert files_containing(answer["SecretAccessKey"], cache_dir()) == []
    assert (
        files_containing(answer["SessionToken"], cache_dir(), Path(os.environ["ELEVATE_TEST_KEYRING_FILE"]))
        == []
    )

    exported = run_elevate("export", "dev", "--no-cache", "--format", "json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["AWS_ACCESS_KEY_ID"] == fake_sts.issued[1]["AccessKeyId"]
    assert fake_sts.count("AssumeRole") == 2 and entry.read_bytes() == before[0]


def test_no_cache_on_an_empty_cache_leaves_no_entry(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    done = run_elevate("credential-process", "dev", "--no-cache")
    assert done.returncode == 0, done.stderr
    assert not entry_path().exists()
    assert files_containing(json.loads(done.stdout)["SecretAccessKey"], cache_dir()) == []


def test_cache_off_writes_no_credentials_anywhere(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command, "cache": "off"}}, default="dev")
    answers = [run_elevate("credential-process", "dev") for _ in range(2)]
    assert [a.returncode for a in answers] == [0, 0], [a.stderr for a in answers]
    first, second = (json.loads(a.stdout) for a in answers)
    assert first["AccessKeyId"] != second["AccessKeyId"]
    assert fake_sts.count("AssumeRole") == 2 and mfa.runs == 2
    assert not entry_path().exists()
    keyring_file = Path(os.environ["ELEVATE_TEST_KEYRING_FILE"])
    for answer in (first, second):
        for secret in (answer["SecretAccessKey"], answer["SessionToken"]):
            assert files_containing(secret, cache_dir(), keyring_file) == []
    assert "cache:" not in keyring_file.read_text()
    assert run_elevate("status", "dev").stdout == "dev: cache off\n"


def test_cache_keyring_stores_in_the_keyring_and_not_in_the_directory(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command, "cache": "keyring"}}, default="dev")
    first = run_elevate("credential-process", "dev")
    second = run_elevate("credential-process", "dev")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1
    answer = json.loads(first.stdout)

    stored = json.loads(Path(os.environ["ELEVATE_TEST_KEYRING_FILE"]).read_text())
    entries = {k: v for k, v in stored.items() if k.startswith(f"{keystore.SERVICE}\0cache:")}
    assert list(entries) == [
        f"{keystore.SERVICE}\0cache:{cache_mod.entry_key(profile(), Invocation.from_environ(os.environ))}"
    ]
    in_keyring = cache_mod.decode(next(iter(entries.values())))
    assert in_keyring is not None and in_keyring.secret_access_key == answer["SecretAccessKey"]
    assert not entry_path().exists()
    assert files_containing(answer["SecretAccessKey"], cache_dir()) == []
    assert files_containing(answer["SessionToken"], cache_dir()) == []

    assert json.loads(run_elevate("status", "--json").stdout)[0]["credentials"]["seconds_left"] > 3500
    assert run_elevate("clear", "dev").stderr == "dev: cleared\n"
    assert "cache:" not in Path(os.environ["ELEVATE_TEST_KEYRING_FILE"]).read_text()
