"""The OS keyring for real: gnome-keyring's Secret Service on a private D-Bus session.

The whole scenario runs as one bash script under dbus-run-session, itself under a small
reaper (a child subreaper) that afterwards waits for every process the session left
behind: the keyring daemon must die with its bus, and anything that does not is killed
and reported.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import one_error_line, run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, SERIAL
from support.provision import provision
from support.realparts import require, require_tool

from elevate import keystore

SESSION_TIMEOUT = 60
TIMEOUT = 60

# Run argv[2:] with a timeout of argv[1] seconds as a child subreaper, then reap every
# orphan it left (waiting up to 5 s each for it to exit by itself, else killing it).
# Prints {"rc", "reaped", "survivors"} as the last line of stdout.
REAPER = r"""
import ctypes, json, os, select, signal, subprocess, sys

def children():
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                text = handle.read()
        except OSError:
            continue
        name, rest = text.split("(", 1)[1].rsplit(")", 1)
        if int(rest.split()[1]) == os.getpid():
            found.append((int(entry), name))
    return found

if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("reaper: prctl(PR_SET_CHILD_SUBREAPER) failed")
try:
    rc = subprocess.run(sys.argv[2:], stdout=sys.stderr, timeout=float(sys.argv[1])).returncode
except subprocess.TimeoutExpired:
    rc = "timeout"
reaped, survivors = [], []
while kids := children():
    for pid, name in kids:
        fd = os.pidfd_open(pid)
        if not select.select([fd], [], [], 5)[0]:
            survivors.append(name)
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
        reaped.append(name)
print(json.dumps({"rc": rc, "reaped": reaped, "survivors": survivors}))
"""

SCENARIO = r"""
set -euo pipefail
export HOME="$SCENARIO_HOME" XDG_DATA_HOME="$SCENARIO_HOME/.local/share"
unset PYTHON_KEYRING_BACKEND ELEVATE_TEST_KEYRING_FILE
eval "$(printf %s "$KEYRING_PASSWORD" \
  | gnome-keyring-daemon --daemonize --replace --unlock --components=secrets \
  | sed 's/^/export /')"
# Not run_elevate: elevate runs inside this private D-Bus session, with the test's interpreter.
elevate() { "$PYTHON" -m elevate "$@"; }

printf '%s\n%s\n' "$TEST_KEY_ID" "$TEST_SECRET" | elevate keys add dev 2> "$OUT/add.err"
elevate keys list > "$OUT/list.out"
secret-tool search --all service aws-elevate > "$OUT/search.out" 2>&1
elevate credential-process dev --token "$TEST_CODE" > "$OUT/creds.json"
elevate keys remove --yes dev 2> "$OUT/remove.err"
secret-tool search --all service aws-elevate username dev > "$OUT/search-after.out" 2>&1 || true
"""


def write_dev_config(role_arn: str, mfa_serial: str) -> None:
    write_config({"dev": {"role_arn": role_arn, "mfa_serial": mfa_serial, "region": "us-east-1"}})


def test_keys_in_gnome_keyring_secret_service(moto_env: str, tmp_path: Path) -> None:
    require(sys.platform.startswith("linux"), "gnome-keyring needs Linux")
    for tool in ("dbus-run-session", "gnome-keyring-daemon", "secret-tool", "bash"):
        require_tool(tool)
    require(hasattr(os, "pidfd_open"), "os.pidfd_open is needed to await the daemons")
    user = provision(moto_env, user_name="keyring-real")
    write_dev_config(user.role_arn, user.mfa_serial)
    out = tmp_path / "out"
    out.mkdir()
    home = tmp_path / "keyring-home"
    home.mkdir()
    env = {
        **os.environ,
        "SCENARIO_HOME": str(home),
        "OUT": str(out),
        "PYTHON": sys.executable,
        "KEYRING_PASSWORD": secrets.token_hex(16),
        "TEST_KEY_ID": user.access_key_id,
        "TEST_SECRET": user.secret_access_key,
        "TEST_CODE": user.totp().now(),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            REAPER,
            str(SESSION_TIMEOUT),
            "dbus-run-session",
            "--",
            "bash",
            "-c",
            SCENARIO,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=SESSION_TIMEOUT + 30,
    )
    report = json.loads(done.stdout.splitlines()[-1])
    logs = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in out.iterdir()}
    assert report["rc"] == 0, f"{done.stderr}\n{logs}"
    assert report["survivors"] == [], "processes outlived the D-Bus session"
    assert any(name.startswith("gnome-keyring") for name in report["reaped"])

    assert "keyring.backends.SecretService.Keyring" in logs["add.err"]
    masked = keystore.mask(user.access_key_id)
    assert logs["list.out"].startswith(f"dev\t{masked}\t")
    assert user.access_key_id not in logs["list.out"]
    assert user.secret_access_key not in logs["list.out"]
    assert "attribute.service = aws-elevate" in logs["search.out"]
    assert "attribute.username = dev" in logs["search.out"]
    assert json.loads(logs["creds.json"])["AccessKeyId"].startswith("ASIA")
    assert "removed 'dev'" in logs["remove.err"]
    assert "attribute.username = dev" not in logs["search-after.out"]


def elevate_cli(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return run_elevate(*args, stdin=stdin, env={**os.environ, **env}, timeout=TIMEOUT)


COMMANDS = [
    ("keys", "add", "dev"),
    ("keys", "list"),
    ("keys", "remove", "dev", "--yes"),
    ("credential-process", "dev", "--token", "123456"),
]
EXAMPLE_KEYS = f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_no_usable_backend_says_what_to_install(command: tuple[str, ...]) -> None:
    write_dev_config("arn:aws:iam::123456789012:role/Dev", SERIAL)
    done = elevate_cli(*command, stdin=EXAMPLE_KEYS, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    line = one_error_line(done)
    assert line.startswith("elevate: error: no usable OS keyring")
    assert "install" in line


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_locked_keyring_says_to_unlock(command: tuple[str, ...]) -> None:
    write_dev_config("arn:aws:iam::123456789012:role/Dev", SERIAL)
    done = elevate_cli(*command, stdin=EXAMPLE_KEYS, ELEVATE_TEST_KEYRING_LOCKED="1")
    line = one_error_line(done)
    assert "unlock" in line
