"""elevate on a real pseudo-terminal: the command line, a moto user set up for profile dev, the prompt."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect

from support.cli import elevate_argv, run_elevate
from support.configs import write_config
from support.provision import Provisioned, provision
from support.realparts import require_tool
from support.terminal import terminal as bash_terminal

PEXPECT_TIMEOUT = 30
# A command line for bash on a pty, where run_elevate (no terminal) does not fit.
ELEVATE = shlex.join(elevate_argv())


def set_up(endpoint: str, user_name: str, **extra: object) -> Provisioned:
    """A moto user, a config for profile dev (the default), and its keys added through the CLI's stdin."""
    user = provision(endpoint, user_name=user_name)
    dev = {"role_arn": user.role_arn, "mfa_serial": user.mfa_serial, "region": "us-east-1", **extra}
    write_config({"dev": dev}, default="dev")
    added = run_elevate("keys", "add", "dev", stdin=f"{user.access_key_id}\n{user.secret_access_key}\n")
    assert added.returncode == 0, added.stderr
    return user


@contextmanager
def terminal(command: str, cwd: Path, **env: str) -> Iterator[pexpect.spawn[str]]:
    """`command` run by bash on a fresh pty; always reaped."""
    with bash_terminal(command, cwd, PEXPECT_TIMEOUT, SHELL=require_tool("bash"), **env) as child:
        yield child


def prompt_for(user: Provisioned) -> str:
    """The terminal prompt's text for `user`'s device, as a pexpect pattern."""
    return "MFA code for " + re.escape(user.mfa_serial) + ": "
