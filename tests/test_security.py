"""Hostile endpoints, faults and signals end cleanly; secrets never reach argv; attribution.

Each case runs the real CLI in a subprocess against a fake STS on 127.0.0.1 and checks the
same contract: a defined exit code, at most one line on stderr and no traceback, nothing on
stdout on failure, nothing executed, nothing invalid or half-written in the cache, and the
previous good cache entry still usable.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import cast
from xml.sax.saxutils import escape

import pytest
from support.cli import elevate_argv, one_error_line, run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE, SERIAL
from support.fakests import NAMESPACE, FakeSts, fake_access_key_id, fake_secret

from elevate import cache, keystore
from elevate.config import load_config
from elevate.invocation import Invocation
from elevate.models import SessionCredentials
from elevate.store import FileStore

LONG_TERM = keystore.check_keys(EXAMPLE_ID, EXAMPLE_SECRET)
_codes = iter(range(100000, 999999, 7919))


def next_code() -> str:
    return str(next(_codes))


@pytest.fixture
def sts(tmp_path: Path) -> Iterator[FakeSts]:
    write_config({"dev": {"role_arn": ROLE, "mfa_serial": SERIAL, "region": "eu-west-1"}})
    keystore.put_keys("dev", LONG_TERM)
    with FakeSts() as fake:
        os.environ["AWS_ENDPOINT_URL"] = fake.url
        try:
            yield fake
        finally:
            del os.environ["AWS_ENDPOINT_URL"]


run = run_elevate


def cache_files() -> list[str]:
    directory = Path(os.environ["ELEVATE_CACHE_DIR"])
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def credential_entries() -> list[str]:
    profile = load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]
    key = cache.entry_key(profile, Invocation.from_environ(os.environ))
    return [name for name in cache_files() if name == f"{key}.json"]


def body(key_id: str, secret: str, token: str, expiration: str) -> str:
    creds = {
        "AccessKeyId": key_id,
        "SecretAccessKey": secret,
        "SessionToken": token,
        "Expiration": expiration,
    }
    inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in creds.items())
    return (
        f'<AssumeRoleResponse xmlns="{NAMESPACE}"><AssumeRoleResult><Credentials>{inner}</Credentials>'
        "<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/R/alice</Arn>"
        "<AssumedRoleId>AROAEXAMPLE:alice</AssumedRoleId></AssumedRoleUser></AssumeRoleResult>"
        "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>"
    )


def later(hours: int = 1) -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


GOOD_ID, GOOD_SECRET, GOOD_TOKEN = fake_access_key_id(), fake_secret(), fake_secret(300)
HOSTILE = {
    "key id with command substitution": body("ASIA$(touch MARKER)", GOOD_SECRET, GOOD_TOKEN, later()),
    "secret breaking out of quotes": body(
        GOOD_ID, "x'; touch MARKER; echo '" + "A" * 20, GOOD_TOKEN, later()
    ),
    "token with newline and export": body(
        GOOD_ID, GOOD_SECRET, "AAAA\nexport X=$(touch MARKER)" + "A" * 20, later()
    ),
    "token with backticks": body(GOOD_ID, GOOD_SECRET, "`touch MARKER`" + "A" * 30, later()),
    "huge secret (1 MiB)": body(GOOD_ID, "A" * (1 << 20), GOOD_TOKEN, later()),
    "key id with NUL reference": body(GOOD_ID, GOOD_SECRET, GOOD_TOKEN, later()).replace(
        GOOD_ID, "ASIA&#0;" + "A" * 16
    ),
    "malformed XML": '<AssumeRoleResponse xmlns="x"><AssumeRoleResult><Credentials><AccessKeyId>',
    "empty body": "",
    "HTML instead of XML": "<html><body>captive portal</body></html>",
    "expiration not a date": body(GOOD_ID, GOOD_SECRET, GOOD_TOKEN, "tomorrow"),
    "expiration in the past": body(GOOD_ID, GOOD_SECRET, GOOD_TOKEN, "2001-01-01T00:00:00Z"),
    "credentials missing": body(GOOD_ID, GOOD_SECRET, GOOD_TOKEN, later()).replace(
        "Credentials>", "Nothing>"
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("command", [["credential-process"], ["export", "--format", "bash"]])
def test_hostile_endpoint_is_refused(sts: FakeSts, tmp_path: Path, case: str, command: list[str]) -> None:
    sts.behave("AssumeRole", body=HOSTILE[case])
    done = run(*command, "dev", "-t", next_code(), cwd=str(tmp_path))
    line = one_error_line(done)
    assert "AssumeRole" in line or "STS" in line or "answer" in line, line
    assert not (tmp_path / "MARKER").exists()
    assert credential_entries() == []
    assert GOOD_SECRET not in done.stderr and GOOD_TOKEN not in done.stderr


@pytest.mark.parametrize("fmt", ["bash", "zsh", "fish", "powershell", "dotenv", "json"])
def test_hostile_value_refused_in_every_format(sts: FakeSts, tmp_path: Path, fmt: str) -> None:
    sts.behave("AssumeRole", body=HOSTILE["secret breaking out of quotes"])
    one_error_line(run("export", "dev", "--format", fmt, "-t", next_code(), cwd=str(tmp_path)))
    assert not (tmp_path / "MARKER").exists()


def test_expiration_without_time_zone_is_read_as_utc_or_refused(sts: FakeSts) -> None:
    naive = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    sts.behave("AssumeRole", body=body(GOOD_ID, GOOD_SECRET, GOOD_TOKEN, naive))
    done = run("credential-process", "dev", "-t", next_code())
    if done.returncode == 0:  # botocore reads a zone-less ISO time as UTC
        assert json.loads(done.stdout)["Expiration"] == naive + "Z"
    else:
        assert "time zone" in one_error_line(done)


@pytest.mark.parametrize(
    ("status", "code", "message", "expected", "attempts"),
    [
        (500, "InternalFailure", "oops", "InternalFailure", 3),
        (503, "ServiceUnavailable", "busy", "ServiceUnavailable", 3),
        (400, "Throttling", "Rate exceeded", "throttling", 3),
        (
            403,
            "SignatureDoesNotMatch",
            "Signature expired: 20260101T000000Z is now earlier",
            "clock is off",
            1,
        ),
        (
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            "invalid or deactivated",
            1,
        ),
    ],
)
def test_server_faults_bounded_and_explained(
    sts: FakeSts, status: int, code: str, message: str, expected: str, attempts: int
) -> None:
    sts.behave("GetCallerIdentity", error=(status, code, message))
    started = time.monotonic()
    line = one_error_line(run("credential-process", "dev", "-t", next_code()))
    assert expected in line
    assert sts.count("GetCallerIdentity") == attempts
    assert time.monotonic() - started < 30
    assert sts.count("AssumeRole") == 0  # no MFA code was spent on a failing endpoint


def test_connection_reset(sts: FakeSts) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def reset_everything() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()  # RST

    thread = threading.Thread(target=reset_everything, daemon=True)
    thread.start()
    try:
        env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{listener.getsockname()[1]}")
        line = one_error_line(run("credential-process", "dev", "-t", next_code(), env=env))
        assert "cannot reach STS" in line
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_dns_failure(sts: FakeSts) -> None:
    env = dict(os.environ, AWS_ENDPOINT_URL="http://sts.does-not-exist.invalid")
    line = one_error_line(run("credential-process", "dev", "-t", next_code(), env=env))
    assert "cannot reach STS at http://sts.does-not-exist.invalid" in line


def test_slow_endpoint_times_out(sts: FakeSts) -> None:
    """A read timeout ends in one line; the real client's bound is checked in test_sts."""
    import botocore.config
    import botocore.session

    from elevate import aws as sts_mod
    from elevate import core
    from elevate.errors import StsError

    def impatient_client(keys: sts_mod.Keys, region: str) -> sts_mod.StsClient:
        client = sts_mod.make_client(keys, region)
        config = client.meta.config.merge(
            botocore.config.Config(read_timeout=0.3, retries={"total_max_attempts": 1})
        )
        session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        impatient = session.create_client(
            "sts",
            region_name=region,
            aws_access_key_id=LONG_TERM.access_key_id,
            aws_secret_access_key=LONG_TERM.secret_access_key,
            config=config,
        )
        return cast(sts_mod.StsClient, impatient)  # botocore adds its operations at run time

    sts.behave("GetCallerIdentity", delay=2)
    profile = load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]
    elevator = core.Elevator(
        invocation=Invocation.from_environ(dict(os.environ)),
        client_factory=impatient_client,
        notify=lambda m: None,
    )
    with pytest.raises(StsError, match=r"cannot reach STS .*ReadTimeoutError"):
        elevator.elevate(profile, token=next_code(), use_cache=False)


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_keyring_failing_mid_operation(sts: FakeSts, fail_at: int) -> None:
    env = dict(os.environ, ELEVATE_TEST_KEYRING_FAIL_AT=str(fail_at))
    line = one_error_line(
        run(
            "keys",
            "add",
            "other",
            stdin=f"{LONG_TERM.access_key_id}\n{LONG_TERM.secret_access_key}\n",
            timeout=30,
            env=env,
        )
    )
    assert "keyring failed (BackendFailure: " in line  # with its real cause
    # Elevation with a keyring that fails on its first use.
    env["ELEVATE_TEST_KEYRING_FAIL_AT"] = "1"
    line = one_error_line(run("credential-process", "dev", "-t", next_code(), env=env))
    assert "keyring" in line
    stored = keystore.get_keys("dev")  # the stored key is untouched
    assert (stored.access_key_id, stored.secret_access_key) == (
        LONG_TERM.access_key_id,
        LONG_TERM.secret_access_key,
    )


def _no_file_writes() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # every write fails with EFBIG, like a full disk


def test_full_disk_still_hands_out_credentials(sts: FakeSts) -> None:
    Path(os.environ["ELEVATE_CACHE_DIR"]).mkdir(mode=0o700)
    done = run("credential-process", "dev", "-t", next_code(), preexec_fn=_no_file_writes)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"].startswith("ASIA")
    assert "warning: the credentials were not cached: cannot write the cache file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not [n for n in cache_files() if n.endswith(".tmp")]
    assert credential_entries() == []


def test_cache_dir_that_is_a_file(sts: FakeSts) -> None:
    Path(os.environ["ELEVATE_CACHE_DIR"]).write_text("not a directory")
    line = one_error_line(run("credential-process", "dev", "-t", next_code()))
    assert "cache directory" in line


def good_entry(seconds_left: int) -> tuple[Path, bytes, SessionCredentials]:
    profile = load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]
    creds = SessionCredentials(
        fake_access_key_id(),
        fake_secret(),
        fake_secret(200),
        datetime.now(timezone.utc) + timedelta(seconds=seconds_left),
    )
    store = FileStore(cache.cache_dir(os.environ))
    cache.SessionCache(store, store, cache.utcnow).put(
        cache.entry_key(profile, Invocation.from_environ(os.environ)), creds, "dev"
    )
    path = store.path(cache.entry_key(profile, Invocation.from_environ(os.environ)))
    return path, path.read_bytes(), creds


def test_failed_refresh_serves_previous_good_entry(sts: FakeSts) -> None:
    path, before, creds = good_entry(300)  # inside the 600 s refresh window
    sts.behave("AssumeRole", error=(500, "InternalFailure", "down"))
    done = run("credential-process", "dev", "-t", next_code())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"] == creds.access_key_id
    assert "could not refresh" in done.stderr and "Traceback" not in done.stderr
    assert path.read_bytes() == before


def _mfa_script(tmp_path: Path) -> Path:
    script = tmp_path / "slow-mfa"
    script.write_text(
        f"#!/bin/sh\necho $$ > {tmp_path}/mfa.pid\n"
        f"while [ ! -e {tmp_path}/go ]; do sleep 0.05; done\necho 123456\n"
    )
    script.chmod(0o755)
    return script


def _wait_for(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text().strip()


@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
@pytest.mark.parametrize("step", ["mfa_process", "sts"])
def test_signal_at_each_step(sts: FakeSts, tmp_path: Path, signum: int, exit_code: int, step: str) -> None:
    path, before, _ = good_entry(300)
    config = Path(os.environ["ELEVATE_CONFIG"])
    config.write_text(config.read_text() + f'mfa_process = "{_mfa_script(tmp_path)}"\n')
    gate = threading.Event()
    if step == "sts":
        (tmp_path / "go").write_text("")
        sts.behave("AssumeRole", gate=gate)
    # Popen, not run_elevate: the test signals elevate while it waits.
    proc = subprocess.Popen(
        elevate_argv("credential-process", "dev"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        if step == "mfa_process":
            _wait_for(tmp_path / "mfa.pid")
        else:
            sts.wait_for("AssumeRole")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        gate.set()
        (tmp_path / "go").write_text("")
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == exit_code, err
    assert out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not [n for n in cache_files() if n.endswith(".tmp")]
    assert path.read_bytes() == before  # the previous good entry is untouched
    if step == "mfa_process":
        pid = int((tmp_path / "mfa.pid").read_text())
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "mfa_process outlived elevate"
    # The lock was released: the next call is served from the (still good) entry at once.
    again = run("credential-process", "dev", timeout=20)
    assert again.returncode == 0, again.stderr


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_secrets_never_in_argv_or_mfa_process_environment(sts: FakeSts, tmp_path: Path) -> None:
    require_proc = Path("/proc/self/cmdline").exists()
    if not require_proc:
        pytest.skip("no /proc here")
    config = Path(os.environ["ELEVATE_CONFIG"])
    config.write_text(config.read_text() + f'mfa_process = "{_mfa_script(tmp_path)}"\n')
    # Popen, not run_elevate: the test reads elevate's /proc entries while it runs.
    proc = subprocess.Popen(
        elevate_argv("credential-process", "dev"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        mfa_pid = _wait_for(tmp_path / "mfa.pid")
        seen = {
            "elevate argv": Path(f"/proc/{proc.pid}/cmdline").read_bytes(),
            "mfa_process argv": Path(f"/proc/{mfa_pid}/cmdline").read_bytes(),
            "mfa_process environment": Path(f"/proc/{mfa_pid}/environ").read_bytes(),
        }
        (tmp_path / "go").write_text("")
        out, err = proc.communicate(timeout=20)
    finally:
        (tmp_path / "go").write_text("")
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    issued = json.loads(out)
    for where, raw in seen.items():
        for secret in (LONG_TERM.secret_access_key, issued["SecretAccessKey"], issued["SessionToken"]):
            assert secret.encode() not in raw, where
    # exec: the command's argv carries no secret either (they are in its environment only).
    done = run("exec", "dev", "--", "sh", "-c", "cat /proc/$$/cmdline")
    assert done.returncode == 0
    assert issued["SecretAccessKey"] not in done.stdout and "SECRET" not in done.stdout


@pytest.mark.parametrize(
    ("user", "expected"),
    [("alice", "alice"), ("first.last+ops@corp", "first.last+ops@corp"), ("o'brien x", "o-brien-x")],
)
def test_attribution_session_name_and_source_identity_are_the_user(
    tmp_path: Path, user: str, expected: str
) -> None:
    write_config({"dev": {"role_arn": ROLE, "mfa_serial": SERIAL}})
    keystore.put_keys("dev", LONG_TERM)
    with FakeSts(user_name=user) as fake:
        done = run(
            "credential-process", "dev", "-t", next_code(), env=dict(os.environ, AWS_ENDPOINT_URL=fake.url)
        )
        assert done.returncode == 0, done.stderr
        sent = fake.last("AssumeRole")
    assert sent["RoleSessionName"] == expected
    assert sent["SourceIdentity"] == expected
    assert sent["SerialNumber"] == SERIAL and sent["DurationSeconds"] == "3600"
    assert fake.of("GetCallerIdentity")[0].access_key_id == LONG_TERM.access_key_id


def test_configured_names_override_attribution(sts: FakeSts) -> None:
    config = Path(os.environ["ELEVATE_CONFIG"])
    config.write_text(config.read_text() + 'role_session_name = "alice-laptop"\nsource_identity = "alice"\n')
    done = run("credential-process", "dev", "-t", next_code())
    assert done.returncode == 0, done.stderr
    assert sts.last("AssumeRole")["RoleSessionName"] == "alice-laptop"
    assert sts.last("AssumeRole")["SourceIdentity"] == "alice"
    assert sts.count("GetCallerIdentity") == 0


@pytest.mark.parametrize("path", ["fast path", "full CLI"])
@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_waiting_for_another_process(
    sts: FakeSts, signum: int, exit_code: int, path: str
) -> None:
    import fcntl

    profile = load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]
    directory = FileStore(cache.cache_dir(os.environ)).ensure()
    with open(
        directory / f"{cache.entry_key(profile, Invocation.from_environ(os.environ))}.lock", "w"
    ) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another elevate is "prompting"
        # Popen, not run_elevate: the test signals elevate while it waits for the lock.
        proc = subprocess.Popen(
            elevate_argv("credential-process", "dev", *(["-t", next_code()] if path == "full CLI" else [])),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            assert proc.stderr is not None
            assert "waiting for the MFA prompt in another elevate process" in proc.stderr.readline()
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == exit_code
    assert out == "" and "Traceback" not in err
    assert sts.count("AssumeRole") == 0
