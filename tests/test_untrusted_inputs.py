"""Issue 11: nothing elevate reads may turn against its user.

Each test plays the attacker (another local user, a hostile endpoint, a planted file, a
killed process) against the real CLI in a subprocess, or the core directly, and checks
the attack is refused in one line, never cached and never run.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_elevate
from support.fakests import FakeSts, fake_access_key_id, fake_secret

from elevate import cache, keystore
from elevate.config import load_config, parse_config
from elevate.errors import ConfigError
from elevate.models import SessionCredentials, SourceKeys
from elevate.onboarding import awsfiles, configfile
from elevate.onboarding.configure import elevate_command
from elevate.ui import printable
from elevate.usedcodes import UsedCodes

EXAMPLE_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/dev"
SERIAL = "arn:aws:iam::123456789012:mfa/alice"
NOBODY = 65534


def config_path() -> Path:
    return Path(os.environ["ELEVATE_CONFIG"])


def write_config(tmp_path: Path, **values: Any) -> Path:
    """A dev profile whose mfa_process leaves a marker when it runs (and prints a code)."""
    marker = tmp_path / "mfa-ran"
    script = tmp_path / "mfa-code"
    script.write_text(f"#!/bin/sh\necho ran >> '{marker}'\necho $((100000 + $(wc -l < '{marker}')))\n")
    script.chmod(0o700)
    profile = {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev", "mfa_process": str(script), **values}
    lines = ['default_profile = "dev"', "[profiles.dev]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in profile.items()]
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def keys() -> SourceKeys:
    stored = SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET)
    keystore.put_keys("dev", stored)
    return stored


def one_error_line(done: subprocess.CompletedProcess[str], exit_code: int = 1) -> str:
    assert done.returncode == exit_code, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("elevate: error: "), done.stderr
    return lines[0]


def marker_ran(tmp_path: Path) -> bool:
    return (tmp_path / "mfa-ran").exists()


# --- 1. config trust -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["credential-process", "dev"], ["export", "dev"], ["exec", "dev", "--", "true"]]
)
def test_world_writable_config_is_refused_and_its_command_never_runs(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys, command: list[str]
) -> None:
    path = write_config(tmp_path)
    path.chmod(0o666)
    line = one_error_line(run_elevate(*command), exit_code=2)
    assert str(path) in line and "writable by group or others" in line and "chmod go-w" in line
    assert not marker_ran(tmp_path) and fake_sts.requests == []


def test_config_in_a_group_writable_directory_is_refused(tmp_path: Path, keys: SourceKeys) -> None:
    path = write_config(tmp_path)
    path.parent.chmod(0o775)
    line = one_error_line(run_elevate("credential-process", "dev"), exit_code=2)
    assert "directory" in line and str(path.parent) in line
    assert not marker_ran(tmp_path)


def test_symlink_to_a_config_others_can_write_is_refused(tmp_path: Path, keys: SourceKeys) -> None:
    real = write_config(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    target = shared / "config.toml"
    real.rename(target)
    real.symlink_to(target)
    line = one_error_line(run_elevate("credential-process", "dev"), exit_code=2)
    assert str(shared) in line
    assert not marker_ran(tmp_path)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root"
)
def test_config_owned_by_another_user_is_refused(tmp_path: Path, keys: SourceKeys) -> None:
    path = write_config(tmp_path)
    os.chown(path, NOBODY, NOBODY)
    line = one_error_line(run_elevate("credential-process", "dev"), exit_code=2)
    assert f"uid {NOBODY}" in line and not marker_ran(tmp_path)


def test_a_private_config_is_still_read(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.chmod(0o600)
    assert load_config(path).profiles["dev"].role_arn == ROLE


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
    store = cache.files(os.environ)
    forever = SessionCredentials(
        fake_access_key_id(), fake_secret(), fake_secret(300), datetime(9999, 12, 31, tzinfo=timezone.utc)
    )
    sessions = cache.SessionCache(store, store, cache.utcnow)
    key = cache.entry_key(profile, os.environ)
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
    keys_by_region = {cache.entry_key(profile, {**base, "AWS_REGION": r}) for r in ("eu-west-1", "us-east-1")}
    assert len(keys_by_region) == 2


# --- 3. the credential_process line never imports from the caller's directory -----------------


def test_fallback_command_isolates_python_from_the_working_directory(tmp_path: Path) -> None:
    python = Path(sys.executable)
    command = elevate_command("/somewhere/elevate/__main__.py", str(tmp_path / "bin" / "python"))
    assert command == [str(tmp_path / "bin" / "python"), "-I", "-m", "elevate"]
    # The attack: a planted json.py in the directory the AWS CLI runs the line from.
    evil = tmp_path / "evil"
    evil.mkdir()
    pwned = tmp_path / "pwned"
    (evil / "json.py").write_text(f"open({str(pwned)!r}, 'w').write('x')\nfrom json import *\n")
    (evil / "elevate").mkdir()
    (evil / "elevate" / "__init__.py").write_text("")
    (evil / "elevate" / "__main__.py").write_text(f"open({str(pwned)!r}, 'w').write('x')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(python), "-I", "-m", "elevate", "--version"], cwd=evil, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert not pwned.exists()
    subprocess.run([str(python), "-m", "elevate", "--version"], cwd=evil, env=env, capture_output=True)
    assert pwned.exists(), "the attack itself must work without -I, or this test proves nothing"


def test_doctor_fails_a_credential_process_line_without_isolation(tmp_path: Path, keys: SourceKeys) -> None:
    write_config(tmp_path)
    aws_config = Path(os.environ["AWS_CONFIG_FILE"])
    aws_config.parent.mkdir(parents=True, exist_ok=True)
    aws_config.write_text(
        f"[profile dev]\ncredential_process = {sys.executable} -m elevate credential-process dev\n"
    )
    done = run_elevate("doctor", "dev")
    assert "without -I" in done.stdout, done.stdout
    assert done.returncode == 1


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


# --- 5. writers refuse line breaks -----------------------------------------------------------


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_ini_writer_refuses_a_value_that_would_add_lines(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="line break or NUL"):
        awsfiles.set_credential_process(b"", "dev", ["/bin/elevate", "--config", bad], tmp_path / "config")


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_toml_writer_refuses_a_value_with_a_line_break(bad: str) -> None:
    with pytest.raises(ConfigError, match="line break or NUL"):
        configfile.toml_value(bad)


def test_configure_with_a_newline_in_the_config_path_adds_no_profile(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    evil = tmp_path / "x\n[profile evil]\ncredential_process = touch pwned\n" / "config.toml"
    done = run_elevate(
        "--config",
        str(evil),
        "configure",
        "dev",
        "--role-arn",
        ROLE,
        "--mfa-serial",
        SERIAL,
        "--aws-config",
        "--no-input",
        stdin=f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n",
    )
    aws_config = Path(os.environ["AWS_CONFIG_FILE"])
    assert "[profile evil]" not in (aws_config.read_text() if aws_config.exists() else "")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr


# --- 6. size and depth -----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["credential-process", "dev"], ["status"]])
def test_deeply_nested_config_is_one_line(tmp_path: Path, command: list[str]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x = " + "[" * 500 + "]" * 500 + "\n")
    line = one_error_line(run_elevate(*command), exit_code=2)
    assert "nests" in line


def test_huge_config_is_refused_quickly(tmp_path: Path) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# " + "x" * (50 << 20) + "\n")
    started = time.monotonic()
    line = one_error_line(run_elevate("credential-process", "dev"), exit_code=2)
    assert "KiB" in line and time.monotonic() - started < 10


def test_parse_config_turns_recursion_into_one_line() -> None:
    with pytest.raises(ConfigError, match="nests"):
        parse_config("a = " + "{b = " * 100 + "1" + "}" * 100, Path("c.toml"))


# --- 7. plaintext keyring backends -----------------------------------------------------------


def plaintext_env(tmp_path: Path) -> dict[str, str]:
    pytest.importorskip("keyrings.alt.file")
    env = dict(os.environ)
    env["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return env


def test_plaintext_keyring_is_refused_for_long_term_keys(tmp_path: Path) -> None:
    env = plaintext_env(tmp_path)
    done = run_elevate("keys", "add", "dev", stdin=f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n", env=env)
    line = one_error_line(done)
    assert "keyrings.alt.file.PlaintextKeyring" in line and "ELEVATE_ALLOW_PLAINTEXT_KEYRING" in line
    stored = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert all(EXAMPLE_SECRET not in p.read_text(errors="replace") for p in stored)


def test_plaintext_keyring_can_be_accepted_knowingly(tmp_path: Path) -> None:
    env = {**plaintext_env(tmp_path), "ELEVATE_ALLOW_PLAINTEXT_KEYRING": "1"}
    done = run_elevate("keys", "add", "dev", stdin=f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n", env=env)
    assert done.returncode == 0, done.stderr
    assert "PlaintextKeyring" in done.stderr


def test_doctor_names_the_plaintext_backend(tmp_path: Path) -> None:
    write_config(tmp_path)
    done = run_elevate("doctor", "dev", env=plaintext_env(tmp_path))
    assert done.returncode == 1
    keyring_line = next(line for line in done.stdout.splitlines() if " keyring: " in line)
    assert keyring_line.startswith("[FAIL]") and "PlaintextKeyring" in keyring_line, done.stdout


# --- 8. MFA sessions stay off persistent disks -----------------------------------------------


def test_mfa_session_is_not_written_to_the_home_cache(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    write_config(tmp_path, mfa_session_seconds=43200)
    env = {k: v for k, v in os.environ.items() if k not in ("ELEVATE_CACHE_DIR", "XDG_RUNTIME_DIR")}
    done = run_elevate("credential-process", "dev", env=env)
    assert done.returncode == 0, done.stderr
    home_cache = Path(env["XDG_CACHE_HOME"]) / "elevate"
    session = fake_sts.issued[0]  # GetSessionToken came first
    assert fake_sts.count("GetSessionToken") == 1
    files = [p for p in home_cache.rglob("*") if p.is_file()]
    assert files, "the role credentials are cached there (control)"
    assert [p for p in files if session["SecretAccessKey"] in p.read_text(errors="replace")] == []
    for entry in home_cache.glob("*.json"):
        entry.unlink()  # the role credentials are gone; the MFA session must come from the keyring
    again = run_elevate("credential-process", "dev", env=env)
    assert again.returncode == 0, again.stderr
    assert fake_sts.count("GetSessionToken") == 1 and fake_sts.count("AssumeRole") == 2


# --- 9. leftovers of interrupted writes --------------------------------------------------------


def test_leftover_temp_files_are_swept_by_clear_and_by_the_next_write(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    write_config(tmp_path)
    profile = load_config(config_path()).profiles["dev"]
    directory = Path(os.environ["ELEVATE_CACHE_DIR"])
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = cache.entry_key(profile, os.environ)
    leftover = directory / f".{key}.json.abcd1234.tmp"
    leftover.write_text('{"SecretAccessKey": "left by a killed write"}')
    leftover.chmod(0o600)
    done = run_elevate("clear", "dev")
    assert done.returncode == 0 and "cleared" in done.stderr
    assert not leftover.exists()
    other = directory / ".0123456789abcdef.json.zzzz.tmp"
    other.write_text("secret")
    old = time.time() - 3600
    os.utime(other, (old, old))
    assert run_elevate("credential-process", "dev").returncode == 0
    assert not other.exists()


def test_sigkill_between_write_and_rename_leaves_nothing_after_the_next_write(
    tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys
) -> None:
    write_config(tmp_path)
    directory = Path(os.environ["ELEVATE_CACHE_DIR"])
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        import elevate.atomic as atomic
        def killed():
            os.kill(os.getpid(), signal.SIGKILL)
        Path({str(directory)!r}).mkdir(mode=0o700, exist_ok=True)
        atomic.write_atomically(Path({str(directory)!r}) / "x.json", b"secret", before_replace=killed)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    temps = list(directory.glob(".*.tmp"))
    assert temps, "the kill must leave a temp file, or this test proves nothing"
    old = time.time() - 3600
    for path in temps:
        os.utime(path, (old, old))
    assert run_elevate("credential-process", "dev").returncode == 0
    assert list(directory.glob(".*.tmp")) == []


# --- 10. keys import --delete-plaintext --------------------------------------------------------


def credentials_file(text: str) -> Path:
    path = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_delete_plaintext_says_where_the_key_is_still_written() -> None:
    path = credentials_file(
        f"[dev]\naws_access_key_id = {EXAMPLE_ID}\naws_secret_access_key = {EXAMPLE_SECRET}\n\n"
        f"[copy]\naws_access_key_id = {EXAMPLE_ID}\n# old: {EXAMPLE_SECRET}\n"
    )
    done = run_elevate("keys", "import", "dev", "--from-aws-profile", "dev", "--delete-plaintext")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = done.stderr.splitlines()[-1]
    assert line.startswith("elevate: error: ") and "removed [dev]" not in done.stderr.splitlines()[0]
    # What is left: a blank line, [copy], its key ID (line 3) and the commented secret (line 4).
    assert "still in it" in line and "access key ID on line 3" in line and "secret on line 4" in line
    assert "[dev]" not in path.read_text()


def test_delete_plaintext_warns_about_a_readable_file_and_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere" / "credentials"
    real.parent.mkdir()
    real.write_text(f"[dev]\naws_access_key_id = {EXAMPLE_ID}\naws_secret_access_key = {EXAMPLE_SECRET}\n")
    real.chmod(0o644)
    path = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(real)
    done = run_elevate("keys", "import", "dev", "--from-aws-profile", "dev", "--delete-plaintext")
    assert done.returncode == 0, done.stderr
    assert "is a symlink" in done.stderr and "readable by group or others" in done.stderr
    backups = list(path.parent.glob("credentials.elevate-backup-*"))
    assert len(backups) == 1 and stat.S_IMODE(backups[0].stat().st_mode) == 0o600
    assert list(real.parent.glob("*.elevate-backup-*")) == []


# --- 12. waits end with their parent; clocks stepped back; SIGQUIT ----------------------------


def test_used_code_records_dated_in_the_future_are_ignored(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    ahead = UsedCodes(cache.files(os.environ), lambda: now + timedelta(hours=1))
    ahead.remember(SERIAL, "123456")  # recorded an hour "ahead"; then the clock was stepped back
    assert ahead.was_used(SERIAL, "123456")  # control: the record is there and readable
    back = UsedCodes(cache.files(os.environ), lambda: now)
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
