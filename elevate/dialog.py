"""A desktop dialog that asks for the MFA code when there is no terminal: zenity, kdialog, osascript.

The code comes back on the dialog's stdout, never through its argv; the dialog's argv,
which every user can read, holds only the question (the profile's name, not the MFA device
ARN, which names the account and the user). A dialog that is
cancelled ends in one line, and one that never answers is killed after a timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Optional

from . import hostos, programs
from .errors import MfaError
from .hardening import signals_deferred

DIALOG_TIMEOUT = 120.0
TITLE = "aws-elevate"
_MAX_ANSWER = 4096  # a code is six digits; anything longer is refused, not parsed


def desktop_session(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether a dialog could be shown: macOS, or DISPLAY / WAYLAND_DISPLAY on other POSIX
    desktops; never on Windows (hostos.desktop_session)."""
    return hostos.desktop_session(environ, platform)


def dialog_program(environ: Mapping[str, str], platform: str = sys.platform) -> Optional[str]:
    """The dialog program to use (a path), or None when there is no desktop or no trusted program.

    The person types the MFA code into this program, and it runs as us: only one in PATH's
    trusted directories (elevate.programs) is used.
    """
    if not desktop_session(environ, platform):
        return None
    for name in hostos.dialog_programs(platform):
        found = programs.find_trusted(name, environ)
        if found:
            return found
    return None


def dialog_argv(program: str, question: str, timeout: float) -> list[str]:
    """The argv that shows `question` with a hidden entry; the answer is printed on stdout."""
    name = os.path.basename(program)
    if name == "osascript":
        quoted = question.replace("\\", "\\\\").replace('"', '\\"')
        script = (
            f'display dialog "{quoted}" default answer "" with hidden answer '
            f'with title "{TITLE}" giving up after {int(timeout)}'
        )
        return [program, "-e", script, "-e", "text returned of result"]
    if name == "kdialog":
        return [program, "--title", TITLE, "--password", question]
    return [program, "--entry", "--hide-text", "--title", TITLE, "--text", question]


def ask(
    question: str,
    environ: Mapping[str, str],
    *,
    timeout: float = DIALOG_TIMEOUT,
    platform: str = sys.platform,
    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
) -> str:
    """What the person typed into a desktop dialog showing `question` (MfaError otherwise)."""
    program = dialog_program(environ, platform)
    if program is None:
        if not desktop_session(environ, platform):
            raise MfaError(
                "no desktop session for an MFA dialog (neither DISPLAY nor WAYLAND_DISPLAY is set)"
            )
        raise MfaError("no dialog program for the MFA code: install zenity or kdialog")
    name = os.path.basename(program)
    argv = dialog_argv(program, question, timeout)
    started: list[subprocess.Popen[bytes]] = []
    try:
        try:
            # A signal while the child starts would leave a dialog open with nobody to read it:
            # it is held until the child is known, and then raised inside this `try`.
            with signals_deferred():
                started.append(
                    popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,  # toolkit warnings: noise on credential_process's stderr
                        env=dict(environ),
                        start_new_session=True,  # its own group, so a timeout kills it and its helpers
                    )
                )
        except OSError as exc:
            raise MfaError(f"cannot open the MFA dialog {name!r}: {exc.strerror}") from exc
        out, _ = started[0].communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MfaError(f"the MFA dialog got no answer within {timeout:.0f} s") from None
    finally:
        for child in started:
            if child.poll() is None:  # timed out, or we are being interrupted: close the dialog
                _kill_group(child)
    child = started[0]
    if child.returncode != 0:
        # zenity, kdialog and osascript all exit non-zero for Cancel (zenity 5 for its own timeout).
        raise MfaError(f"the MFA dialog was cancelled ({name} exit status {child.returncode})")
    if len(out) > _MAX_ANSWER:
        raise MfaError(f"the MFA dialog {name!r} printed more than a code")
    return out.decode("utf-8", "replace")


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except OSError:
        child.kill()
    child.wait()
