"""`elevate keys import`: long-term keys from a ~/.aws/credentials section into the keyring,
the plaintext removed only when asked (with a private backup), errors changing nothing.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from support.cli import run_elevate
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.onboarding import (
    credentials_file,
    golden,
    invoke,
    put,
)

from elevate import keystore

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

TIMEOUT = 60

# --- keys import -----------------------------------------------------------------------------


def test_keys_import_delete_plaintext_golden_backup_and_keyring(sealed_env: Path) -> None:
    original = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET)
    put(credentials_file(), original, 0o600)
    result = invoke("keys", "import", "work", "--from-aws-profile", "work", "--delete-plaintext")
    assert result.exception is None, result.output
    assert result.stdout == ""
    assert credentials_file().read_bytes() == golden("credentials.after-import")
    assert stat.S_IMODE(credentials_file().stat().st_mode) == 0o600
    backups = list(credentials_file().parent.glob("credentials.elevate-backup-*"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == original
    assert stat.S_IMODE(backups[0].stat().st_mode) == 0o600
    assert str(backups[0]) in result.stderr
    assert EXAMPLE_SECRET not in result.stderr
    stored = keystore.get_keys("work")
    assert (stored.access_key_id, stored.secret_access_key) == (EXAMPLE_ID, EXAMPLE_SECRET)


def test_keys_import_subprocess_keeps_the_file_without_delete_plaintext() -> None:
    original = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET)
    put(credentials_file(), original)
    done = run_elevate("keys", "import", "mine", "--from-aws-profile", "work")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "--delete-plaintext" in done.stderr
    assert credentials_file().read_bytes() == original
    assert keystore.get_keys("mine").access_key_id == EXAMPLE_ID


def test_keys_import_subprocess_honours_the_credentials_variable(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "creds"
    put(elsewhere, golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET))
    env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(elsewhere)}
    done = run_elevate("keys", "import", "mine", "--from-aws-profile", "work", "--delete-plaintext", env=env)
    assert done.returncode == 0, done.stderr
    assert elsewhere.read_bytes() == golden("credentials.after-import")
    assert not credentials_file().exists()


@pytest.mark.parametrize(
    ("profile", "code", "message"),
    [
        ("ci", 2, "temporary credentials"),
        ("absent", 2, "no [absent] section"),
    ],
)
def test_keys_import_errors_change_nothing(profile: str, code: int, message: str) -> None:
    original = golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET)
    put(credentials_file(), original)
    done = run_elevate("keys", "import", "x", "--from-aws-profile", profile, "--delete-plaintext")
    assert done.returncode == code
    assert done.stderr.startswith("elevate: error: ") and message in done.stderr
    assert "Traceback" not in done.stderr
    assert credentials_file().read_bytes() == original
    assert list(credentials_file().parent.iterdir()) == [credentials_file()]
