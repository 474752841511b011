"""Local servers for tests: moto in server mode, bound to 127.0.0.1 on a free port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Optional


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL we built
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# moto's IAM stamps creation dates with its own clock and cannot age a key: this launcher sets
# that clock back by the number of days written in the file $MOTO_IAM_DAYS_AGO (read on every
# stamp), so a test can create a key "120 days ago" and audit it with the real clock.
_AGED_IAM = """
import datetime, os, sys
import moto.iam.models as iam_models
from moto.server import main
_now = iam_models.utcnow
def _aged():
    with open(os.environ["MOTO_IAM_DAYS_AGO"]) as f:
        return _now() - datetime.timedelta(days=float(f.read() or 0))
iam_models.utcnow = _aged
main(sys.argv[1:])
"""


@contextlib.contextmanager
def moto_server(iam_days_ago: Optional[Path] = None) -> Iterator[str]:
    """Run `moto_server` on 127.0.0.1; yield its URL; stop it on exit. With `iam_days_ago`, a
    file holding a number of days, IAM's clock in that server runs that far behind."""
    port = free_port()
    launch = ["-c", _AGED_IAM] if iam_days_ago else ["-m", "moto.server"]
    env = {**os.environ, "MOTO_IAM_DAYS_AGO": str(iam_days_ago)} if iam_days_ago else None
    proc = subprocess.Popen(
        [sys.executable, *launch, "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/moto-api/")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
