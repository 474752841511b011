"""Issue 11: nothing elevate reads from disk may turn against its user.

Another local user's config, a planted module in the working directory, line breaks in
values written to the AWS CLI's files, oversized or deeply nested configs, plaintext
keyrings, MFA sessions on persistent disks, leftovers of killed writes and plaintext keys
left behind: each test plays the attack against the real CLI (or the core) and checks it
is refused in one line, never cached and never run.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.cli import one_error_line, run_elevate
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE
from support.fakests import FakeSts
from support.untrusted import NOBODY, SERIAL, config_path, marker_ran
from support.untrusted import write_marked_config as write_config

from elevate import cache
from elevate.config import load_config, parse_config
from elevate.errors import ConfigError
from elevate.invocation import Invocation
from elevate.models import SourceKeys
from elevate.onboarding import awsfiles, configfile
from elevate.onboarding.command_line import elevate_command

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
    key = cache.entry_key(profile, Invocation.from_environ(os.environ))
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
