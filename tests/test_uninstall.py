"""Removing things: `keys remove` asks first, and `elevate uninstall` removes elevate's files and
keyring entries (only elevate's) after one confirmation, saying what it removed and left.

The whole stranger's round (install, configure, uninstall, then search HOME) is in
tests/test_install.py.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from support.cli import one_error_line, run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE
from support.terminal import finish, spawn

from elevate import keystore

KEYS = f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n"


def stored() -> dict[str, str]:
    path = Path(os.environ["ELEVATE_TEST_KEYRING_FILE"])
    return dict(json.loads(path.read_text())) if path.exists() else {}


def test_keys_remove_without_a_terminal_needs_yes() -> None:
    assert run_elevate("keys", "add", "dev", stdin=KEYS).returncode == 0
    line = one_error_line(run_elevate("keys", "remove", "dev"), exit_code=2)
    assert "pass --yes" in line
    assert keystore.has_keys("dev"), "nothing is deleted without the confirmation"
    assert run_elevate("keys", "remove", "dev", "--yes").returncode == 0
    assert not keystore.has_keys("dev")


@pytest.mark.slow
def test_keys_remove_asks_on_the_terminal(tmp_path: Path) -> None:
    assert run_elevate("keys", "add", "dev", stdin=KEYS).returncode == 0
    child = spawn(f"{' '.join(_elevate())} keys remove dev", tmp_path)
    child.expect(r"Delete the key set 'dev'\?.*\[y/N\]: ")
    child.sendline("n")
    shown, status = finish(child)
    assert status == 1 and "not removed" in shown
    assert keystore.has_keys("dev")
    child = spawn(f"{' '.join(_elevate())} keys remove dev", tmp_path)
    child.expect(r"\[y/N\]: ")
    child.sendline("y")
    shown, status = finish(child)
    assert status == 0, shown
    assert not keystore.has_keys("dev")


def _elevate() -> list[str]:
    import shlex
    import sys

    return [shlex.quote(sys.executable), "-m", "elevate"]


AWS_CONFIG = """\
# my own settings
[profile work]
region = us-west-2
output = json

[profile mixed]
output = text
credential_process = {elevate} credential-process mixed

[profile dev]
credential_process = {elevate} credential-process dev
region = eu-west-1

[profile tool]
credential_process = /usr/local/bin/some-other-tool credential-process dev
"""


@pytest.fixture
def set_up(sealed_env: Path, tmp_path: Path) -> dict[str, Path]:
    """What configure, keys import and use leave: key sets, config, blocks, a backup, a cache."""
    home = sealed_env
    assert run_elevate("keys", "add", "dev", stdin=KEYS).returncode == 0
    assert run_elevate("keys", "add", "ops", stdin=KEYS).returncode == 0
    config = write_config({"dev": {"role_arn": ROLE, "mfa_serial": "arn:aws:iam::123456789012:mfa/dev"}})
    aws_config = Path(os.environ["AWS_CONFIG_FILE"])
    aws_config.parent.mkdir(parents=True, exist_ok=True)
    aws_config.write_text(AWS_CONFIG.format(elevate=home / ".local/bin/elevate"))
    backup = aws_config.parent / "credentials.elevate-backup-20260101T000000Z"
    backup.write_text(f"[work]\naws_access_key_id = {EXAMPLE_ID}\naws_secret_access_key = {EXAMPLE_SECRET}\n")
    cache = Path(os.environ["ELEVATE_CACHE_DIR"])
    cache.mkdir(mode=0o700)
    (cache / "entry.json").write_text("{}")
    return {"config": config, "aws_config": aws_config, "backup": backup, "cache": cache}


def test_uninstall_without_a_terminal_needs_yes_and_removes_nothing(set_up: dict[str, Path]) -> None:
    done = run_elevate("uninstall")
    assert done.returncode == 2 and "pass --yes" in done.stderr
    assert "key set 'dev'" in done.stderr and "[profile dev]" in done.stderr, "the plan is shown"
    assert all(path.exists() for path in set_up.values())
    assert keystore.has_keys("dev")


def test_uninstall_removes_only_what_elevate_made(set_up: dict[str, Path]) -> None:
    done = run_elevate("uninstall", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert not [k for k in stored() if k.startswith("aws-elevate\0")], stored()
    assert not set_up["config"].exists() and not set_up["config"].parent.exists()
    assert not set_up["cache"].exists()
    assert not set_up["backup"].exists()
    left = set_up["aws_config"].read_text()
    assert left == (
        "# my own settings\n[profile work]\nregion = us-west-2\noutput = json\n\n"
        "[profile mixed]\noutput = text\n\n"
        "[profile tool]\ncredential_process = /usr/local/bin/some-other-tool credential-process dev\n"
    )
    removed = done.stderr[done.stderr.index("removed:") :]
    for thing in (
        "key set 'dev'",
        "key set 'ops'",
        "[profile dev]",
        "credential_process from [profile mixed]",
    ):
        assert thing in removed
    assert "plaintext key backup" in removed and "overwritten" in removed
    assert "left:" in done.stderr and "the program" in done.stderr, "a non-scripts/install program is left"
    again = run_elevate("uninstall", "--yes")
    assert again.returncode == 0 and "nothing of elevate's found" in again.stderr


# --- what is not elevate's stays (an attacker's review) ------------------------------------------


def test_uninstall_leaves_a_cache_directory_holding_more_than_elevates(
    set_up: dict[str, Path], tmp_path: Path
) -> None:
    """ELEVATE_CACHE_DIR names the directory itself: pointed at a private directory of the user's
    own (a home, ~/.ssh), uninstall must not delete what elevate did not put there."""
    mine = tmp_path / "mine"
    (mine / "projects").mkdir(parents=True)
    mine.chmod(0o700)
    (mine / "notes.txt").write_text("mine\n")
    (mine / "projects" / "plan.md").write_text("mine too\n")
    (mine / "0123456789ab0123456789abcdef0123456789abcdef01234567.json").write_text("{}")
    env = {**os.environ, "ELEVATE_CACHE_DIR": str(mine)}
    done = run_elevate("uninstall", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert (mine / "notes.txt").read_text() == "mine\n"
    assert (mine / "projects" / "plan.md").read_text() == "mine too\n"
    assert str(mine) in done.stderr[done.stderr.index("left:") :], "what it left is said"


def test_uninstall_shreds_no_backup_that_is_a_symlink_or_a_second_link(
    set_up: dict[str, Path], tmp_path: Path
) -> None:
    """A name that looks like a plaintext backup but is a symlink or a hard link to another file:
    the other file is neither overwritten nor deleted, and the rest of the uninstall runs."""
    aws = set_up["aws_config"].parent
    target = tmp_path / "elsewhere"
    target.mkdir()
    linked = target / "precious"
    linked.write_text("precious\n")
    pointed = target / "pointed-at"
    pointed.write_text("pointed at\n")
    os.link(linked, aws / "credentials.elevate-backup-20260101T000001Z")
    (aws / "credentials.elevate-backup-20260101T000002Z").symlink_to(pointed)
    done = run_elevate("uninstall", "--yes")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert linked.read_text() == "precious\n"
    assert pointed.read_text() == "pointed at\n"
    assert not set_up["backup"].exists(), "the real backup is still shredded"
    assert not set_up["cache"].exists()


def test_uninstall_removes_the_lean_launcher_and_no_other_elevate_program(sealed_env: Path) -> None:
    """scripts/install writes ~/.local/bin/elevate as a file (the lean launcher), not a link:
    uninstall removes that one, and leaves an `elevate` of the user's own in its place."""
    install = sealed_env / ".local" / "share" / "aws-elevate"
    launcher = sealed_env / ".local" / "bin" / "elevate"
    launcher.parent.mkdir(parents=True)
    python = shlex.quote(f"{install}/current/bin/python")
    through_sh = "#!/bin/sh\n'''exec' " + python + " -IS \"$0\" \"$@\"\n' '''"
    for shebang in ("#!/usr/bin/env python3", f"#!{install}/current/bin/python -IS", through_sh):
        (install / "venvs" / "v.abc123").mkdir(parents=True, exist_ok=True)
        launcher.write_text(f"{shebang}\nfrom elevate.__main__ import main\nmain()\n")
        done = run_elevate("uninstall", "--yes")
        assert done.returncode == 0, done.stderr
        assert not install.exists()
        if shebang.startswith("#!/usr/bin/env"):
            assert launcher.read_text().startswith(shebang), "someone else's elevate is left"
        else:
            assert not launcher.exists(), f"the launcher is left: {done.stderr}"


def test_uninstall_deletes_no_config_path_that_is_not_an_elevate_config(set_up: dict[str, Path]) -> None:
    """ELEVATE_CONFIG (or --config) pointed by mistake at another file, here the AWS config
    itself: uninstall takes its elevate blocks out and leaves the file, never deletes it."""
    aws_config = set_up["aws_config"]
    env = {**os.environ, "ELEVATE_CONFIG": str(aws_config)}
    done = run_elevate("uninstall", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert aws_config.exists(), "the AWS config was deleted as if it were elevate's config"
    assert "[profile work]\nregion = us-west-2\n" in aws_config.read_text()
    assert str(aws_config) in done.stderr[done.stderr.index("left:") :]


def test_uninstall_says_the_iam_access_key_is_still_active_in_aws(set_up: dict[str, Path]) -> None:
    """Deleting the key sets here leaves the keys themselves valid in AWS: said, with what to do."""
    done = run_elevate("uninstall", "--yes")
    assert done.returncode == 0, done.stderr
    left = done.stderr[done.stderr.index("left:") :]
    assert keystore.mask(EXAMPLE_ID) in left and EXAMPLE_ID not in done.stderr
    assert "still active in AWS" in left
    assert "ask your admin" in left and "aws iam delete-access-key" in left


def test_uninstall_removes_no_directory_it_did_not_make(set_up: dict[str, Path], tmp_path: Path) -> None:
    """ELEVATE_CONFIG names a file in a directory of the user's: the config goes, the directory
    stays, even when the config was the last thing in it."""
    mine = tmp_path / "projects" / "elevate-settings"
    mine.mkdir(parents=True)
    config = mine / "config.toml"
    config.write_text(set_up["config"].read_text())
    config.chmod(0o600)
    done = run_elevate("uninstall", "--yes", env={**os.environ, "ELEVATE_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert not config.exists(), done.stderr
    assert mine.is_dir(), "a directory the user made was removed"
