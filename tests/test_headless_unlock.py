"""The encrypted keyring file in seconds: one key derivation per process at most, and an unlock
that lasts for the login session (the kernel's session keyring), forgotten by `keys lock`.

Derivations are counted from `--debug`, which logs each one; the test run has a session
keyring of its own (conftest), and each test's keyring file has its own path, so its own key.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
from pathlib import Path

import pytest
from support.cli import elevate_argv, one_error_line, run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.fakests import FakeSts
from support.realparts import require, require_tool
from support.terminal import finish, spawn

pytestmark = pytest.mark.slow

BACKEND = "keyrings.cryptfile.cryptfile.CryptFileKeyring"
PASSPHRASE = "tuba-granite-orbit-lemon"
ELEVATE = shlex.join(elevate_argv())
DERIVES = "deriving a key from the passphrase"
KEY_SETS = ("dev", "ops", "prod", "test")


@pytest.fixture
def headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The encrypted file keyring as the backend; its file's path."""
    require(
        importlib.util.find_spec("keyrings.cryptfile") is not None,
        "keyrings.cryptfile (the headless extra) is not installed",
    )
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", BACKEND)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / "python_keyring" / "cryptfile_pass.cfg"


def add_key_sets(tmp_path: Path, names: tuple[str, ...] = KEY_SETS) -> str:
    """`elevate keys add NAME` for each name: the first asks for a new passphrase (twice), the
    others ask nothing (the unlock lasts)."""
    keys = shlex.quote(f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n")
    adds = " && ".join(f"printf %s {keys} | {ELEVATE} --debug keys add {name}" for name in names)
    child = spawn(adds, tmp_path)
    child.expect("New passphrase for the encrypted keyring .*: ")
    child.sendline(PASSPHRASE)
    child.expect("The same passphrase again: ")
    child.sendline(PASSPHRASE)
    shown, status = finish(child)
    assert status == 0, shown
    return shown


def test_adding_four_key_sets_derives_one_key_and_asks_once(headless: Path, tmp_path: Path) -> None:
    shown = add_key_sets(tmp_path)
    assert shown.count(DERIVES) == 1, shown
    assert "assphrase for" not in shown, "asked once (and once more to confirm), not per command"
    assert shown.count("stored AKIA") == len(KEY_SETS)


def test_a_locked_list_of_four_key_sets_derives_one_key(
    headless: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_key_sets(tmp_path)
    monkeypatch.setenv("ELEVATE_KEYRING_UNLOCK_SECONDS", "0")  # this process only: locked each time
    assert run_elevate("keys", "lock").returncode == 0
    child = spawn(f"{ELEVATE} --debug keys list", tmp_path)
    child.expect("Passphrase for the encrypted keyring .*: ")
    child.sendline(PASSPHRASE)
    shown, status = finish(child)
    assert status == 0, shown
    assert all(name in shown for name in KEY_SETS)
    # keyrings.cryptfile alone derives one key per entry read: 6 here (reference, index, 4 sets).
    assert shown.count(DERIVES) == 1, shown


def test_unlocked_commands_ask_nothing_and_derive_nothing_even_without_a_terminal(
    headless: Path, tmp_path: Path, fake_sts: FakeSts
) -> None:
    add_key_sets(tmp_path, ("dev",))
    listed = run_elevate("--debug", "keys", "list")  # no terminal at all
    assert listed.returncode == 0, listed.stderr
    assert "dev\tAKIA" in listed.stdout
    assert DERIVES not in listed.stderr and "kernel's session keyring" in listed.stderr

    write_config(
        {
            "dev": {
                "role_arn": "arn:aws:iam::123456789012:role/Dev",
                "mfa_serial": "arn:aws:iam::123456789012:mfa/dev",
                "region": "us-east-1",
            }
        }
    )
    # A cache miss reads the keys: still no derivation and no prompt.
    done = run_elevate("--debug", "credential-process", "dev", "-t", "123456")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Version"] == 1
    assert DERIVES not in done.stderr
    assert fake_sts.requests[-1].access_key_id == EXAMPLE_ID


def test_keys_lock_forgets_the_unlock(headless: Path, tmp_path: Path) -> None:
    add_key_sets(tmp_path, ("dev",))
    locked = run_elevate("keys", "lock")
    assert locked.returncode == 0 and "locked" in locked.stderr, locked.stderr
    line = one_error_line(run_elevate("keys", "list"))
    assert "needs its passphrase and there is no terminal" in line
    again = run_elevate("keys", "lock")
    assert "nothing to lock" in again.stderr


def test_the_held_key_is_not_readable_from_another_session_keyring(headless: Path, tmp_path: Path) -> None:
    keyctl = require_tool("keyctl")
    add_key_sets(tmp_path, ("dev",))
    description = f"aws-elevate:keyring-file:{headless.resolve()}"
    serial = subprocess.run(
        [keyctl, "search", "@s", "user", description], capture_output=True, text=True, check=True
    ).stdout.strip()
    shown = subprocess.run([keyctl, "rdescribe", serial], capture_output=True, text=True, check=True)
    assert shown.stdout.split(";")[3] == "3f000000", "possessor only: no user, group or other rights"
    # A process of the same user in another login session (another session keyring) cannot read it.
    other = subprocess.run([keyctl, "session", "-", keyctl, "pipe", serial], capture_output=True)
    assert other.returncode != 0
    assert b"keys" not in other.stdout


def test_a_planted_or_stale_key_is_not_trusted(headless: Path, tmp_path: Path) -> None:
    keyctl = require_tool("keyctl")
    add_key_sets(tmp_path, ("dev",))
    description = f"aws-elevate:keyring-file:{headless.resolve()}"
    # Same description, a key that opens nothing (as after the file was replaced).
    salt = "AAAAAAAAAAAAAAAAAAAAAA=="
    planted = json.dumps({"write_salt": salt, "keys": {salt: "AAAA"}})
    serial = subprocess.run(
        [keyctl, "padd", "user", description, "@s"], input=planted, capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([keyctl, "setperm", serial, "0x3f000000"], check=True)
    line = one_error_line(run_elevate("keys", "list"))
    assert "needs its passphrase" in line, "the planted key was tried, found wrong and dropped"
    child = spawn(f"{ELEVATE} keys list", tmp_path)
    child.expect("Passphrase for the encrypted keyring .*: ")
    child.sendline(PASSPHRASE)
    shown, status = finish(child)
    assert status == 0 and "dev\tAKIA" in shown, shown


def test_a_failed_unlock_is_tried_again_never_left_to_the_backends_getpass(
    headless: Path, tmp_path: Path
) -> None:
    import keyring
    import keyring.core

    from elevate import keyfile
    from elevate.errors import KeyringError

    add_key_sets(tmp_path, ("dev",))
    assert run_elevate("keys", "lock").returncode == 0
    keyring.set_keyring(keyring.core.load_keyring(BACKEND))
    for _ in range(2):  # the second call must not take the file as open (the backend would getpass)
        with pytest.raises(KeyringError, match="no terminal"):
            keyfile.unlock(ask=lambda prompt: None)


def test_doctor_and_a_cache_miss_derive_one_key_when_locked_and_none_when_unlocked(
    headless: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_sts: FakeSts
) -> None:
    add_key_sets(tmp_path)
    write_config(
        {
            "dev": {
                "role_arn": "arn:aws:iam::123456789012:role/Dev",
                "mfa_serial": "arn:aws:iam::123456789012:mfa/dev",
                "region": "us-east-1",
            }
        },
        default="dev",
    )
    # Unlocked, with no terminal at all: nothing asked, nothing derived.
    for args in (("doctor",), ("keys", "list")):
        done = run_elevate("--debug", *args)
        assert DERIVES not in done.stderr and "assphrase" not in done.stderr, (args, done.stderr)
    assert "[ ok ] keys: 'dev' holds AKIA" in run_elevate("doctor").stdout
    assert fake_sts.count("GetCallerIdentity") == 2, "doctor reached STS with the stored keys"

    monkeypatch.setenv("ELEVATE_KEYRING_UNLOCK_SECONDS", "0")  # this process only: locked each time
    assert run_elevate("keys", "lock").returncode == 0
    for command in ("doctor", "credential-process dev -t 123456"):  # the second is a cache miss
        child = spawn(f"{ELEVATE} --debug {command}", tmp_path)
        child.expect("Passphrase for the encrypted keyring .*: ")
        child.sendline(PASSPHRASE)
        shown, _ = finish(child)
        assert shown.count(DERIVES) == 1, (command, shown)
        assert "[ ok ] keys: 'dev' holds AKIA" in shown or '"Version": 1' in shown, shown
