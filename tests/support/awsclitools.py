"""The AWS CLI v2 as a real client of elevate, and a moto user whose keys the CLI stored."""

from __future__ import annotations

import functools
import shutil
import subprocess

from support.cli import run_elevate
from support.configs import write_config
from support.provision import Provisioned, provision
from support.realparts import require

TIMEOUT = 60


@functools.lru_cache(maxsize=1)
def find_aws_v2() -> str | None:
    """The AWS CLI v2: /usr/bin/aws first, since the first `aws` on PATH may be a pip v1."""
    for path in dict.fromkeys(p for p in ("/usr/bin/aws", shutil.which("aws")) if p):
        try:
            done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=TIMEOUT)
        except OSError:
            continue
        if done.stdout.startswith("aws-cli/2"):
            return path
    return None


def aws_v2() -> str:
    """The AWS CLI v2's path; the test is skipped (or fails where real parts are required) without it."""
    path = find_aws_v2()
    require(path is not None, "the AWS CLI v2 is not installed")
    assert path is not None
    return path


def set_up(endpoint: str, user_name: str, *, add_keys: bool = True) -> Provisioned:
    """A moto user, elevate's profile dev, and (unless told otherwise) its keys in the keyring."""
    user = provision(endpoint, user_name=user_name)
    write_config({"dev": {"role_arn": user.role_arn, "mfa_serial": user.mfa_serial, "region": "us-east-1"}})
    if add_keys:
        added = run_elevate(
            "keys", "add", "dev", stdin=f"{user.access_key_id}\n{user.secret_access_key}\n", timeout=TIMEOUT
        )
        assert added.returncode == 0, added.stderr
    return user
