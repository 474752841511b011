"""A stranger's first headless run: before any key is stored there is no keyring file, and
reading commands (keys list, doctor, uninstall, a cache miss) neither create one nor ask for a
passphrase, on a terminal or without one; only storing a key creates it. And configure on a
machine with no usable keyring says so before the key is typed, not after.
"""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest
from support.cli import elevate_argv, run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE
from support.realparts import require
from support.terminal import finish, spawn

pytestmark = pytest.mark.slow

BACKEND = "keyrings.cryptfile.cryptfile.CryptFileKeyring"
ELEVATE = shlex.join(elevate_argv())
PASSPHRASE = "tuba-granite-orbit-lemon"
READS = (("keys", "list"), ("doctor",), ("uninstall",), ("credential-process", "dev"))


@pytest.fixture
def headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The encrypted file keyring as the backend, its file not made yet; the file's path."""
    require(
        importlib.util.find_spec("keyrings.cryptfile") is not None,
        "keyrings.cryptfile (the headless extra) is not installed",
    )
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", BACKEND)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    write_config({"dev": {"role_arn": ROLE, "mfa_serial": "arn:aws:iam::123456789012:mfa/dev"}})
    return tmp_path / "data" / "python_keyring" / "cryptfile_pass.cfg"


@pytest.mark.parametrize("argv", READS, ids=lambda a: "-".join(a))
def test_reading_on_a_terminal_asks_no_passphrase_and_makes_no_keyring_file(
    headless: Path, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    child = spawn(f"{ELEVATE} {shlex.join(argv)} </dev/null", tmp_path)
    shown, _ = finish(child)
    assert "passphrase" not in shown.lower(), shown
    assert not headless.exists() and not headless.parent.exists()


@pytest.mark.parametrize("argv", READS, ids=lambda a: "-".join(a))
def test_reading_without_a_terminal_finds_no_key_sets_and_makes_no_keyring_file(
    headless: Path, argv: tuple[str, ...]
) -> None:
    done = run_elevate(*argv)
    assert "passphrase" not in done.stderr.lower(), done.stderr
    assert "cannot be read" not in done.stderr, done.stderr
    assert not headless.exists() and not headless.parent.exists()


def test_keys_list_without_a_keyring_file_says_there_are_no_key_sets(headless: Path) -> None:
    done = run_elevate("keys", "list")
    assert done.returncode == 0 and done.stdout == ""
    assert "no key sets stored" in done.stderr


def test_uninstall_without_a_keyring_file_leaves_no_unreadable_key_sets(headless: Path) -> None:
    done = run_elevate("uninstall", "--yes")
    assert done.returncode == 0, done.stderr
    assert "key sets in the keyring" not in done.stderr


def test_a_cache_miss_without_a_keyring_file_names_keys_add(headless: Path) -> None:
    done = run_elevate("credential-process", "dev")
    assert done.returncode != 0
    assert "no keys stored as 'dev': run `elevate keys add dev`" in done.stderr


def test_configure_with_no_usable_keyring_fails_before_asking_for_the_key(tmp_path: Path) -> None:
    # The desktop install over SSH: keyring finds no backend at all.
    child = spawn(
        f"{ELEVATE} configure dev --region us-east-1",
        tmp_path,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    shown, status = finish(child)
    assert status != 0
    assert "Access key ID" not in shown and "Secret access key" not in shown, shown
    flat = " ".join(shown.split())
    assert "no usable OS keyring" in flat
    assert "`./scripts/install --headless` from the clone) and run `elevate configure` again" in flat


def test_uninstall_lists_the_unlock_held_in_the_kernel_keyring_as_removed(
    headless: Path, tmp_path: Path
) -> None:
    keys = shlex.quote(f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n")
    child = spawn(f"printf %s {keys} | {ELEVATE} keys add dev", tmp_path)
    child.expect("New passphrase for the encrypted keyring .*: ")
    child.sendline(PASSPHRASE)
    child.expect("The same passphrase again: ")
    child.sendline(PASSPHRASE)
    shown, status = finish(child)
    assert status == 0, shown
    done = run_elevate("uninstall", "--yes")  # no terminal: the held unlock opens the file
    assert done.returncode == 0, done.stderr
    removed = done.stderr[done.stderr.index("removed:") : done.stderr.index("left:")]
    assert f"the unlock of {headless} held in the kernel keyring" in removed
    assert not headless.exists()
    again = run_elevate("keys", "list")
    assert "passphrase" not in again.stderr.lower(), "the unlock is gone with the file"
