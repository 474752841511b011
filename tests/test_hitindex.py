"""The indexed cache hit (elevate.hitindex): its import budget, its checks, and every abuse of
its inputs (config file and directory, index, entry, environment) falling through to the full path.
"""

from __future__ import annotations

import calendar
import json
import os
import random
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.fakests import fake_access_key_id, fake_secret

from elevate import cache as cache_mod
from elevate import hitindex, locks
from elevate.cli import cli
from elevate.config import load_config, parse_config
from elevate.errors import LockTimeout
from elevate.models import SessionCredentials
from elevate.store import FileStore

ROLE = "arn:aws:iam::123456789012:role/dev"
SERIAL = "arn:aws:iam::123456789012:mfa/alice"
# Sneaking any of these into a hit is what the budget exists to catch.
FORBIDDEN = {
    "pathlib", "dataclasses", "typing", "hashlib", "tomllib", "tomli", "inspect", "datetime",
    "elevate.config", "elevate.cache", "elevate.models", "elevate.fastpath", "elevate.errors",
    "click", "botocore", "boto3", "keyring",
}  # fmt: skip
OWN = {"elevate", "elevate.__main__", "elevate.hitindex"}
# What a hit is allowed to import besides Python's own start-up and elevate's two modules.
STDLIB_NEEDED = "import os, sys, stat, json, time, resource, collections.abc"


def imported(
    *argv: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or dict(os.environ),
        stdin=subprocess.DEVNULL,
    )
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return done, names


def write_config(extra: str = "") -> Path:
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'default_profile = "dev"\n[profiles.dev]\nrole_arn = "{ROLE}"\nmfa_serial = "{SERIAL}"\n{extra}'
    )
    return path


def entry_file() -> Path:
    profile = load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]
    return Path(os.environ["ELEVATE_CACHE_DIR"]) / f"{cache_mod.entry_key(profile)}.json"


def seed(seconds: float = 3600, key_id: str | None = None, secret: str | None = None) -> SessionCredentials:
    start = datetime.now(timezone.utc).replace(microsecond=0)
    creds = SessionCredentials(
        key_id or fake_access_key_id(),
        secret or fake_secret(),
        fake_secret(300),
        start + timedelta(seconds=seconds),
    )
    profile = load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]
    store = FileStore(Path(os.environ["ELEVATE_CACHE_DIR"]))
    cache_mod.SessionCache(store, store, cache_mod.utcnow).put(cache_mod.entry_key(profile), creds, "seeded")
    return creds


def index_it(profile: str | None = "dev") -> None:
    """Record the index the way the full path does after a validated parse."""
    p = load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]
    hitindex.record(
        os.environ, None, profile, cache_mod.entry_key(p), p.refresh_before_seconds, p.duration_seconds
    )


def serve(profile: str | None = "dev", env: dict[str, str] | None = None, now: float | None = None) -> Any:
    text = hitindex.serve_credential_process(None, profile, env or dict(os.environ), now or time.time())
    return None if text is None else json.loads(text)


@pytest.fixture
def indexed() -> SessionCredentials:
    write_config()
    creds = seed()
    index_it()
    assert serve()["SecretAccessKey"] == creds.secret_access_key
    return creds


# -- the import budget -----------------------------------------------------------------------


def test_an_indexed_hit_imports_nothing_outside_the_allow_list() -> None:
    write_config()
    creds = seed()
    first = subprocess.run(
        [sys.executable, "-m", "elevate", "credential-process", "dev"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr  # the fast path served it and wrote the index
    # As the console script calls it (pip's wrapper adds only `re`, which json imports anyway).
    script = (
        "import sys; from elevate.__main__ import main; sys.argv[1:] = ['credential-process', 'dev']; main()"
    )
    done, modules = imported("-c", script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        done.stdout == first.stdout and json.loads(done.stdout)["SecretAccessKey"] == creds.secret_access_key
    )
    _, startup = imported("-c", "pass")  # an editable install's finder loads pathlib at start-up
    _, baseline = imported("-c", STDLIB_NEEDED)
    assert "elevate.hitindex" in modules
    assert not sorted((modules - startup) & FORBIDDEN)
    assert not sorted(modules - baseline - OWN)


def test_the_budget_would_catch_a_heavy_import() -> None:
    """The comparison itself: pathlib or dataclasses imported on top of a hit show up."""
    _, baseline = imported("-c", STDLIB_NEEDED)
    _, heavier = imported("-c", STDLIB_NEEDED + ", dataclasses, hashlib")
    assert {"dataclasses", "hashlib"} <= heavier - baseline - OWN
    assert {"dataclasses", "hashlib"} <= heavier & FORBIDDEN


# -- what the hit checks ----------------------------------------------------------------------


def test_the_cli_indexes_after_a_validated_parse() -> None:
    write_config()
    creds = seed()
    assert serve() is None  # nothing indexed yet
    done = CliRunner().invoke(cli, ["credential-process", "dev"])
    assert done.exit_code == 0, done.output
    assert serve() == json.loads(done.output)
    assert serve()["AccessKeyId"] == creds.access_key_id
    index = Path(os.environ["ELEVATE_CACHE_DIR"]) / hitindex.INDEX_NAME
    assert oct(index.stat().st_mode & 0o777) == "0o600"
    assert creds.secret_access_key not in index.read_text()  # the index holds no secret


def test_the_answer_is_byte_for_byte_the_full_paths(indexed: SessionCredentials) -> None:
    from elevate import output

    text = hitindex.serve_credential_process(None, "dev", dict(os.environ), time.time())
    assert text == output.credential_process_json(indexed)


@pytest.mark.parametrize(("left", "served"), [(1199, False), (1200, False), (1260, True)])
def test_an_entry_needs_more_than_twenty_minutes_left(left: int, served: bool) -> None:
    write_config()
    seed(left)
    index_it()
    assert (serve() is not None) is served


def test_the_refresh_window_of_the_profile_counts_when_larger() -> None:
    write_config("refresh_before_seconds = 2400\n")
    seed(2000)
    index_it()
    assert serve() is None
    record = json.loads((Path(os.environ["ELEVATE_CACHE_DIR"]) / hitindex.INDEX_NAME).read_text())
    assert [r["refresh"] for r in record["records"].values()] == [2400]


def test_an_expiration_beyond_the_duration_is_a_lie() -> None:
    write_config()
    seed(3600 + 300 + 60)
    index_it()
    assert serve() is None


@pytest.mark.parametrize("key_id", ["AKIA" + "A" * 16, "ASIA" + "a" * 16, "ASIA$(reboot)AAAAAAAA"])
def test_only_temporary_well_shaped_key_ids_are_served(key_id: str) -> None:
    write_config()
    seed(3600)
    index_it()
    path = entry_file()
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "AccessKeyId": key_id}))
    assert serve() is None


def test_a_secret_with_shell_characters_is_refused(indexed: SessionCredentials) -> None:
    path = entry_file()
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "SecretAccessKey": "abc'; rm -rf ~; 'abcdefghijk"}))
    assert serve() is None


@pytest.mark.parametrize(
    "expiration", ["2999-01-01T00:00:00+00:00", "2999-13-01T00:00:00Z", "soon", 4102444800]
)
def test_a_strange_expiration_is_refused(indexed: SessionCredentials, expiration: object) -> None:
    path = entry_file()
    path.write_text(json.dumps({**json.loads(path.read_text()), "Expiration": expiration}))
    assert serve() is None


def test_the_expiration_parser_agrees_with_calendar() -> None:
    rng = random.Random(15)
    for _ in range(2000):
        moment = rng.randrange(0, 253402300799)
        text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
        assert hitindex.epoch_of(text) == calendar.timegm(time.gmtime(moment)) == moment


# -- abuse of the config and its directory ---------------------------------------------------------


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_a_config_others_can_write_is_not_trusted(indexed: SessionCredentials, mode: int) -> None:
    path = Path(os.environ["ELEVATE_CONFIG"])
    before = path.stat()
    path.chmod(mode)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # chmod keeps the index key
    assert serve() is None


def test_a_config_directory_others_can_write_is_not_trusted(indexed: SessionCredentials) -> None:
    directory = Path(os.environ["ELEVATE_CONFIG"]).parent
    directory.chmod(0o777)
    try:
        assert serve() is None
    finally:
        directory.chmod(0o755)


def test_a_symlink_to_a_writable_config_is_not_trusted(indexed: SessionCredentials, tmp_path: Path) -> None:
    real = Path(os.environ["ELEVATE_CONFIG"])
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    target = shared / "config.toml"
    target.write_bytes(real.read_bytes())
    link = real.parent / "link.toml"
    link.symlink_to(target)
    env = dict(os.environ, ELEVATE_CONFIG=str(link))
    # A record made earlier (load_config itself now refuses this config too, issue 11).
    p = parse_config(target.read_text(), link).profiles["dev"]
    hitindex.record(env, None, "dev", cache_mod.entry_key(p), p.refresh_before_seconds, p.duration_seconds)
    assert serve(env=env) is None  # its own directory is writable by others
    shared.chmod(0o755)
    target.chmod(0o666)
    assert serve(env=env) is None  # the file it points at is


def test_an_edited_config_misses(indexed: SessionCredentials) -> None:
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.write_text(path.read_text().replace("alice", "bob"))
    assert serve() is None


@pytest.mark.parametrize(
    "name",
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION", "ELEVATE_PROFILE"],
)
def test_the_environment_that_changes_the_answer_is_part_of_the_key(
    indexed: SessionCredentials, name: str
) -> None:
    assert serve(env=dict(os.environ, **{name: "http://127.0.0.1:1"})) is None


def test_another_profile_argument_misses(indexed: SessionCredentials) -> None:
    assert serve(profile="prod") is None
    assert serve(profile=None) is None  # the default: indexed on its own once the full path ran


# -- abuse of the index and the cache directory -------------------------------------------------


def index_path() -> Path:
    return Path(os.environ["ELEVATE_CACHE_DIR"]) / hitindex.INDEX_NAME


def test_an_index_others_can_read_is_ignored(indexed: SessionCredentials) -> None:
    index_path().chmod(0o644)
    assert serve() is None


def test_a_cache_directory_others_can_enter_is_ignored(indexed: SessionCredentials) -> None:
    index_path().parent.chmod(0o755)
    assert serve() is None


def test_a_symlinked_index_is_not_followed(indexed: SessionCredentials, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    os.replace(index_path(), elsewhere)
    index_path().symlink_to(elsewhere)
    assert serve() is None


def test_a_fifo_in_place_of_the_index_does_not_hang(indexed: SessionCredentials) -> None:
    index_path().unlink()
    os.mkfifo(index_path(), 0o600)
    started = time.monotonic()
    assert serve() is None
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("entry", ["../../home/x", "a/b", "", "x" * 65, None, 7])
def test_an_index_record_cannot_point_outside_the_cache(indexed: SessionCredentials, entry: object) -> None:
    data = json.loads(index_path().read_text())
    for record in data["records"].values():
        record["entry"] = entry
    index_path().write_text(json.dumps(data))
    assert serve() is None


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"version": 2, "records": {}}', '{"version": 1, "records": []}']
)
def test_a_damaged_index_misses_and_is_rewritten(indexed: SessionCredentials, text: str) -> None:
    index_path().write_text(text)
    assert serve() is None
    index_it()
    assert serve() is not None


def test_a_huge_index_is_not_read(indexed: SessionCredentials) -> None:
    with index_path().open("a") as handle:
        handle.write(" " * (hitindex.MAX_FILE_BYTES + 1))
    assert serve() is None


def test_the_index_keeps_a_bounded_number_of_records(indexed: SessionCredentials) -> None:
    for number in range(hitindex.MAX_RECORDS + 10):
        env = dict(os.environ, AWS_REGION=f"eu-west-{number}")
        p = load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]
        hitindex.record(env, None, "dev", cache_mod.entry_key(p), 0, 3600)
    assert len(json.loads(index_path().read_text())["records"]) == hitindex.MAX_RECORDS
    assert serve(env=dict(os.environ, AWS_REGION=f"eu-west-{hitindex.MAX_RECORDS + 9}")) is not None


@pytest.mark.parametrize(
    "argv",
    [
        ["credential-process", "dev", "--no-cache"],
        ["credential-process", "-t", "123456"],
        ["--debug", "credential-process"],
        ["export", "dev"],
        ["credential-process", "dev", "extra"],
        ["credential-process", ""],
    ],
)
def test_anything_but_the_plain_form_is_not_indexed(argv: list[str]) -> None:
    assert hitindex.parse_argv(argv) is None


# -- waiting on the lock ------------------------------------------------------------------------


def hold_lock(path: Path, seconds: float) -> subprocess.Popen[bytes]:
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    return holder


def test_a_waiter_sleeps_until_the_holder_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = hold_lock(path, 1.0)
    told: list[bool] = []
    fd = locks.open_lock(path)
    try:
        started, cpu = time.monotonic(), time.process_time()
        locks.acquire(fd, 30, lambda: told.append(True), path)
        waited, used = time.monotonic() - started, time.process_time() - cpu
    finally:
        os.close(fd)
        holder.wait(10)
    assert told == [True]
    assert 0.5 < waited < 5
    assert used < 0.05  # asleep in the kernel, not spinning


def test_a_waiter_gives_up_at_its_deadline(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = hold_lock(path, 5.0)
    fd = locks.open_lock(path)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="gave up after"):
            locks.acquire(fd, 0.5, lambda: None, path)
        assert 0.4 < time.monotonic() - started < 3
    finally:
        os.close(fd)
        holder.kill()
        holder.wait(10)


def test_a_waiter_off_the_main_thread_polls_and_still_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = hold_lock(path, 0.5)
    result: list[object] = []

    def wait() -> None:
        fd = locks.open_lock(path)
        try:
            locks.acquire(fd, 30, lambda: None, path)
            result.append("locked")
        except Exception as exc:  # reported to the main thread
            result.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=wait)
    thread.start()
    thread.join(20)
    holder.wait(10)
    assert result == ["locked"]


def test_an_in_place_rewrite_with_its_mtime_put_back_misses(indexed: SessionCredentials) -> None:
    """Same inode, same size, mtime restored (cp -p, rsync -t, touch -r): only ctime tells."""
    path = Path(os.environ["ELEVATE_CONFIG"])
    before = path.stat()
    text = path.read_text()
    edited = text.replace("alice", "bobby") if "alice" in text else text.replace("dev", "dew")
    assert len(edited) == len(text) and edited != text
    time.sleep(0.01)
    with open(path, "r+") as handle:  # in place: the inode stays
        handle.write(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert after.st_ino == before.st_ino and after.st_size == before.st_size
    assert after.st_mtime_ns == before.st_mtime_ns
    assert serve() is None


@pytest.mark.parametrize(
    ("explicit", "environ"),
    [
        (None, {"HOME": "/h"}),
        (None, {"HOME": "/h", "XDG_CONFIG_HOME": "/x"}),
        (None, {"HOME": "/h", "ELEVATE_CONFIG": "~/e.toml"}),
        ("rel/c.toml", {"HOME": "/h", "ELEVATE_CONFIG": "/e.toml"}),
        (None, {"HOME": "/h", "ELEVATE_CACHE_DIR": "~/c", "XDG_RUNTIME_DIR": "/run/u"}),
        (None, {"HOME": "/h", "XDG_RUNTIME_DIR": "/run/u", "XDG_CACHE_HOME": "/ch"}),
        (None, {"HOME": "/h", "XDG_CACHE_HOME": "/ch"}),
    ],
)
def test_the_hit_path_finds_the_same_config_and_cache_as_the_full_path(
    explicit: str | None, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hit keeps string copies of the two location rules (no pathlib there): they must agree."""
    from elevate.config import config_path

    monkeypatch.setenv("HOME", environ["HOME"])  # expanduser reads the process's HOME
    assert hitindex.config_file(explicit, environ) == str(config_path(explicit, environ).absolute())
    assert hitindex.cache_dir(environ) == str(cache_mod.cache_dir(environ))
