"""Core dumps are off while elevate holds secrets, and restored for the command it runs."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import run_elevate
from support.configs import write_config

from elevate.invocation import Invocation


def _soft_core(limit: int) -> Callable[[], None]:
    def set_it() -> None:
        hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
        resource.setrlimit(resource.RLIMIT_CORE, (min(limit, hard) if hard >= 0 else limit, hard))

    return set_it


def test_elevate_process_has_core_dumps_off() -> None:
    code = (
        "import resource; from elevate.hardening import disable_core_dumps; disable_core_dumps(); "
        "print(resource.getrlimit(resource.RLIMIT_CORE)[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=_soft_core(1 << 20),
    )
    assert done.stdout.strip() == "0"


def test_exec_child_gets_the_users_limit_back(tmp_path: Path) -> None:
    # A fast-failing elevation still runs through main(); use a real exec via a cached entry.
    from elevate import cache
    from elevate.config import parse_config
    from elevate.store import FileStore

    role, serial = "arn:aws:iam::123456789012:role/R", "arn:aws:iam::123456789012:mfa/a"
    config = write_config({"dev": {"role_arn": role, "mfa_serial": serial}})
    profile = parse_config(config.read_text(), config).profiles["dev"]
    from datetime import datetime, timedelta, timezone

    from elevate.models import SessionCredentials

    creds = SessionCredentials(
        "ASIAIOSFODNN7EXAMPLE", "A" * 40, "B" * 100, datetime.now(timezone.utc) + timedelta(hours=1)
    )
    store = FileStore(cache.cache_dir(os.environ))
    cache.SessionCache(store, store, cache.utcnow).put(
        cache.entry_key(profile, Invocation.from_environ(os.environ)), creds, "test"
    )
    if resource.getrlimit(resource.RLIMIT_CORE)[1] == 0:
        pytest.skip("the hard core limit is 0 here: nothing to restore")
    done = run_elevate(
        "exec", "dev", "--", "sh", "-c", "ulimit -c", timeout=30, preexec_fn=_soft_core(4096 * 512)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() != "0"
