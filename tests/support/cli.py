"""Run the real `elevate` in a subprocess, sealed the same way in every test."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Optional


def run_elevate(
    *args: str,
    stdin: Optional[str] = None,
    env: Optional[dict[str, str]] = None,
    timeout: float = 60,
    **popen: Any,
) -> subprocess.CompletedProcess[str]:
    """`python -m elevate ARGS` in a new session (no controlling terminal, so nothing reads
    /dev/tty), with `stdin` as its input (else an empty stdin) and the sealed environment."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "elevate", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else dict(os.environ),
        start_new_session=True,
        **popen,
    )
