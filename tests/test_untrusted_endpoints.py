"""Issue 11: nothing an endpoint or another process does may turn against elevate's user.

Hostile STS answers, endpoint-bound cache entries, forged terminal text and huge bodies,
SDK refresh windows, dying parents, stepped-back clocks, SIGQUIT and ptrace: each test
plays the attack against the real CLI (or the core) and checks the outcome.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.cli import one_error_line, run_elevate
from support.fakests import FakeSts, fake_access_key_id, fake_secret
from support.untrusted import SERIAL, config_path
from support.untrusted import write_marked_config as write_config

from elevate import cache, core
from elevate.config import load_config
from elevate.invocation import Invocation
from elevate.models import SessionCredentials, SourceKeys
from elevate.ui import printable
from elevate.usedcodes import UsedCodes

# --- 2. STS answers that would poison the cache ------------------------------------------------


def assume_role_body(key_id: str, expiration: str) -> str:
    return (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
        f"<Credentials><AccessKeyId>{key_id}</AccessKeyId><SecretAccessKey>{fake_secret()}"
        f"</SecretAccessKey><SessionToken>{fake_secret(300)}</SessionToken><Expiration>{expiration}"
        "</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/dev/alice"
        "</Arn><AssumedRoleId>AROAEXAMPLE:alice</AssumedRoleId></AssumedRoleUser></AssumeRoleResult>"
        "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>"
    )


def soon(seconds: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("key_id", "expiration", "expected"),
    [
        (fake_access_key_id("ASIA"), "9999-12-31T23:59:59Z", "longer than the 3600 s asked for"),
        (fake_access_key_id("ASIA"), soon(3600 + 3600), "longer than the 3600 s asked for"),
        (fake_access_key_id("AKIA"), soon(3600), "long-term access key (AKIA...)"),
    ],
)
def test_hostile_sts_answers_are_refused_and_never_cached(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys, key_id: str, expiration: str, expected: str
) -> None:
    write_config(tmp_path)
    fake_sts.behave("AssumeRole", body=assume_role_body(key_id, expiration))
    assert expected in one_error_line(run_elevate("credential-process", "dev"))
    cached = list(Path(os.environ["ELEVATE_CACHE_DIR"]).glob("*.json"))
    assert all(key_id not in p.read_text() for p in cached)
    fake_sts.reset("AssumeRole")
    time.sleep(core.SDK_FAILURE_MEMORY_SECONDS)  # the same client asking at once is told the same
    done = run_elevate("credential-process", "dev")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"].startswith("ASIA")


def test_an_answer_within_duration_and_allowance_is_accepted(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    write_config(tmp_path)
    key_id = fake_access_key_id("ASIA")
    fake_sts.behave("AssumeRole", body=assume_role_body(key_id, soon(3600 + 200)))
    done = run_elevate("credential-process", "dev")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"] == key_id


def test_a_poisoned_cache_entry_is_not_served(tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys) -> None:
    """An entry planted (or left by an old elevate) that is valid for ever is treated as damaged."""
    write_config(tmp_path)
    profile = load_config(config_path()).profiles["dev"]
    store = cache.files(Invocation.from_environ(os.environ))
    forever = SessionCredentials(
        fake_access_key_id(), fake_secret(), fake_secret(300), datetime(9999, 12, 31, tzinfo=timezone.utc)
    )
    sessions = cache.SessionCache(store, store, cache.utcnow)
    key = cache.entry_key(profile, Invocation.from_environ(os.environ))
    sessions.put(key, forever, "planted")
    assert sessions.get(key, 0) == forever  # control: without the bound it would be served
    assert sessions.get(key, 0, profile.duration_seconds) is None
    done = run_elevate("credential-process", "dev")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["AccessKeyId"] != forever.access_key_id
    assert fake_sts.count("AssumeRole") == 1


def test_credentials_from_one_endpoint_are_not_served_for_another(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    write_config(tmp_path)
    first = run_elevate("credential-process", "dev")
    assert first.returncode == 0, first.stderr
    with FakeSts() as other:
        env = {**os.environ, "AWS_ENDPOINT_URL": other.url}
        second = run_elevate("credential-process", "dev", env=env)
        assert second.returncode == 0, second.stderr
        assert other.count("AssumeRole") == 1
    assert json.loads(first.stdout)["AccessKeyId"] != json.loads(second.stdout)["AccessKeyId"]
    again = run_elevate("credential-process", "dev")  # back at the first: its own entry
    assert json.loads(again.stdout)["AccessKeyId"] == json.loads(first.stdout)["AccessKeyId"]
    assert fake_sts.count("AssumeRole") == 1


def test_region_is_part_of_the_entry_key(tmp_path: Path) -> None:
    write_config(tmp_path)
    profile = load_config(config_path()).profiles["dev"]
    base = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
    keys_by_region = {
        cache.entry_key(profile, Invocation.from_environ({**base, "AWS_REGION": r}))
        for r in ("eu-west-1", "us-east-1")
    }
    assert len(keys_by_region) == 2


# --- 4. text from an endpoint is printable, one line, bounded --------------------------------


def test_an_error_message_cannot_forge_lines_or_control_the_terminal(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    write_config(tmp_path)
    # XML carries newlines, C1 controls and bidi overrides (not C0 controls such as ESC).
    forged = "denied\nelevate: all good, credentials cached\u202e\x9b2J\u2066"
    fake_sts.behave("AssumeRole", error=(403, "AccessDenied", forged))
    line = one_error_line(run_elevate("credential-process", "dev"))
    assert "\u202e" not in line and "\x9b" not in line and "\u2066" not in line
    assert "\\u202e" in line and "\\x9b" in line


def test_a_huge_answer_is_refused_without_reading_it_all(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    write_config(tmp_path)
    fake_sts.behave("AssumeRole", body=b"<x>" + b"A" * (200 << 20) + b"</x>")
    # VmHWM (peak resident memory of this process image; unlike ru_maxrss it is not
    # inherited from the forking test process) read as elevate exits.
    script = textwrap.dedent(
        """
        import runpy, sys
        sys.argv = ["elevate", "credential-process", "dev"]
        try:
            runpy.run_module("elevate", run_name="__main__")
        finally:
            with open("/proc/self/status") as status:
                peak = [line for line in status if line.startswith("VmHWM:")][0].split()[1]
            sys.stderr.write(f"peak-kib {peak}\\n")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )
    error = [x for x in done.stderr.splitlines() if x.startswith("elevate: error:")]
    assert done.returncode == 1 and len(error) == 1, done.stderr
    assert "KiB" in error[0]
    peak_kib = int(done.stderr.rsplit("peak-kib ", 1)[1].split()[0])
    assert peak_kib < 150 * 1024, f"peak RSS {peak_kib} KiB: the body was read into memory"


def test_printable_folds_escapes_and_caps() -> None:
    assert printable("a\r\nb") == "a | b"
    assert printable("x\u2066y\x00z\x7f") == "x\\u2066y\\x00z\\x7f"
    assert printable("é ü 中") == "é ü 中"
    assert len(printable("x" * 10000, 100)) == 103


# --- 11. refresh windows: a long-running SDK client runs elevate rarely ----------------------


def test_a_long_running_boto3_client_runs_elevate_at_most_twice_per_credential(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    """botocore refreshes on every access once credentials have under 15 minutes left. The
    first credentials STS hands out here have 800 s left: elevate must not keep serving them."""
    import boto3

    write_config(tmp_path)
    runs = tmp_path / "elevate-runs"
    wrapper = tmp_path / "elevate-counted"
    wrapper.write_text(f"#!/bin/sh\necho run >> '{runs}'\nexec '{sys.executable}' -m elevate \"$@\"\n")
    wrapper.chmod(0o700)
    aws_config = Path(os.environ["AWS_CONFIG_FILE"])
    aws_config.parent.mkdir(parents=True, exist_ok=True)
    aws_config.write_text(
        f"[profile dev]\nregion = us-east-1\ncredential_process = {wrapper} credential-process dev\n"
    )
    real_clock = fake_sts.clock
    fake_sts.clock = lambda: (
        real_clock() - timedelta(seconds=2800 if fake_sts.count("AssumeRole") <= 1 else 0)
    )
    client = boto3.Session(profile_name="dev").client("sts", endpoint_url=fake_sts.url)
    for _ in range(12):
        client.get_caller_identity()
    count = len(runs.read_text().splitlines())
    assert count <= 2, f"elevate ran {count} times for 12 calls"
    assert fake_sts.count("AssumeRole") == 2


# --- 12. waits end with their parent; clocks stepped back; SIGQUIT ----------------------------


def test_used_code_records_dated_in_the_future_are_ignored(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    ahead = UsedCodes(cache.files(Invocation.from_environ(os.environ)), lambda: now + timedelta(hours=1))
    ahead.remember(SERIAL, "123456")  # recorded an hour "ahead"; then the clock was stepped back
    assert ahead.was_used(SERIAL, "123456")  # control: the record is there and readable
    back = UsedCodes(cache.files(Invocation.from_environ(os.environ)), lambda: now)
    assert not back.was_used(SERIAL, "123456") and back.last_use(SERIAL) is None


def slow_mfa(tmp_path: Path) -> tuple[str, Path]:
    pids = tmp_path / "mfa-pid"
    script = tmp_path / "slow-mfa"
    script.write_text(f"#!/bin/sh\necho $$ > '{pids}'\nexec sleep 300\n")
    script.chmod(0o700)
    return str(script), pids


def wait_for_file(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is not alive
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux")
def test_sigquit_ends_elevate_like_sigterm_and_stops_mfa_process(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    command, pids = slow_mfa(tmp_path)
    write_config(tmp_path, mfa_process=command)
    child = subprocess.Popen(
        [sys.executable, "-m", "elevate", "credential-process", "dev"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    mfa_pid = int(wait_for_file(pids))
    child.send_signal(signal.SIGQUIT)
    out, err = child.communicate(timeout=20)
    assert child.returncode == 128 + signal.SIGQUIT, err
    assert out == "" and "terminated by signal" in err and "Traceback" not in err
    deadline = time.monotonic() + 5
    while alive(mfa_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(mfa_pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux")
def test_elevate_ends_when_its_parent_is_killed_while_it_waits(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    """The Go SDK kills credential_process's shell after 60 s: elevate must not linger
    holding the lock and the mfa_process."""
    command, pids = slow_mfa(tmp_path)
    write_config(tmp_path, mfa_process=command)
    elevate_pid = tmp_path / "elevate-pid"
    parent = subprocess.Popen(
        [
            "sh",
            "-c",
            f"{sys.executable} -m elevate credential-process dev </dev/null >/dev/null 2>&1 & "
            f"echo $! > '{elevate_pid}'; wait",
        ],
        start_new_session=True,
    )
    mfa_pid = int(wait_for_file(pids))
    pid = int(wait_for_file(elevate_pid))
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 15
    while (alive(pid) or alive(mfa_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "elevate outlived its parent"
    assert not alive(mfa_pid), "mfa_process outlived elevate"
    # The lock is free: the next caller elevates at once.
    write_config(tmp_path)
    done = run_elevate("credential-process", "dev", timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_DUMPABLE is Linux")
def test_elevate_makes_itself_non_dumpable_before_anything_else() -> None:
    """PR_GET_DUMPABLE (3) read inside a process that ran elevate's entry point."""
    code = textwrap.dedent(
        """
        import ctypes, contextlib, io
        libc = ctypes.CDLL(None)
        before = libc.prctl(3, 0, 0, 0, 0)
        import elevate.__main__ as entry
        with contextlib.redirect_stdout(io.StringIO()):
            entry.run(["--version"])
        print(before, libc.prctl(3, 0, 0, 0, 0))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "0"], done.stdout + done.stderr


def test_a_warning_is_one_printable_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    """Warnings carry text from outside as well (a keyring backend's error, a failed refresh
    under `exec --server`): no escape sequence reaches the terminal, no forged line."""
    from elevate import ui

    ui.warn("refreshing failed: \x1b]0;owned\x07\x1b[2J\nelevate: all good")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\x07" not in err
    assert err == "elevate: warning: refreshing failed: \\x1b]0;owned\\x07\\x1b[2J | elevate: all good\n"
