"""A second local user for tests of what another user on the machine can do (root only)."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from support.realparts import require

# The other user runs stdlib-only code; the test's own venv may sit where it cannot reach.
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class LocalUser:
    name: str
    uid: int

    def popen(self, code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        """`python -I -c CODE ARGS` as this user (runuser), text mode."""
        argv = ["runuser", "-u", self.name, "--", SYSTEM_PYTHON, "-I", "-c", code, *args]
        return subprocess.Popen(argv, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]

    def run(self, code: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        argv = ["runuser", "-u", self.name, "--", SYSTEM_PYTHON, "-I", "-c", code, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def other_user() -> Iterator[LocalUser]:
    """A throwaway local user (useradd), removed again at the end; skips unless root."""
    require(hasattr(os, "geteuid") and os.geteuid() == 0, "a second local user needs root (useradd)")
    require(all(shutil.which(t) for t in ("useradd", "userdel", "runuser")), "useradd/runuser missing")
    require(os.access(SYSTEM_PYTHON, os.X_OK), f"{SYSTEM_PYTHON} is missing")
    name = f"elv{secrets.token_hex(4)}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        yield LocalUser(name, pwd.getpwnam(name).pw_uid)
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
