"""What the cache writes and what it refuses to read: private files from birth, where the
cache lives, refused cache directories, damaged and unsafe entries, a cache that cannot be
written.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support.cli import one_error_line, run_elevate
from support.configs import write_config
from support.constants import ROLE_PROD
from support.fakests import FakeSts
from support.realparts import require
from support.sessioncache import (
    DEV,
    DEV_PROFILE,
    Clock,
    Codes,
    FakeClient,
    MfaScript,
    cache_dir,
    elevator,
    entry_path,
    entry_path_of,
    files_containing,
    profile,
    seed,
)

from elevate import cache as cache_mod
from elevate.errors import CacheError, StsError
from elevate.models import SourceKeys
from elevate.store import FileStore

NOBODY = 65534


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
    assert {f.suffix for f in files} == {".json", ".lock", ".error", ".id"}  # .id: the key's fingerprint
    for path in files:
        info = path.lstat()
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600, path.name
        assert info.st_uid == os.geteuid()
    assert not [f for f in files if f.name.endswith(".tmp")]
    assert modes_at_fsync and set(modes_at_fsync) == {0o600}
    assert files_containing(creds.secret_access_key, directory) == [entry_path_of(DEV_PROFILE)]


def test_a_failed_write_keeps_the_old_entry_and_leaves_no_temp_file(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(cache_dir())
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
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k != "ELEVATE_CACHE_DIR"}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    first = run_elevate("credential-process", "dev", env=env)
    assert first.returncode == 0, first.stderr
    secret = json.loads(first.stdout)["SecretAccessKey"]
    assert [p.parent for p in files_containing(secret, runtime)] == [runtime / "elevate"]
    assert stat.S_IMODE((runtime / "elevate").stat().st_mode) == 0o700
    assert not cache_dir().exists() and not Path(os.environ["XDG_CACHE_HOME"]).exists()
    assert run_elevate("credential-process", "dev", env=env).stdout == first.stdout
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
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    directory = _make_unsafe_dir(kind, tmp_path, monkeypatch)
    for args in (["credential-process", "dev"], ["export", "dev", "--format", "bash"], ["status"]):
        message = one_error_line(run_elevate(*args))
        assert message.startswith(f"elevate: error: cache directory {directory} {REFUSED_DIRS[kind]}"), (
            message
        )
    # Refused before any secret was sent anywhere or any code was asked for.
    assert fake_sts.requests == [] and mfa.runs == 0


@pytest.mark.parametrize("kind", list(REFUSED_DIRS))
def test_unsafe_cache_directory_is_refused_by_the_core(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: SourceKeys
) -> None:
    write_config({"dev": DEV}, default="dev")
    _make_unsafe_dir(kind, tmp_path, monkeypatch)
    clock = Clock()
    client = FakeClient(clock)
    with pytest.raises(CacheError, match=re.escape(REFUSED_DIRS[kind])):
        elevator(clock, client).elevate(profile())
    assert client.calls == []


def test_a_cache_directory_that_is_a_file_is_refused(keys: SourceKeys) -> None:
    write_config({"dev": DEV}, default="dev")
    cache_dir().write_text("not a directory")
    message = one_error_line(run_elevate("credential-process", "dev"))
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
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    seeded = seed()
    path = entry_path()
    _damage(kind, path)

    done = run_elevate("credential-process", "dev")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1
    assert answer["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"] != seeded.access_key_id
    rewritten = cache_mod.decode(path.read_text())
    assert rewritten is not None and rewritten.access_key_id == answer["AccessKeyId"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(run_elevate("credential-process", "dev").stdout) == answer  # served now
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
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    seeded = seed()
    path = entry_path()
    expected = _make_unsafe_file(kind, path, tmp_path)
    before = os.lstat(path)

    for args in (["credential-process", "dev"], ["export", "dev", "--format", "json"]):
        done = run_elevate(*args)
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
    assert run_elevate("clear", "dev").returncode == 0
    assert run_elevate("credential-process", "dev").returncode == 0 and fake_sts.count("AssumeRole") == 1


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_non_file_in_place_of_an_entry_is_refused_without_a_traceback_or_a_hang(
    kind: str, fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    FileStore(cache_dir()).ensure()
    path = entry_path()
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path, 0o600)  # opening it for reading must not wait for a writer
    for args in (["credential-process", "dev"], ["export", "dev"], ["status", "dev"]):
        message = one_error_line(run_elevate(*args, timeout=20))
        assert (
            message
            == f"elevate: error: cache file {path} is not a regular file: remove it with `elevate clear`"
        )
    assert fake_sts.requests == [] and mfa.runs == 0

    cleared = run_elevate("clear", "dev")
    if kind == "directory":
        message = one_error_line(cleared)
        assert message == f"elevate: error: cannot remove {path} (Is a directory): remove it by hand"
        path.rmdir()
    else:
        assert cleared.returncode == 0 and cleared.stderr == "dev: cleared\n"
    assert run_elevate("credential-process", "dev").returncode == 0 and fake_sts.count("AssumeRole") == 1


def test_a_cache_that_cannot_be_written_is_an_elevate_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def read_only(*args: Any, **kwargs: Any) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    store = FileStore(cache_dir())
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
