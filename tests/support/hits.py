"""Helpers of the cache-hit tests: a config, a seeded entry, the index as the full path writes
it, a process holding a lock, and the modules a child process imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from elevate import cache as cache_mod
from elevate import hit
from elevate.config import load_config
from elevate.invocation import Invocation
from elevate.models import Profile, SessionCredentials
from elevate.store import FileStore
from support.constants import ROLE
from support.fakests import fake_access_key_id, fake_secret

SERIAL = "arn:aws:iam::123456789012:mfa/alice"
ROOT = Path(__file__).resolve().parent.parent.parent
# What the lean launcher scripts/install writes runs: python -I -S, the package on sys.path,
# then elevate.__main__.main().
LEAN = [
    sys.executable,
    "-I",
    "-S",
    "-c",
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv[0] = 'elevate'\n"
    "from elevate.__main__ import main; main()",
]


def write_config(extra: str = "") -> Path:
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'default_profile = "dev"\n[profiles.dev]\nrole_arn = "{ROLE}"\nmfa_serial = "{SERIAL}"\n{extra}'
    )
    return path


def dev() -> Profile:
    return load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]


def entry_file() -> Path:
    return (
        Path(os.environ["ELEVATE_CACHE_DIR"])
        / f"{cache_mod.entry_key(dev(), Invocation.from_environ(os.environ))}.json"
    )


def seed(
    seconds: float = 3600, key_id: str | None = None, secret: str | None = None, serve_until: int = 0
) -> SessionCredentials:
    start = datetime.now(timezone.utc).replace(microsecond=0)
    creds = SessionCredentials(
        key_id or fake_access_key_id(),
        secret or fake_secret(),
        fake_secret(300),
        start + timedelta(seconds=seconds),
    )
    store = FileStore(Path(os.environ["ELEVATE_CACHE_DIR"]))
    cache = cache_mod.SessionCache(store, store, cache_mod.utcnow)
    cache.put(cache_mod.entry_key(dev(), Invocation.from_environ(os.environ)), creds, "seeded", serve_until)
    return creds


def index_it(profile: str | None = "dev", env: dict[str, str] | None = None) -> None:
    """Record the index the way the full path does after a validated parse."""
    p = dev()
    environ = env or dict(os.environ)
    key = cache_mod.entry_key(p, Invocation.from_environ(environ))
    hit.record(environ, None, profile, key, p.refresh_before_seconds, p.duration_seconds)


def serve(profile: str | None = "dev", env: dict[str, str] | None = None, now: float | None = None) -> Any:
    text = hit.serve(None, profile, env or dict(os.environ), now or time.time())
    return None if text is None else json.loads(text)


def index_path() -> Path:
    return Path(os.environ["ELEVATE_CACHE_DIR"]) / hit.INDEX_NAME


def hold_lock(path: Path, seconds: float) -> subprocess.Popen[bytes]:
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    return holder


def queue_path(profile: str = "dev") -> Path:
    """The queue lock of `credential-process PROFILE` for the config as it is now."""
    path = hit.queue_path(None, profile, os.environ)
    assert path is not None
    return Path(path)


def hold_queue(seconds: float) -> subprocess.Popen[bytes]:
    """Another process holding the queue exclusive, as a filler does, for `seconds`."""
    path = queue_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return hold_lock(path, seconds)


def imported(
    argv: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `argv` (a python command line) under -X importtime; it and the modules it imported."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or dict(os.environ),
        stdin=subprocess.DEVNULL,
    )
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return done, names
