"""Run the real `elevate` in a subprocess, sealed the same way in every test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Optional


def elevate_argv(*args: str, python_options: Sequence[str] = ()) -> list[str]:
    """`python [OPTIONS] -m elevate ARGS` with this test run's interpreter, for the places
    run_elevate does not fit: a Popen the test interacts with, a pty, a credential_process line."""
    return [sys.executable, *python_options, "-m", "elevate", *args]


def run_elevate(
    *args: str,
    stdin: Optional[str] = None,
    env: Optional[dict[str, str]] = None,
    timeout: float = 60,
    python_options: Sequence[str] = (),
    **popen: Any,
) -> subprocess.CompletedProcess[str]:
    """`python -m elevate ARGS` in a new session (no controlling terminal, so nothing reads
    /dev/tty), with `stdin` as its input (else an empty stdin) and the sealed environment."""
    return subprocess.run(
        elevate_argv(*args, python_options=python_options),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else dict(os.environ),
        start_new_session=True,
        **popen,
    )


def one_error_line(done: subprocess.CompletedProcess[str], exit_code: int = 1) -> str:
    """Assert the CLI failed the documented way (this exit code, nothing on stdout, exactly one
    `elevate: error: ...` line on stderr and no traceback); return that line."""
    assert done.returncode == exit_code, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("elevate: error: "), done.stderr
    return lines[0]
