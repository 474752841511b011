"""The session cache: private files, refused locations, damaged entries, freshness, reused
MFA codes, MFA sessions, status and clear, the cache modes and the import-light fast path.

The core is driven with an injected clock and fakes where timing matters; the CLI runs in
subprocesses (no controlling terminal) against the fake STS in tests/support/fakests.py,
or against moto where real STS semantics (GetSessionToken) matter.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional, Union

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from conftest import require
from support.cli import run_elevate
from support.fakests import FakeSts, fake_access_key_id, fake_secret
from support.provision import TRUST_POLICY, provision
from support.servers import free_port

from elevate import aws, keystore
from elevate import cache as cache_mod
from elevate.cli import cli
from elevate.config import load_config
from elevate.core import Elevator, status_of
from elevate.errors import CacheError, MfaError, StsError
from elevate.models import Profile, SessionCredentials, SourceKeys

EXAMPLE_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/dev"
ROLE_PROD = "arn:aws:iam::123456789012:role/prod"
SERIAL = "arn:aws:iam::123456789012:mfa/alice"
DEV: dict[str, Any] = {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev"}
NOBODY = 65534
HEAVY = ("boto3", "botocore", "keyring", "click")


# -- helpers ----------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ["ELEVATE_CACHE_DIR"])


def write_config(profiles: dict[str, dict[str, Any]], default: str = "dev") -> Path:
    """Write $ELEVATE_CONFIG; JSON string and integer literals are valid TOML."""
    lines = [f"default_profile = {json.dumps(default)}"]
    for name, values in profiles.items():
        lines.append(f"[profiles.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def profile(name: str = "dev") -> Profile:
    return load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles[name]


def entry_path(name: str = "dev") -> Path:
    return cache_mod.FileStore(cache_dir()).path(cache_mod.entry_key(profile(name)))


def entry_path_of(p: Profile) -> Path:
    return cache_mod.FileStore(cache_dir()).path(cache_mod.entry_key(p))


def make_creds(seconds: float, now: Optional[datetime] = None) -> SessionCredentials:
    start = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    return SessionCredentials(
        fake_access_key_id(), fake_secret(), fake_secret(300), start + timedelta(seconds=seconds)
    )


def seed(name: str = "dev", seconds: float = 3600) -> SessionCredentials:
    """Put a fresh entry for profile `name` in the file cache, as elevate would."""
    creds = make_creds(seconds)
    store = cache_mod.FileStore(cache_dir())
    cache_mod.SessionCache(store, store, cache_mod.utcnow).put(
        cache_mod.entry_key(profile(name)), creds, "seeded"
    )
    return creds


run = run_elevate


def one_error_line(done: subprocess.CompletedProcess[str], exit_code: int = 1) -> str:
    """Assert the CLI failed the documented way; return its message."""
    assert done.returncode == exit_code, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("elevate: error: "), done.stderr
    return lines[0]


def files_containing(secret: str, *places: Path) -> list[Path]:
    found = []
    for place in places:
        paths = [place] if place.is_file() else (list(place.rglob("*")) if place.exists() else [])
        found += [p for p in paths if p.is_file() and secret in p.read_text(errors="replace")]
    return found


def imported_modules(importtime_log: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_log.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


@pytest.fixture
def keys() -> SourceKeys:
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


@pytest.fixture
def mfa(tmp_path: Path) -> MfaScript:
    """An mfa_process that counts its runs and prints a new code each time."""
    script = tmp_path / "mfa-code"
    counter = tmp_path / "mfa-runs"
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
        environ=dict(os.environ),
        clock=clock,
        load_keys=lambda name: SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET),
        client_factory=lambda keys, region: client,
        code_source=codes or Codes(),
        notify=(messages.append if messages is not None else lambda message: None),
        warn=(messages.append if messages is not None else lambda message: None),
        lock_timeout=5,
    )


DEV_PROFILE = Profile(name="dev", role_arn=ROLE, mfa_serial=SERIAL, keys="dev")


# -- privacy of what is written ---------------------------------------------------------------


def test_every_file_is_0600_from_birth_and_the_directory_0700(monkeypatch: pytest.MonkeyPatch) -> None:
    # With umask 0 anything created with default permissions would be world-readable; and
    # fsync runs after the data is written but before the rename, so a mode seen there is
    # the mode the secret was born with (a chmod afterwards would come too late).
    modes_at_fsync: list[int] = []
    real_fsync = os.fsync

    def spying_fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):  # not the directory, fsynced after the rename
            modes_at_fsync.append(stat.S_IMODE(info.st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spying_fsync)
    clock = Clock()
    broken = dataclasses.replace(DEV_PROFILE, name="broken", role_arn=ROLE_PROD)
    previous = os.umask(0)
    try:
        codes = Codes()
        creds = elevator(clock, FakeClient(clock), codes).elevate(DEV_PROFILE)
        with pytest.raises(StsError):  # leaves a failure record for waiters
            denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")
            elevator(clock, FakeClient(clock, fail=denied), codes).elevate(broken)
    finally:
        os.umask(previous)

    directory = cache_dir()
    assert stat.S_IMODE(directory.lstat().st_mode) == 0o700
    files = sorted(directory.iterdir())
    assert {f.suffix for f in files} == {".json", ".lock", ".error"}
    for path in files:
        info = path.lstat()
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600, path.name
        assert info.st_uid == os.geteuid()
    assert not [f for f in files if f.name.endswith(".tmp")]
    assert modes_at_fsync and set(modes_at_fsync) == {0o600}
    assert files_containing(creds.secret_access_key, directory) == [entry_path_of(DEV_PROFILE)]


def test_a_failed_write_keeps_the_old_entry_and_leaves_no_temp_file(monkeypatch: pytest.MonkeyPatch) -> None:
    store = cache_mod.FileStore(cache_dir())
    store.write("entry", "old contents")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CacheError, match=r"cannot write the cache file .*No space left on device"):
        store.write("entry", "new contents")
    assert store.path("entry").read_text() == "old contents"
    assert [p.name for p in cache_dir().iterdir()] == ["entry.json"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"ELEVATE_CACHE_DIR": "/e", "XDG_RUNTIME_DIR": "/r", "XDG_CACHE_HOME": "/c", "HOME": "/h"}, "/e"),
        ({"XDG_RUNTIME_DIR": "/r", "XDG_CACHE_HOME": "/c", "HOME": "/h"}, "/r/elevate"),
        ({"XDG_CACHE_HOME": "/c", "HOME": "/h"}, "/c/elevate"),
        ({"HOME": "/h"}, "/h/.cache/elevate"),
        ({"ELEVATE_CACHE_DIR": "", "XDG_RUNTIME_DIR": "", "XDG_CACHE_HOME": "/c"}, "/c/elevate"),
    ],
)
def test_where_the_cache_lives(environ: dict[str, str], expected: str) -> None:
    assert cache_mod.cache_dir(environ) == Path(expected)


def test_the_cli_uses_xdg_runtime_dir_without_elevate_cache_dir(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k != "ELEVATE_CACHE_DIR"}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    first = run("credential-process", "dev", env=env)
    assert first.returncode == 0, first.stderr
    secret = json.loads(first.stdout)["SecretAccessKey"]
    assert [p.parent for p in files_containing(secret, runtime)] == [runtime / "elevate"]
    assert stat.S_IMODE((runtime / "elevate").stat().st_mode) == 0o700
    assert not cache_dir().exists() and not Path(os.environ["XDG_CACHE_HOME"]).exists()
    assert run("credential-process", "dev", env=env).stdout == first.stdout
    assert fake_sts.count("AssumeRole") == 1


# -- refused cache directories ----------------------------------------------------------------


def _make_unsafe_dir(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache directory holding a fresh entry for 'dev', made unsafe in one way."""
    directory = cache_dir()
    if kind == "symlink":
        real = tmp_path / "real-cache"
        monkeypatch.setenv("ELEVATE_CACHE_DIR", str(real))
        seed()
        monkeypatch.setenv("ELEVATE_CACHE_DIR", str(directory))
        directory.symlink_to(real, target_is_directory=True)
        return directory
    seed()
    if kind == "foreign owner":
        require(os.geteuid() == 0, "chown to another user needs root")
        os.chown(directory, NOBODY, NOBODY)
    elif kind == "group access":
        directory.chmod(0o750)
    elif kind == "world access":
        directory.chmod(0o703)
    return directory


REFUSED_DIRS = {
    "symlink": "is a symlink: refusing it",
    "foreign owner": f"belongs to another user (uid {NOBODY}): refusing it",
    "group access": "is open to group or others (mode 750): run `chmod 700",
    "world access": "is open to group or others (mode 703): run `chmod 700",
}


@pytest.mark.parametrize("kind", list(REFUSED_DIRS))
def test_unsafe_cache_directory_is_refused_by_the_cli(
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_sts: FakeSts,
    keys: SourceKeys,
    mfa: MfaScript,
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    directory = _make_unsafe_dir(kind, tmp_path, monkeypatch)
    for args in (["credential-process", "dev"], ["export", "dev", "--format", "bash"], ["status"]):
        message = one_error_line(run(*args))
        assert message.startswith(f"elevate: error: cache directory {directory} {REFUSED_DIRS[kind]}"), (
            message
        )
    # Refused before any secret was sent anywhere or any code was asked for.
    assert fake_sts.requests == [] and mfa.runs == 0


@pytest.mark.parametrize("kind", list(REFUSED_DIRS))
def test_unsafe_cache_directory_is_refused_by_the_core(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: SourceKeys
) -> None:
    write_config({"dev": DEV})
    _make_unsafe_dir(kind, tmp_path, monkeypatch)
    clock = Clock()
    client = FakeClient(clock)
    with pytest.raises(CacheError, match=re.escape(REFUSED_DIRS[kind])):
        elevator(clock, client).elevate(profile())
    assert client.calls == []


def test_a_cache_directory_that_is_a_file_is_refused(keys: SourceKeys) -> None:
    write_config({"dev": DEV})
    cache_dir().write_text("not a directory")
    message = one_error_line(run("credential-process", "dev"))
    assert f"cache directory {cache_dir()}" in message


# -- damaged and unsafe cache files -----------------------------------------------------------


def _damage(kind: str, path: Path) -> None:
    text = path.read_text()
    data = json.loads(text)
    if kind == "garbage":
        path.write_bytes(b"\x00\xff not json at all")
    elif kind == "truncated":
        path.write_text(text[: len(text) // 2])
    elif kind == "empty":
        path.write_text("")
    elif kind == "other version":
        path.write_text(json.dumps({**data, "version": 99}))
    elif kind == "hostile value":
        path.write_text(json.dumps({**data, "AccessKeyId": "ASIA'; touch /tmp/pwned #"}))
    elif kind == "naive expiration":
        path.write_text(json.dumps({**data, "Expiration": "2999-01-01T00:00:00"}))
    elif kind == "list":
        path.write_text("[1, 2, 3]")


@pytest.mark.parametrize(
    "kind", ["garbage", "truncated", "empty", "other version", "hostile value", "naive expiration", "list"]
)
def test_damaged_entry_is_a_miss_and_is_rewritten(
    kind: str, fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    seeded = seed()
    path = entry_path()
    _damage(kind, path)

    done = run("credential-process", "dev")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1
    assert answer["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"] != seeded.access_key_id
    rewritten = cache_mod.decode(path.read_text())
    assert rewritten is not None and rewritten.access_key_id == answer["AccessKeyId"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(run("credential-process", "dev").stdout) == answer  # served now
    assert fake_sts.count("AssumeRole") == 1


def _make_unsafe_file(kind: str, path: Path, tmp_path: Path) -> str:
    if kind == "foreign owner":
        require(os.geteuid() == 0, "chown to another user needs root")
        os.chown(path, NOBODY, NOBODY)
        return f"belongs to another user (uid {NOBODY}): refusing it"
    if kind == "world-readable":
        path.chmod(0o644)
        return "is readable by others (mode 644): its credentials may have leaked"
    if kind == "group-readable":
        path.chmod(0o640)
        return "is readable by others (mode 640)"
    if kind == "symlink":
        elsewhere = tmp_path / "planted.json"
        path.rename(elsewhere)
        path.symlink_to(elsewhere)
        return "cannot be read"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["foreign owner", "world-readable", "group-readable", "symlink"])
def test_unsafe_entry_file_is_never_served(
    kind: str, tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    seeded = seed()
    path = entry_path()
    expected = _make_unsafe_file(kind, path, tmp_path)
    before = os.lstat(path)

    for args in (["credential-process", "dev"], ["export", "dev", "--format", "json"]):
        done = run(*args)
        message = one_error_line(done)
        assert f"cache file {path}" in message and expected in message, message
        assert seeded.secret_access_key not in done.stderr
    assert fake_sts.requests == [] and mfa.runs == 0
    after = os.lstat(path)
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (
        before.st_mode,
        before.st_uid,
        before.st_mtime_ns,
    )
    # `elevate clear` is the documented way out, and then elevation works again.
    assert run("clear", "dev").returncode == 0
    assert run("credential-process", "dev").returncode == 0 and fake_sts.count("AssumeRole") == 1


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_non_file_in_place_of_an_entry_is_refused_without_a_traceback_or_a_hang(
    kind: str, fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    cache_mod.FileStore(cache_dir()).ensure()
    path = entry_path()
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path, 0o600)  # opening it for reading must not wait for a writer
    for args in (["credential-process", "dev"], ["export", "dev"], ["status", "dev"]):
        message = one_error_line(run(*args, timeout=20))
        assert (
            message
            == f"elevate: error: cache file {path} is not a regular file: remove it with `elevate clear`"
        )
    assert fake_sts.requests == [] and mfa.runs == 0

    cleared = run("clear", "dev")
    if kind == "directory":
        message = one_error_line(cleared)
        assert message == f"elevate: error: cannot remove {path} (Is a directory): remove it by hand"
        path.rmdir()
    else:
        assert cleared.returncode == 0 and cleared.stderr == "dev: cleared\n"
    assert run("credential-process", "dev").returncode == 0 and fake_sts.count("AssumeRole") == 1


@pytest.mark.parametrize("kind", ["directory", "symlink"])
def test_an_unusable_lock_file_is_one_line_not_a_traceback(
    kind: str, tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    lock = cache_mod.FileStore(cache_dir()).ensure() / f"{cache_mod.entry_key(profile())}.lock"
    if kind == "directory":
        lock.mkdir()
    else:
        lock.symlink_to(tmp_path / "elsewhere")
    for args in (["credential-process", "dev"], ["export", "dev", "--format", "json"]):
        message = one_error_line(run(*args))
        assert message.startswith(f"elevate: error: cannot open the lock file {lock} (")
        assert message.endswith("): remove it")
    assert fake_sts.requests == [] and mfa.runs == 0
    assert not (tmp_path / "elsewhere").exists()  # the symlink was not followed


def test_a_cache_that_cannot_be_written_is_an_elevate_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def read_only(*args: Any, **kwargs: Any) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    store = cache_mod.FileStore(cache_dir())
    store.ensure()
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(CacheError, match=r"cannot write the cache file .*: Read-only file system"):
        store.write("entry", "text")
    # The credentials STS gave are still handed out, with a warning.
    clock = Clock()
    messages: list[str] = []
    creds = elevator(clock, FakeClient(clock), messages=messages).elevate(DEV_PROFILE)
    assert creds.seconds_left(clock.now) == 3600
    assert [m for m in messages if m.startswith("the credentials were not cached: cannot write")]


# -- waiting for another process --------------------------------------------------------------


def test_a_waiter_says_so_and_gives_up_after_its_bound() -> None:
    clock = Clock()
    client = FakeClient(clock)
    messages: list[str] = []
    store = cache_mod.FileStore(cache_dir())
    holder = cache_mod.SessionCache(store, store, clock)
    with holder.locked(cache_mod.entry_key(DEV_PROFILE), on_wait=lambda: None):
        waiter = elevator(clock, client, messages=messages)
        waiter.lock_timeout = 0.3
        with pytest.raises(CacheError, match=r"waiting for another elevate process .*retry"):
            waiter.elevate(DEV_PROFILE)
    assert messages == ["waiting for the MFA prompt in another elevate process..."]
    assert client.calls == []
    # Released: the next caller does not wait and is not told anything about waiting.
    elevator(clock, client, messages=messages).elevate(DEV_PROFILE)
    assert len(messages) == 1 and client.count("AssumeRole") == 1


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


def test_cache_key_separates_role_serial_key_set_session_name_and_duration() -> None:
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
    ]
    codes = Codes()
    answers = [elevator(clock, client, codes).elevate(v) for v in variants]
    assert len({a.access_key_id for a in answers}) == len(variants)
    assert client.count("AssumeRole") == len(variants)
    # Same five values under another profile name (or region, cache window): the same entry.
    same = dataclasses.replace(base, name="alias", region="eu-west-1", refresh_before_seconds=300)
    assert elevator(clock, client, codes).elevate(same) == answers[0]
    assert client.count("AssumeRole") == len(variants)


def test_credential_process_reports_the_real_expiration(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command, "duration_seconds": 7200}})
    cold = run("credential-process", "dev")
    warm = run("credential-process", "dev")
    assert cold.returncode == warm.returncode == 0, cold.stderr + warm.stderr
    issued = fake_sts.issued[0]["Expiration"]
    assert json.loads(cold.stdout)["Expiration"] == json.loads(warm.stdout)["Expiration"] == issued
    assert fake_sts.last("AssumeRole")["DurationSeconds"] == "7200"


def test_entry_inside_the_refresh_window_is_refreshed_through_the_cli(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    stale = seed(seconds=300)  # fresh for 300 s, but refresh_before_seconds is 600
    done = run("credential-process", "dev")
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
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    key_id = fake_access_key_id()
    fake_sts.behave(
        "AssumeRole", body=hostile_assume_role(key_id) if hostile else "<AssumeRoleResponse><open>"
    )
    message = one_error_line(run("credential-process", "dev"))
    assert expected in message and "touch" not in message
    assert not entry_path().exists()
    assert files_containing(key_id, cache_dir()) == []
    fake_sts.reset("AssumeRole")
    done = run("credential-process", "dev")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"]


# -- an accepted MFA code is not sent twice ---------------------------------------------------


def test_the_same_token_twice_is_refused_without_calling_sts(fake_sts: FakeSts, keys: SourceKeys) -> None:
    write_config({"dev": DEV, "prod": {**DEV, "role_arn": ROLE_PROD}})
    first = run("credential-process", "dev", "-t", "123456")
    assert first.returncode == 0, first.stderr
    assert fake_sts.last("AssumeRole")["TokenCode"] == "123456"
    assert fake_sts.last("AssumeRole")["SerialNumber"] == SERIAL

    for args in (["prod", "-t", "123456"], ["dev", "--no-cache", "-t", "123 456"]):
        message = one_error_line(run("credential-process", *args))
        wait = re.search(
            r"already used and STS accepts each code once: wait (\d+) s for the next code", message
        )
        assert wait is not None, message
        assert 1 <= int(wait.group(1)) <= 30
    assert fake_sts.count("AssumeRole") == 1

    fresh = run("credential-process", "prod", "-t", "654321")
    assert fresh.returncode == 0, fresh.stderr
    assert fake_sts.count("AssumeRole") == 2


def test_a_code_used_elsewhere_is_explained_when_sts_refuses_it(
    fake_sts: FakeSts, keys: SourceKeys, tmp_path: Path
) -> None:
    write_config({"dev": DEV})
    assert run("credential-process", "dev", "-t", "123456").returncode == 0
    # Another machine (here: another cache directory) does not know the code was used.
    elsewhere = dict(os.environ, ELEVATE_CACHE_DIR=str(tmp_path / "other-cache"))
    message = one_error_line(run("credential-process", "dev", "-t", "123456", env=elsewhere))
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
    clock.advance(cache_mod.UsedCodes.KEEP_SECONDS)  # the code's window is over: forgotten
    elevator(clock, client).elevate(prod, token="111111")
    assert client.count("AssumeRole") == 2


# -- MFA sessions (GetSessionToken), end to end against moto ----------------------------------


class RecordingFactory:
    """The real client factory, recording which calls each kind of credentials made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, keys: Union[SourceKeys, SessionCredentials], region: str) -> Any:
        client = aws.make_client(keys, region)
        kind = "session" if isinstance(keys, SessionCredentials) else "long-term"
        calls = self.calls

        class Recorded:
            meta = client.meta

            def __getattr__(self, name: str) -> Any:
                calls.append((kind, name))
                return getattr(client, name)

        return Recorded()


def _role(endpoint: str, name: str) -> str:
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=EXAMPLE_ID,
        aws_secret_access_key=EXAMPLE_SECRET,
    )
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))["Role"]["Arn"]
        )


def test_mfa_session_mints_role_credentials_without_another_code(moto_env: str) -> None:
    user = provision(moto_env, user_name="cache-mfa-session")
    other_role = _role(moto_env, "CacheOtherRole")
    keystore.put_keys("ms", keystore.check_keys(user.access_key_id, user.secret_access_key))
    shared = {"mfa_serial": user.mfa_serial, "keys": "ms", "mfa_session_seconds": 7200}
    write_config(
        {
            "one": {"role_arn": user.role_arn, "duration_seconds": 3600, **shared},
            "two": {"role_arn": other_role, "duration_seconds": 1800, **shared},
            "three": {"role_arn": user.role_arn, "duration_seconds": 2700, **shared},
        },
        default="one",
    )
    totp_codes: list[str] = []

    def totp(profile: Profile, token: Optional[str]) -> str:
        totp_codes.append(user.totp().now())
        return totp_codes[-1]

    def no_code(profile: Profile, token: Optional[str]) -> str:
        raise AssertionError("no MFA code may be asked for while the MFA session lasts")

    recorder = RecordingFactory()
    first = Elevator(environ=dict(os.environ), client_factory=recorder, code_source=totp).elevate(
        profile("one")
    )
    assert len(totp_codes) == 1
    assert recorder.calls == [
        ("long-term", "get_session_token"),
        ("session", "get_caller_identity"),
        ("session", "assume_role"),
    ]

    recorder.calls.clear()
    second = Elevator(environ=dict(os.environ), client_factory=recorder, code_source=no_code).elevate(
        profile("two")
    )
    assert recorder.calls == [("session", "get_caller_identity"), ("session", "assume_role")]
    assert second.access_key_id != first.access_key_id
    assert 1700 < second.seconds_left(datetime.now(timezone.utc)) <= 1800

    # The same through the CLI, with no terminal and no mfa_process: only the MFA session can work.
    done = run("credential-process", "three")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"] not in (first.access_key_id, second.access_key_id)
    report = {item["profile"]: item for item in json.loads(run("status", "--json").stdout)}
    assert 7100 < report["one"]["mfa_session"]["seconds_left"] <= 7200
    assert report["three"]["credentials"]["seconds_left"] > 2600


def test_mfa_session_in_the_core_with_a_clock() -> None:
    clock = Clock()
    client = FakeClient(clock)
    codes = Codes()
    p = dataclasses.replace(DEV_PROFILE, mfa_session_seconds=7200)
    elevator(clock, client, codes).elevate(p)
    other = dataclasses.replace(p, name="prod", role_arn=ROLE_PROD)
    elevator(clock, client, codes).elevate(other)
    assert codes.calls == 1 and client.count("GetSessionToken") == 1
    assert "TokenCode" not in client.calls[-1][1]  # role credentials minted without a code
    # The session must outlive what it mints: with only the role's 3600 s left it is renewed.
    clock.advance(3600)
    elevator(clock, client, codes).elevate(other)
    assert codes.calls == 2 and client.count("GetSessionToken") == 2


# -- status and clear -------------------------------------------------------------------------


def _status_config() -> None:
    write_config({"dev": DEV, "prod": {**DEV, "role_arn": ROLE_PROD}, "quiet": {**DEV, "cache": "off"}})


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

    sub = run("status", "--json")
    assert sub.returncode == 0 and sub.stderr == ""
    assert json.loads(sub.stdout)[0]["profile"] == "dev"
    one = run("status", "prod")
    assert one.returncode == 0 and one.stdout == "prod: nothing cached\n"
    for output in (result.output, text.output, sub.stdout + sub.stderr):
        assert not [s for s in secrets_ if s in output]


def test_status_is_pure_and_counts_down() -> None:
    _status_config()
    creds = seed("dev", seconds=1000)
    now = creds.expiration - timedelta(seconds=250)
    listing_before = sorted(p.name for p in cache_dir().iterdir())
    described = status_of(profile("dev"), dict(os.environ), now=now)
    assert described["credentials"] == {"expiration": creds.expiration_iso(), "seconds_left": 250}
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
    everything = run("clear", "--all")
    assert everything.returncode == 0 and everything.stdout == ""
    assert everything.stderr.splitlines() == ["dev: cleared", "prod: cleared", "quiet: nothing cached"]
    assert not entry_path("dev").exists() and not entry_path("prod").exists()
    report = json.loads(run("status", "--json").stdout)
    assert [item["credentials"] for item in report] == [None, None, None]

    # No PROFILE: the default profile, as for export (issue 12).
    default = run("clear")
    assert default.returncode == 0 and default.stderr == "dev: nothing cached\n"


# -- cache modes and --no-cache ---------------------------------------------------------------


def test_no_cache_neither_reads_nor_writes(fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    seeded = seed()
    entry = entry_path()
    before = (entry.read_bytes(), entry.stat().st_mtime_ns)

    done = run("credential-process", "dev", "--no-cache")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"] != seeded.access_key_id
    assert (entry.read_bytes(), entry.stat().st_mtime_ns) == before
    assert files_containing(answer["SecretAccessKey"], cache_dir()) == []
    assert (
        files_containing(answer["SessionToken"], cache_dir(), Path(os.environ["ELEVATE_TEST_KEYRING_FILE"]))
        == []
    )

    exported = run("export", "dev", "--no-cache", "--format", "json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["AWS_ACCESS_KEY_ID"] == fake_sts.issued[1]["AccessKeyId"]
    assert fake_sts.count("AssumeRole") == 2 and entry.read_bytes() == before[0]


def test_no_cache_on_an_empty_cache_leaves_no_entry(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    done = run("credential-process", "dev", "--no-cache")
    assert done.returncode == 0, done.stderr
    assert not entry_path().exists()
    assert files_containing(json.loads(done.stdout)["SecretAccessKey"], cache_dir()) == []


def test_cache_off_writes_no_credentials_anywhere(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command, "cache": "off"}})
    answers = [run("credential-process", "dev") for _ in range(2)]
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
    assert run("status", "dev").stdout == "dev: cache off\n"


def test_cache_keyring_stores_in_the_keyring_and_not_in_the_directory(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command, "cache": "keyring"}})
    first = run("credential-process", "dev")
    second = run("credential-process", "dev")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1
    answer = json.loads(first.stdout)

    stored = json.loads(Path(os.environ["ELEVATE_TEST_KEYRING_FILE"]).read_text())
    entries = {k: v for k, v in stored.items() if k.startswith(f"{keystore.SERVICE}\0cache:")}
    assert list(entries) == [f"{keystore.SERVICE}\0cache:{cache_mod.entry_key(profile())}"]
    in_keyring = cache_mod.decode(next(iter(entries.values())))
    assert in_keyring is not None and in_keyring.secret_access_key == answer["SecretAccessKey"]
    assert not entry_path().exists()
    assert files_containing(answer["SecretAccessKey"], cache_dir()) == []
    assert files_containing(answer["SessionToken"], cache_dir()) == []

    assert json.loads(run("status", "--json").stdout)[0]["credentials"]["seconds_left"] > 3500
    assert run("clear", "dev").stderr == "dev: cleared\n"
    assert "cache:" not in Path(os.environ["ELEVATE_TEST_KEYRING_FILE"]).read_text()


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
def test_a_cache_hit_imports_neither_boto_keyring_nor_click(args: list[str]) -> None:
    config = write_config({"dev": DEV})
    creds = seed()
    # No keys stored and no reachable STS: anything but the cache would fail.
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    argv = [str(config) if a == "CONFIG" else a for a in args]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "elevate", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        stdin=subprocess.DEVNULL,
    )
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
    write_config({"dev": {**DEV, "mfa_process": mfa.command}})
    argv = [sys.executable, "-X", "importtime", "-m", "elevate", "credential-process", "dev"]
    quiet: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 60, "start_new_session": True}
    miss = subprocess.run(argv, stdin=subprocess.DEVNULL, **quiet)
    assert miss.returncode == 0, miss.stderr[-2000:]
    assert {"botocore", "click", "keyring"} <= imported_modules(miss.stderr)
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1
    assert json.loads(miss.stdout)["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"]

    hit = subprocess.run(argv, stdin=subprocess.DEVNULL, **quiet)
    assert hit.returncode == 0 and hit.stdout == miss.stdout
    assert not [m for m in imported_modules(hit.stderr) if m.split(".")[0] in HEAVY]
    assert fake_sts.count("AssumeRole") == 1

    exported = run("export", "dev", "--format", "bash")
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
    write_config({"dev": DEV})
    seed()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "elevate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"),
        stdin=subprocess.DEVNULL,
    )
    assert "click" in imported_modules(done.stderr)  # the full CLI decided
