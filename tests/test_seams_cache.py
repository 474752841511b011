"""Issue 21's cache seams: a replaced key never uses the old key's MFA session (21.5), the STS
endpoint from ~/.aws/config is part of the cache key and shown by --debug (21.6), the indexed hit
is non-dumpable before it reads a secret (21.7), and credentials shorter than the refresh window
are served while they last with a bounded refresh (21.12).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.cli import run_elevate
from support.configs import write_config
from support.fakests import FakeSts, fake_access_key_id
from support.hits import ROOT
from support.sessioncache import DEV, MfaScript, cache_dir, entry_path

from elevate import cache as cache_mod
from elevate import disk, hit, keystore
from elevate.core import status_of
from elevate.invocation import Invocation
from elevate.models import Profile, SourceKeys

# -- 21.5: the key is part of what names an MFA session; replacing it clears the key set -----------


def new_key_pair() -> tuple[str, str]:
    alphabet = string.ascii_letters + string.digits
    return fake_access_key_id("AKIA"), "".join(secrets.choice(alphabet) for _ in range(40))


def signer(fake_sts: FakeSts, action: str) -> str | None:
    return fake_sts.of(action)[-1].access_key_id


@pytest.fixture
def mfa_session_profile(keys: SourceKeys, mfa: MfaScript) -> Profile:
    write_config({"dev": {**DEV, "mfa_process": mfa.command, "mfa_session_seconds": 7200}}, default="dev")
    return Profile(name="dev", **{**DEV, "mfa_process": mfa.command, "mfa_session_seconds": 7200})


def test_keys_add_force_clears_the_key_sets_entries_and_mfa_session(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript, mfa_session_profile: Profile
) -> None:
    first = run_elevate("credential-process", "dev")
    assert first.returncode == 0, first.stderr
    assert mfa.runs == 1 and signer(fake_sts, "GetSessionToken") == keys.access_key_id
    key_id, secret = new_key_pair()
    added = run_elevate("keys", "add", "dev", "--force", stdin=f"{key_id}\n{secret}\n")
    assert added.returncode == 0, added.stderr
    assert json.loads(run_elevate("status", "--json").stdout)[0]["credentials"] is None
    again = run_elevate("credential-process", "dev")
    assert again.returncode == 0, again.stderr
    assert mfa.runs == 2  # a new code: the old key's MFA session is gone
    assert fake_sts.count("GetSessionToken") == 2 and signer(fake_sts, "GetSessionToken") == key_id
    assert json.loads(again.stdout)["AccessKeyId"] != json.loads(first.stdout)["AccessKeyId"]


def test_a_key_replaced_outside_elevate_never_signs_with_the_old_keys_mfa_session(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript, mfa_session_profile: Profile
) -> None:
    assert run_elevate("credential-process", "dev").returncode == 0
    key_id, secret = new_key_pair()
    keystore.put_keys("dev", SourceKeys(key_id, secret))  # the keyring edited by hand
    entry_path("dev").unlink()  # the role credentials ran out
    again = run_elevate("credential-process", "dev")
    assert again.returncode == 0, again.stderr
    assert mfa.runs == 2 and signer(fake_sts, "GetSessionToken") == key_id
    assert signer(fake_sts, "AssumeRole") != keys.access_key_id


@pytest.mark.parametrize("command", [["keys", "remove", "dev", "--yes"]])
def test_keys_remove_clears_the_key_sets_files(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript, mfa_session_profile: Profile, command: list[str]
) -> None:
    assert run_elevate("credential-process", "dev").returncode == 0
    prefix = cache_mod.entry_key(mfa_session_profile, Invocation.from_environ(os.environ))[:12]
    assert list(cache_dir().glob(f"{prefix}*.json"))
    assert run_elevate(*command).returncode == 0
    assert not list(cache_dir().glob(f"{prefix}*.json")) and not list(cache_dir().glob("keyset-*"))


# -- 21.6: an endpoint_url in ~/.aws/config ------------------------------------------------------------


def aws_config(text: str) -> None:
    path = Path(os.environ["AWS_CONFIG_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_an_endpoint_in_the_aws_config_is_part_of_the_key_and_shown_by_debug(
    fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    aws_config(f"[default]\nendpoint_url = {fake_sts.url}\n")
    first = run_elevate("--debug", "credential-process", "dev")
    assert first.returncode == 0, first.stderr
    assert fake_sts.count("AssumeRole") == 1  # botocore did use it
    assert f"STS endpoint {fake_sts.url} (" in first.stderr and "[default] endpoint_url" in first.stderr
    with FakeSts() as other:
        aws_config(f"[default]\nendpoint_url = {other.url}\n")
        moved = run_elevate("credential-process", "dev")
        assert moved.returncode == 0, moved.stderr
        assert other.count("AssumeRole") == 1  # not the first endpoint's credentials
        assert json.loads(moved.stdout)["AccessKeyId"] == other.issued[-1]["AccessKeyId"]
    aws_config("")  # removed: STS's own endpoint, which this test must never reach
    gone = run_elevate("credential-process", "dev", env=dict(os.environ, HTTPS_PROXY="http://127.0.0.1:9"))
    assert json.loads(first.stdout)["AccessKeyId"] not in gone.stdout


@pytest.mark.parametrize(
    ("config", "env"),
    [
        ("[default]\nendpoint_url = http://127.0.0.1:1\n", {}),
        ("[profile default]\nendpoint_url = http://127.0.0.1:2\n", {}),
        ("[default]\nservices = mine\n[services mine]\nsts =\n  endpoint_url = http://127.0.0.1:3\n", {}),
        ("[default]\nendpoint_url = http://127.0.0.1:1\n", {"AWS_ENDPOINT_URL": "http://127.0.0.1:4"}),
        ("[default]\nendpoint_url = http://127.0.0.1:1\n", {"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:5"}),
        ("[default]\nendpoint_url = http://127.0.0.1:1\n", {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}),
        ("[default]\nendpoint_url = http://127.0.0.1:1\nignore_configured_endpoint_urls = true\n", {}),
        ("[other]\nendpoint_url = http://127.0.0.1:6\n", {}),
    ],
)
def test_the_key_names_the_endpoint_botocore_uses(config: str, env: dict[str, str]) -> None:
    from elevate.aws import make_client

    aws_config(config)
    environ = dict(os.environ, **env)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        client = make_client(SourceKeys(*new_key_pair()), "eu-west-1")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    ours = Invocation.from_environ(environ).sts_endpoint[0] or "https://sts.eu-west-1.amazonaws.com"
    assert client.meta.endpoint_url == ours


# -- 21.12: credentials shorter than the refresh window --------------------------------------------------


@pytest.fixture
def short_sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSts]:
    """A fake STS whose credentials have 900 s left (its clock runs 2700 s behind)."""
    with FakeSts(clock=lambda: datetime.now(timezone.utc) - timedelta(seconds=2700)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        yield server


def test_short_credentials_are_served_while_they_last_with_one_warning(
    short_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    cold = run_elevate("credential-process", "dev")
    assert cold.returncode == 0, cold.stderr
    # Short credentials from a first elevation may be a one-off: the next call tries once more.
    first = run_elevate("credential-process", "dev")
    assert first.returncode == 0, first.stderr
    assert "expire within refresh_before_seconds (1200 s)" in first.stderr
    for _ in range(3):
        again = run_elevate("credential-process", "dev")
        assert again.returncode == 0 and again.stdout == first.stdout
        assert "expire within" not in again.stderr  # one warning
    assert short_sts.count("AssumeRole") == 2 and mfa.runs == 2  # no re-elevation on every call
    status = run_elevate("status", "dev")
    assert "shorter than the refresh window: served" in status.stdout
    # Once serve-until passes, one refresh; status said it would not be served.
    p = Profile(name="dev", **{**DEV, "mfa_process": mfa.command})
    later = datetime.now(timezone.utc) + timedelta(seconds=disk.SHORT_RETRY_SECONDS + 1)
    report = status_of(p, Invocation.from_environ(dict(os.environ)), now=later)
    assert report["credentials"]["served"] is False
    entry = entry_path("dev")
    data = json.loads(entry.read_text())
    entry.write_text(json.dumps({**data, "ServeUntil": int(time.time()) - 1}))
    refreshed = run_elevate("credential-process", "dev")
    assert refreshed.returncode == 0 and short_sts.count("AssumeRole") == 3


def test_the_readme_states_the_default_window_of_the_code() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"(default {disk.DEFAULT_REFRESH_BEFORE}:" in readme
    assert "(default 600)" not in readme


# -- 21.7: the indexed hit is non-dumpable before it reads a secret ------------------------------------------

READER = """
import json, os, subprocess, sys, time
argv, env = json.loads(sys.argv[1]), json.loads(sys.argv[2])
read_end, write_end = os.pipe()
os.set_blocking(write_end, False)
filled = 0
try:
    while True:
        filled += os.write(write_end, b"x" * 4096)
except BlockingIOError:
    pass
os.set_blocking(write_end, True)
child = subprocess.Popen(argv, stdout=write_end, stderr=subprocess.DEVNULL, env=env)
os.close(write_end)
deadline = time.monotonic() + 20
states = []
while time.monotonic() < deadline and states[-3:] != ["S", "S", "S"]:
    time.sleep(0.2)
    with open(f"/proc/{child.pid}/stat") as handle:
        states.append(handle.read().rsplit(")", 1)[1].split()[0])
with open(f"/proc/{child.pid}/wchan") as handle:
    wchan = handle.read()  # "0" when the process hides it (not dumpable)
try:
    os.close(os.open(f"/proc/{child.pid}/mem", os.O_RDONLY))
    readable = True
except PermissionError:
    readable = False
owner = os.stat(f"/proc/{child.pid}/mem").st_uid
data = b""
while chunk := os.read(read_end, 65536):
    data += chunk
child.wait()
answered = b'"SecretAccessKey"' in data[filled:]  # it was blocked holding the secret
seen = {"readable": readable, "state": states[-1], "wchan": wchan, "answered": answered, "mem_owner": owner}
print(json.dumps(seen))
"""


@pytest.fixture
def other_user() -> Iterator[str | None]:
    """A second local user when root (created and removed here), else None: run as ourselves."""
    if os.geteuid() != 0:
        yield None
        return
    if not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("root, but useradd or runuser is missing")
    name = f"elv{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, timeout=60)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, timeout=60)


def test_the_memory_of_a_blocked_hit_cannot_be_read_by_its_users_other_processes(
    other_user: str | None,
) -> None:
    """The hit's parent (same uid, so neither uid checks nor Yama stop it) opens /proc/PID/mem while
    the hit, having read the secret, is blocked writing it to a full pipe."""
    python = "/usr/bin/python3" if other_user else sys.executable
    if not os.path.exists(python):
        pytest.skip(f"{python} is missing")
    place = Path(tempfile.mkdtemp(prefix="elevate-dump-"))
    try:
        place.chmod(0o755)
        config, cache = place / "config.toml", place / "cache"
        config.write_text(
            f'[profiles.dev]\nrole_arn = "{DEV["role_arn"]}"\nmfa_serial = "{DEV["mfa_serial"]}"\n'
        )
        config.chmod(0o644)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(place), "ELEVATE_CONFIG": str(config),
               "ELEVATE_CACHE_DIR": str(cache), "AWS_CONFIG_FILE": str(place / "aws-config")}  # fmt: skip
        if other_user:  # before the index is recorded: chown changes the config's ctime, part of its key
            subprocess.run(["chown", "-R", other_user, str(place)], check=True, timeout=60)
        p = Profile(name="dev", role_arn=DEV["role_arn"], mfa_serial=DEV["mfa_serial"])
        store = cache_mod.files(Invocation.from_environ(env))
        store.ensure()
        expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
        from support.sessioncache import make_creds

        creds = make_creds(3600)
        creds = type(creds)(creds.access_key_id, creds.secret_access_key, creds.session_token, expires)
        cache_mod.SessionCache(store, store, cache_mod.utcnow).put(
            cache_mod.entry_key(p, Invocation.from_environ(env)), creds, "x"
        )
        as_user = [shutil.which("runuser") or "runuser", "-u", other_user, "--"] if other_user else []
        if other_user:
            subprocess.run(["chown", "-R", other_user, str(cache)], check=True, timeout=60)
        # Recorded as the user who runs the hit: we do not trust another user's config.
        module = hit.__name__.rsplit(".", 1)[1]
        record = (
            f"import os, sys; sys.path.insert(0, {str(ROOT)!r}); from elevate import {module} as h; "
            f"h.record(os.environ, None, 'dev', {cache_mod.entry_key(p, Invocation.from_environ(env))!r}, "
            f"{p.refresh_before_seconds}, {p.duration_seconds})"
        )
        subprocess.run([*as_user, python, "-I", "-c", record], env=env, check=True, timeout=60)
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from elevate.__main__ import main; main()"
        argv = [python, "-I", "-S", "-c", code, "credential-process", "dev"]
        reader = [*as_user, python, "-I", "-c", READER, json.dumps(argv), json.dumps(env)]
        done = subprocess.run(reader, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        seen = json.loads(done.stdout)
        assert seen["state"] == "S" and seen["answered"], seen  # blocked, the secret read
        assert seen["readable"] is False, seen
    finally:
        shutil.rmtree(place, ignore_errors=True)
