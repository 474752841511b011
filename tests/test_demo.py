"""The README's first command, `./scripts/demo`, end to end as a stranger runs it (with this test
environment as its virtualenv, so nothing is installed again): it provisions the IAM side on its
own moto server, elevates through export, exec and credential_process, shows no secret, and ends
with its server stopped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARN = "arn:aws:sts::123456789012:assumed-role/DeveloperElevated/alice"


@pytest.mark.slow
def test_the_demo_runs_end_to_end_and_shows_no_secret() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ELEVATE_", "PYTHON_KEYRING"))}
    env["ELEVATE_VENV"] = sys.prefix
    done = subprocess.run(
        [str(ROOT / "scripts" / "demo")],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"assumed-role ARN via exec: {ARN}" in done.stdout
    assert f"assumed-role ARN via credential_process: {ARN}" in done.stdout
    assert "the moto server is stopped" in done.stdout
    # A whole secret key or session token would be 40 or more characters of its alphabet in quotes.
    assert not re.search(r"(SECRET_ACCESS_KEY|SESSION_TOKEN)='[A-Za-z0-9/+=]{20,}'", done.stdout)
