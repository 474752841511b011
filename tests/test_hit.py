"""The indexed cache hit (elevate.hit) and the on-disk contract it shares with the full path
(elevate.disk): the import budget of the lean hit, agreement with the full path on every
freshness setting and trust refusal, the entry parser held to json by a property test, and
every abuse of its inputs (config file and directory, index, entry, environment) falling through.
"""

from __future__ import annotations

import calendar
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support.fakests import fake_access_key_id, fake_secret
from support.hits import (
    LEAN,
    ROOT,
    dev,
    entry_file,
    imported,
    index_it,
    index_path,
    seed,
    serve,
    write_config,
)

from elevate import cache as cache_mod
from elevate import disk, hit
from elevate.cli import cli
from elevate.config import parse_config
from elevate.errors import CacheError, ConfigError
from elevate.invocation import Invocation
from elevate.models import SessionCredentials, parse_utc

# Sneaking any of these into a hit is what the budget exists to catch.
FORBIDDEN = {
    "pathlib", "dataclasses", "typing", "hashlib", "tomllib", "tomli", "inspect", "datetime", "json",
    "re", "enum", "contextlib", "signal", "collections.abc", "ctypes", "os", "_collections_abc",
    "elevate.config", "elevate.cache", "elevate.models", "elevate.errors", "elevate.locks",
    "click", "botocore", "boto3", "keyring",
}  # fmt: skip
# What the lean hit may import beyond `python -I -S -c pass`: elevate's four modules (hostos, the
# platform's answers, imports only sys, stat and posix), resource (core limit), time and _ctypes
# (prctl). Not os: hostos answers as os.path does without it.
LEAN_ALLOWED = {
    "elevate", "elevate.__main__", "elevate.hit", "elevate.disk", "elevate.hostos", "__future__",
    "stat", "_stat", "resource", "time", "_ctypes",
}  # fmt: skip


@pytest.fixture
def indexed() -> SessionCredentials:
    write_config()
    creds = seed()
    index_it()
    assert serve()["SecretAccessKey"] == creds.secret_access_key
    return creds


# -- the import budget -----------------------------------------------------------------------


def test_the_lean_hit_imports_only_its_allow_list(indexed: SessionCredentials) -> None:
    done, modules = imported([*LEAN, "credential-process", "dev"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["SecretAccessKey"] == indexed.secret_access_key
    _, startup = imported([sys.executable, "-I", "-S", "-c", "pass"])
    assert "elevate.hit" in modules
    assert not sorted(modules - startup - LEAN_ALLOWED)
    assert not sorted((modules - startup) & FORBIDDEN)


def test_the_hit_through_the_console_script_adds_nothing_but_elevate(indexed: SessionCredentials) -> None:
    """As pip's console script runs it: its wrapper imports re and sys; the hit adds only its own."""
    script = "import re, sys; from elevate.__main__ import main; sys.argv[1:] = ['credential-process', 'dev']"
    script += "; main()"
    done, modules = imported([sys.executable, "-c", script])
    assert done.returncode == 0, done.stderr[-2000:]
    _, baseline = imported([sys.executable, "-c", "import re, sys"])
    assert not sorted(modules - baseline - LEAN_ALLOWED)


def test_the_budget_would_catch_a_heavy_import() -> None:
    _, baseline = imported([sys.executable, "-I", "-S", "-c", "pass"])
    _, heavier = imported([sys.executable, "-I", "-S", "-c", "import json, signal"])
    assert {"json", "signal", "enum"} <= heavier - baseline - LEAN_ALLOWED


def test_the_hit_is_answered_by_the_index_and_matches_the_full_path(indexed: SessionCredentials) -> None:
    from elevate import output

    text = hit.serve(None, "dev", dict(os.environ), time.time())
    assert text == output.credential_process_json(indexed)


def test_the_cli_indexes_after_a_validated_parse() -> None:
    write_config()
    creds = seed()
    assert serve() is None  # nothing indexed yet
    done = CliRunner().invoke(cli, ["credential-process", "dev"])
    assert done.exit_code == 0, done.output
    assert serve() == json.loads(done.output)
    assert serve()["AccessKeyId"] == creds.access_key_id
    assert oct(index_path().stat().st_mode & 0o777) == "0o600"
    assert creds.secret_access_key not in index_path().read_text()  # the index holds no secret


# -- freshness: the hit and the full path agree --------------------------------------------------


def full_path_serves(now: float) -> bool:
    from datetime import datetime, timezone

    p = dev()
    store = cache_mod.files(Invocation.from_environ(dict(os.environ)))
    cache = cache_mod.SessionCache(store, store, lambda: datetime.fromtimestamp(now, timezone.utc))
    return (
        cache.get(
            cache_mod.entry_key(p, Invocation.from_environ(os.environ)),
            p.refresh_before_seconds,
            p.duration_seconds,
        )
        is not None
    )


@pytest.mark.parametrize("refresh", [None, 0, 300, 1199, 1200, 1201, 2400])
@pytest.mark.parametrize("left", [59, 61, 299, 301, 899, 901, 1199, 1201, 1260, 2399, 2401, 3600, 3961])
def test_hit_and_full_path_agree_on_every_freshness_setting(refresh: int | None, left: int) -> None:
    write_config("" if refresh is None else f"refresh_before_seconds = {refresh}\n")
    seed(3600)
    index_it()
    expires = parse_utc(json.loads(entry_file().read_text())["Expiration"]).timestamp()
    now = expires - left
    assert (serve(now=now) is not None) == full_path_serves(now)
    assert (serve(now=now) is not None) == (left > dev().refresh_before_seconds and left <= 3900)


def test_the_300_second_window_is_served_by_the_index_with_the_index_untouched() -> None:
    """Issue 22: refresh_before_seconds = 300 and 900 s left once missed the index on every call
    (it demanded 1200) and rewrote hits.json with an fsync each time."""
    write_config("refresh_before_seconds = 300\n")
    creds = seed(900)
    first = subprocess.run(
        [*LEAN, "credential-process", "dev"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert first.returncode == 0, first.stderr
    before = index_path().stat()
    for _ in range(3):
        done, modules = imported([*LEAN, "credential-process", "dev"])
        assert done.returncode == 0 and json.loads(done.stdout)["AccessKeyId"] == creds.access_key_id
        assert "elevate.cli" not in modules and "elevate.cache" not in modules  # the index answered
    after = index_path().stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )


def test_a_rerecord_of_the_same_answer_does_not_rewrite_the_index(indexed: SessionCredentials) -> None:
    before = index_path().stat()
    index_it()
    after = index_path().stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_short_credentials_are_served_until_their_serve_until_then_refreshed() -> None:
    """Issue 21.12: credentials with less life than the refresh window are served while they
    last, with a refresh at most every SHORT_RETRY_SECONDS, by the hit and the full path."""
    write_config()  # refresh 1200
    now = time.time()
    seed(900, serve_until=int(now) + disk.SHORT_RETRY_SECONDS)
    index_it()
    assert serve(now=now) is not None and full_path_serves(now)
    later = now + disk.SHORT_RETRY_SECONDS + 1
    assert serve(now=later) is None and not full_path_serves(later)


def test_an_expiration_beyond_the_duration_is_a_lie() -> None:
    write_config()
    seed(3600 + 300 + 60)
    index_it()
    assert serve() is None and not full_path_serves(time.time())


# -- trust: the hit and the full path refuse the same things --------------------------------------


def full_path_refuses(env: dict[str, str] | None = None) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "elevate", "--debug", "status", "dev"],
        capture_output=True, text=True, timeout=60, env=env or dict(os.environ), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return done.returncode != 0


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_a_config_others_can_write_is_refused_by_both(indexed: SessionCredentials, mode: int) -> None:
    path = Path(os.environ["ELEVATE_CONFIG"])
    before = path.stat()
    path.chmod(mode)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert serve() is None and full_path_refuses()


def test_a_config_directory_others_can_write_is_refused_by_both(indexed: SessionCredentials) -> None:
    directory = Path(os.environ["ELEVATE_CONFIG"]).parent
    directory.chmod(0o777)
    try:
        assert serve() is None and full_path_refuses()
    finally:
        directory.chmod(0o755)


def test_a_symlink_to_a_writable_config_is_refused_by_both(
    indexed: SessionCredentials, tmp_path: Path
) -> None:
    real = Path(os.environ["ELEVATE_CONFIG"])
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    target = shared / "config.toml"
    target.write_bytes(real.read_bytes())
    link = real.parent / "link.toml"
    link.symlink_to(target)
    env = dict(os.environ, ELEVATE_CONFIG=str(link))
    p = parse_config(target.read_text(), link).profiles["dev"]
    hit.record(
        env,
        None,
        "dev",
        cache_mod.entry_key(p, Invocation.from_environ(os.environ)),
        p.refresh_before_seconds,
        p.duration_seconds,
    )
    assert serve(env=env) is None and full_path_refuses(env)
    shared.chmod(0o755)
    target.chmod(0o666)
    assert serve(env=env) is None and full_path_refuses(env)


@pytest.mark.parametrize("problem", ["open", "symlink"])
def test_a_cache_directory_others_can_enter_is_refused_by_both(
    indexed: SessionCredentials, problem: str, tmp_path: Path
) -> None:
    directory = Path(os.environ["ELEVATE_CACHE_DIR"])
    if problem == "open":
        directory.chmod(0o755)
        env = dict(os.environ)
    else:
        link = tmp_path / "linked-cache"
        link.symlink_to(directory)
        env = dict(os.environ, ELEVATE_CACHE_DIR=str(link))
    assert serve(env=env) is None
    with pytest.raises(CacheError):
        cache_mod.files(Invocation.from_environ(env)).read(
            cache_mod.entry_key(dev(), Invocation.from_environ(env))
        )


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_an_entry_others_can_read_is_refused_by_both(indexed: SessionCredentials, mode: int) -> None:
    entry_file().chmod(mode)
    assert serve() is None
    with pytest.raises(CacheError):
        cache_mod.files(Invocation.from_environ(dict(os.environ))).read(
            cache_mod.entry_key(dev(), Invocation.from_environ(os.environ))
        )


def test_the_config_rules_live_in_one_place(tmp_path: Path) -> None:
    """config.read_trusted and the hit take their verdicts from elevate.disk."""
    from elevate.config import read_trusted

    path = write_config()
    path.chmod(0o666)
    assert disk.trusted_config(str(path)) is None
    with pytest.raises(ConfigError, match="writable by group or others"):
        read_trusted(path)


# -- the entry parser against json --------------------------------------------------------------


def json_decoder(text: str, role: bool = True) -> tuple[str, str, str, str] | None:
    """The full decoder of the old code: json, then the documented shapes as regular expressions."""
    import re

    key = r"ASIA[A-Z0-9]{12,124}" if role else r"(?:ASIA|AKIA)[A-Z0-9]{12,124}"
    shapes = (key, r"[A-Za-z0-9/+=]{16,256}", r"[A-Za-z0-9/+=]{16,16384}")
    try:
        data = json.loads(text)
        if data.get("version") != 1:
            return None
        values = (data["AccessKeyId"], data["SecretAccessKey"], data["SessionToken"])
        if not all(
            isinstance(v, str) and re.fullmatch(s, v, re.ASCII) for v, s in zip(values, shapes, strict=True)
        ):
            return None
        parse_utc(data["Expiration"])
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["Expiration"], re.ASCII):
            return None
        return (*values, data["Expiration"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


KEYISH = st.text(alphabet="ASIKA0123456789BCZaz", min_size=10, max_size=40)
SECRETISH = st.text(alphabet='Aaz09/+=-_ "\\', min_size=10, max_size=40)
EXPIRY = st.one_of(
    st.datetimes(
        min_value=__import__("datetime").datetime(1, 1, 1),
        max_value=__import__("datetime").datetime(9999, 12, 31),
    ).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.text(min_size=18, max_size=22),
)


@settings(max_examples=400, deadline=None)
@given(
    key_id=st.one_of(KEYISH.map(lambda s: "ASIA" + s), KEYISH.map(lambda s: "AKIA" + s), KEYISH),
    secret=SECRETISH,
    token=SECRETISH,
    expiration=EXPIRY,
    label=st.text(max_size=30),
    serve_until=st.integers(min_value=0, max_value=10**12),
    role=st.booleans(),
)
def test_the_cheap_parser_accepts_exactly_what_json_accepts_of_every_written_entry(
    key_id: str, secret: str, token: str, expiration: str, label: str, serve_until: int, role: bool
) -> None:
    text = disk.encode_entry(key_id, secret, token, expiration, label, serve_until)
    cheap = disk.decode_entry(text, role)
    full = json_decoder(text, role)
    assert (cheap[:4] if cheap else None) == full
    if cheap is not None:
        assert cheap[5] == serve_until


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_the_cheap_parser_never_accepts_what_json_refuses(data: st.DataObject) -> None:
    """Any edit of a valid entry (a character inserted, dropped or changed): never looser than json."""
    text = disk.encode_entry(
        fake_access_key_id(), fake_secret(), fake_secret(40), "2030-01-01T00:00:00Z", "x y"
    )
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        edit = data.draw(st.sampled_from(["insert", "drop", "change"]))
        char = data.draw(st.characters(codec="utf-8"))
        if edit == "insert":
            text = text[:at] + char + text[at:]
        elif edit == "drop":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at + 1 :]
    cheap = disk.decode_entry(text)
    if cheap is not None:
        assert json_decoder(text) == cheap[:4]


def test_the_expiration_parser_agrees_with_calendar() -> None:
    rng = random.Random(15)
    for _ in range(2000):
        moment = rng.randrange(0, 253402300799)
        text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
        assert disk.epoch_of(text) == calendar.timegm(time.gmtime(moment)) == moment
    assert disk.epoch_of("2026-02-29T00:00:00Z") is None and disk.epoch_of("2028-02-29T00:00:00Z") is not None


@pytest.mark.parametrize("key_id", ["AKIA" + "A" * 16, "ASIA" + "a" * 16, "ASIA$(reboot)AAAAAAAA"])
def test_only_temporary_well_shaped_key_ids_are_served(key_id: str) -> None:
    write_config()
    seed(3600)
    index_it()
    data = json.loads(entry_file().read_text())
    entry_file().write_text(json.dumps({**data, "AccessKeyId": key_id}))
    assert serve() is None


@pytest.mark.parametrize(
    "expiration", ["2999-01-01T00:00:00+00:00", "2999-13-01T00:00:00Z", "soon", 4102444800]
)
def test_a_strange_expiration_is_refused(indexed: SessionCredentials, expiration: object) -> None:
    entry_file().write_text(json.dumps({**json.loads(entry_file().read_text()), "Expiration": expiration}))
    assert serve() is None


# -- abuse of the config, the index and the cache directory --------------------------------------


def test_an_edited_config_misses(indexed: SessionCredentials) -> None:
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.write_text(path.read_text().replace("alice", "bob"))
    assert serve() is None


def test_an_in_place_rewrite_with_its_mtime_put_back_misses(indexed: SessionCredentials) -> None:
    path = Path(os.environ["ELEVATE_CONFIG"])
    before = path.stat()
    text = path.read_text()
    edited = text.replace("alice", "bobby")
    time.sleep(0.01)
    with open(path, "r+") as handle:
        handle.write(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert serve() is None


@pytest.mark.parametrize(
    "name",
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION", "ELEVATE_PROFILE",
     "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_CONFIG_FILE"],
)  # fmt: skip
def test_the_environment_that_changes_the_answer_is_part_of_the_key(
    indexed: SessionCredentials, name: str
) -> None:
    assert serve(env=dict(os.environ, **{name: "http://127.0.0.1:1"})) is None


def test_an_edited_aws_config_misses(indexed: SessionCredentials) -> None:
    """Issue 21.6: an endpoint_url in ~/.aws/config decides which STS answers."""
    aws = Path(os.environ["AWS_CONFIG_FILE"])
    aws.parent.mkdir(parents=True, exist_ok=True)
    aws.write_text("[default]\nendpoint_url = http://127.0.0.1:9\n")
    assert serve() is None


def test_another_profile_argument_misses(indexed: SessionCredentials) -> None:
    assert serve(profile="prod") is None
    assert serve(profile=None) is None


def test_an_index_others_can_read_is_ignored(indexed: SessionCredentials) -> None:
    index_path().chmod(0o644)
    assert serve() is None


def test_a_symlinked_index_is_not_followed(indexed: SessionCredentials, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    os.replace(index_path(), elsewhere)
    index_path().symlink_to(elsewhere)
    assert serve() is None


def test_a_fifo_in_place_of_the_index_does_not_hang(indexed: SessionCredentials) -> None:
    index_path().unlink()
    os.mkfifo(index_path(), 0o600)
    started = time.monotonic()
    assert serve() is None
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("entry", ["../../home/x", "a/b", "", "x" * 65, "a\tb"])
def test_an_index_record_cannot_point_outside_the_cache(indexed: SessionCredentials, entry: str) -> None:
    lines = index_path().read_text().split("\n")
    fields = lines[1].split("\t")
    fields[1] = entry
    lines[1] = "\t".join(fields)
    index_path().write_text("\n".join(lines))
    assert serve() is None


@pytest.mark.parametrize("text", ["{", "", "elevate hit index 1\n", "elevate hit index 2\nx\ty\n"])
def test_a_damaged_index_misses_and_is_rewritten(indexed: SessionCredentials, text: str) -> None:
    index_path().write_text(text)
    assert serve() is None
    index_it()
    assert serve() is not None


def test_a_huge_index_is_not_read(indexed: SessionCredentials) -> None:
    with index_path().open("a") as handle:
        handle.write(" " * (disk.MAX_FILE_BYTES + 1))
    assert serve() is None


def test_the_index_keeps_a_bounded_number_of_records(indexed: SessionCredentials) -> None:
    for number in range(hit.MAX_RECORDS + 10):
        env = dict(os.environ, AWS_REGION=f"eu-west-{number}")
        hit.record(env, None, "dev", cache_mod.entry_key(dev(), Invocation.from_environ(env)), 0, 3600)
    assert len(index_path().read_text().splitlines()) == hit.MAX_RECORDS + 1


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
    assert hit.parse_argv(argv) is None


@pytest.mark.parametrize(
    ("explicit", "environ"),
    [
        (None, {"HOME": "/h"}),
        (None, {"HOME": "/h", "XDG_CONFIG_HOME": "/x"}),
        (None, {"HOME": "/h", "ELEVATE_CONFIG": "~/e.toml"}),
        ("rel/c.toml", {"HOME": "/h", "ELEVATE_CONFIG": "/e.toml"}),
    ],
)
def test_the_config_path_rule_is_one(
    explicit: str | None, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from elevate.config import config_path

    monkeypatch.setenv("HOME", environ["HOME"])
    assert str(config_path(explicit, environ)) == disk.config_path(explicit, environ)


def test_export_is_served_by_the_full_cli(indexed: SessionCredentials) -> None:
    """The fast path is gone: export pays a normal start-up and answers from the same cache."""
    done = subprocess.run(
        [sys.executable, "-m", "elevate", "export", "dev", "--format", "bash"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"export AWS_ACCESS_KEY_ID='{indexed.access_key_id}'" in done.stdout
    assert ROOT.exists()
