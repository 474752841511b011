"""elevate.kernelkeys against the real kernel keyring: what an attacker sharing the session
keyring could get. Each case runs in a child with a new anonymous session keyring of its own,
so nothing reaches the test run's keyring or the developer's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.realparts import require

OTHER_UID = 65534  # nobody

# As root, in a session keyring that belongs to another user, the way `sudo elevate ...` runs
# in the invoking user's login session (sudo keeps the session keyring unless its PAM stack
# runs pam_keyinit): whatever root holds there, that user's processes possess and can read.
SUDO_IN_ANOTHER_USERS_SESSION = r"""
import ctypes, os, sys
from kernelsession import join_new_session_keyring, keyctl
from elevate import kernelkeys

assert join_new_session_keyring()
other = int(sys.argv[1])
keyring = keyctl(0, ctypes.c_long(-3), ctypes.c_long(0))  # KEYCTL_GET_KEYRING_ID
keyctl(4, ctypes.c_long(keyring), ctypes.c_long(other), ctypes.c_long(-1))  # KEYCTL_CHOWN
held = kernelkeys.store("aws-elevate:test-sudo", b"root's derived key", 60)
pid = os.fork()
if pid == 0:  # the other user, in the same session
    os.setgid(other)
    os.setuid(other)
    try:
        serial = keyctl(
            10, ctypes.c_long(-3), ctypes.c_char_p(b"user"), ctypes.c_char_p(b"aws-elevate:test-sudo"),
            ctypes.c_long(0),
        )
        buffer = ctypes.create_string_buffer(4096)
        size = keyctl(11, ctypes.c_long(serial), buffer, ctypes.c_long(len(buffer)))
        print("read:", buffer.raw[:size].decode())
    except OSError as exc:
        print("not read:", exc.strerror)
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
print("held:", held)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel keyring is Linux's")
def test_root_holds_nothing_in_a_session_keyring_of_another_user() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the case is `sudo elevate` in another user's session keyring")
    done = subprocess.run(
        [sys.executable, "-c", SUDO_IN_ANOTHER_USERS_SESSION, str(OTHER_UID)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    require("Operation not permitted" not in done.stderr, f"no kernel keyring here: {done.stderr}")
    assert done.returncode == 0, done.stderr
    assert "root's derived key" not in done.stdout, done.stdout
    assert "held: False" in done.stdout, done.stdout
