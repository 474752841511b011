"""The headless keyring for real: keyrings.cryptfile's encrypted file (Argon2id + AES-GCM), its
passphrase asked by elevate on the terminal, never in argv or the environment of children.
"""

from __future__ import annotations

import base64
import importlib.util
import shlex
import sys
from pathlib import Path

import pytest
from support.cli import elevate_argv, one_error_line, run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.fakests import FakeSts
from support.realparts import require
from support.terminal import finish, spawn

pytestmark = pytest.mark.slow

BACKEND = "keyrings.cryptfile.cryptfile.CryptFileKeyring"
PASSPHRASE = "tuba-granite-orbit-lemon"
ELEVATE = shlex.join(elevate_argv())


@pytest.fixture
def headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The encrypted file keyring as the backend (no Secret Service); its file's path."""
    require(
        importlib.util.find_spec("keyrings.cryptfile") is not None,
        "keyrings.cryptfile (the headless extra) is not installed",
    )
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", BACKEND)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    # Each command asks for the passphrase here: the unlock that lasts has tests of its own.
    monkeypatch.setenv("ELEVATE_KEYRING_UNLOCK_SECONDS", "0")
    return tmp_path / "data" / "python_keyring" / "cryptfile_pass.cfg"


def add_keys(tmp_path: Path) -> str:
    """`elevate keys add dev` with the keys on a pipe and a new passphrase typed twice."""
    keys = shlex.quote(f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n")
    child = spawn(f"printf %s {keys} | {ELEVATE} keys add dev", tmp_path)
    child.expect("New passphrase for the encrypted keyring .*: ")
    child.sendline("short")
    child.expect("at least 8 characters")
    child.expect("New passphrase")
    child.sendline(PASSPHRASE)
    child.expect("The same passphrase again: ")
    child.sendline(PASSPHRASE)
    shown, status = finish(child)
    assert status == 0, shown
    return shown


def test_keys_are_stored_encrypted_and_read_back_through_the_real_backend(
    headless: Path, tmp_path: Path
) -> None:
    shown = add_keys(tmp_path)
    assert PASSPHRASE not in shown, "the passphrase is typed without echo"
    assert BACKEND in shown
    assert headless.is_file() and headless.stat().st_mode & 0o077 == 0
    # The backend would make its directory 0755 (os.makedirs): elevate makes it private first.
    assert headless.parent.stat().st_mode & 0o077 == 0, oct(headless.parent.stat().st_mode)
    at_rest = headless.read_bytes()
    for secret in (EXAMPLE_SECRET, EXAMPLE_ID, PASSPHRASE):
        assert secret.encode() not in at_rest
        assert base64.b64encode(secret.encode())[:20] not in at_rest
    assert b"[Argon2] AES128.GCM" in at_rest

    child = spawn(f"{ELEVATE} keys list", tmp_path)
    child.expect("Passphrase for the encrypted keyring .*: ")
    child.sendline("not the passphrase")
    child.expect("does not open the keyring. Try again.")
    child.sendline(PASSPHRASE)
    listed, status = finish(child)
    assert status == 0, listed
    assert "AKIA************MPLE" in listed and EXAMPLE_SECRET not in listed


def test_the_passphrase_reaches_no_child_argv_or_environment(
    headless: Path, tmp_path: Path, fake_sts: FakeSts
) -> None:
    add_keys(tmp_path)
    dev = {
        "role_arn": "arn:aws:iam::123456789012:role/Dev",
        "mfa_serial": "arn:aws:iam::123456789012:mfa/dev",
        "region": "us-east-1",
    }
    write_config({"dev": dev})
    seen = tmp_path / "seen"
    probe = (
        "import os,sys\n"
        "out=open(sys.argv[1],'wb')\n"
        "for p in ('self', str(os.getppid())):\n"
        "    for f in ('environ','cmdline'):\n"
        "        try: out.write(open(f'/proc/{p}/{f}','rb').read()+b'\\n')\n"
        "        except OSError: pass\n"
    )
    command = shlex.join(
        [*elevate_argv(), "exec", "dev", "-t", "123456", "--", sys.executable, "-c", probe, str(seen)]
    )
    child = spawn(command, tmp_path)
    child.expect("Passphrase for the encrypted keyring .*: ")
    child.sendline(PASSPHRASE)
    shown, status = finish(child)
    assert status == 0, shown
    assert fake_sts.last("AssumeRole") is not None
    assert fake_sts.requests[-1].access_key_id == EXAMPLE_ID, "the keys came from the encrypted file"
    text = seen.read_bytes()
    assert b"AWS_SESSION_TOKEN=" in text, "the probe saw the child's environment"
    assert PASSPHRASE.encode() not in text


def test_without_a_terminal_the_passphrase_is_not_read_from_stdin(headless: Path) -> None:
    done = run_elevate("keys", "add", "dev", stdin=f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n{PASSPHRASE}\n")
    line = one_error_line(done)
    assert "needs its passphrase and there is no terminal" in line
    assert not headless.exists() or EXAMPLE_ID.encode() not in headless.read_bytes()
