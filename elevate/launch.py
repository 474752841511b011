"""Run a command with elevated credentials in its environment.

On POSIX elevate replaces itself with the command (execvpe), so `run` does not return:
signals from the terminal
or from `kill` reach the command directly, exactly once (a forwarding parent would
deliver Ctrl-C twice and turn a graceful stop into a forced one), the exit status is the
command's own, and no Python process lingers holding the secrets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

from .errors import LaunchError
from .hardening import restore_core_dumps

# Variables that would make the child pick other credentials than the ones we give it.
SHADOWING = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)


def child_environment(base: Mapping[str, str], elevated: Mapping[str, str]) -> dict[str, str]:
    """`base` without anything that shadows our credentials, plus `elevated`."""
    env = {k: v for k, v in base.items() if k not in SHADOWING}
    env.update(elevated)
    return env


def run(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Become `argv` with `env` (POSIX: never returns), or run it and return its status (Windows)."""
    if not argv:
        raise LaunchError("no command to run")
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        restore_core_dumps()
        try:
            os.execvpe(argv[0], list(argv), dict(env))  # noqa: S606 - the user's own command
        except FileNotFoundError:
            raise LaunchError(f"command not found: {argv[0]}") from None
        except PermissionError:
            raise LaunchError(f"permission denied: {argv[0]}") from None
        except OSError as exc:
            raise LaunchError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    return _run_windows(argv, env)  # pragma: no cover - Windows only


def _run_windows(argv: Sequence[str], env: Mapping[str, str]) -> int:  # pragma: no cover
    try:
        child = subprocess.Popen(list(argv), env=dict(env))
    except FileNotFoundError:
        raise LaunchError(f"command not found: {argv[0]}") from None

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the console delivers Ctrl-C to the child
    signal.signal(signal.SIGTERM, forward)
    return child.wait()
