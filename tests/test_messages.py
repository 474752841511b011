"""What a newcomer reads first: the command list, the keyring error in doctor."""

from __future__ import annotations

import os
import re

from support.cli import run_elevate


def test_help_lists_whole_descriptions_and_where_to_start() -> None:
    for args in (("--help",), ("keys", "--help"), ("mfa", "--help")):
        done = run_elevate(*args)
        assert done.returncode == 0, done.stderr
        commands = done.stdout[done.stdout.index("Commands:") :]
        assert "..." not in commands, commands
    shown = run_elevate("--help").stdout
    assert "Start with `elevate configure`" in shown
    assert re.search(r"keys\s+Manage the long-term IAM keys held in the OS keyring\.", shown)


def test_doctor_shows_the_keyring_error_whole() -> None:
    done = run_elevate(
        "doctor", env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    )
    assert done.returncode == 1
    keyring_line = next(line for line in done.stdout.splitlines() if line.startswith("[FAIL] keyring"))
    # keyring's own message ends with a URL: shown to its end, not cut in the middle.
    assert "https://pypi.org/project/keyring for details" in keyring_line, keyring_line
    assert "pip install 'aws-elevate" not in keyring_line, "that name on the package index is not ours"
    assert "./scripts/install --headless" in keyring_line
