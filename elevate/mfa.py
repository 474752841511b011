"""Where the MFA code comes from: --token, the profile's mfa_process, a /dev/tty prompt, a dialog.

The prompt goes to the controlling terminal (Windows: the console), never stdout, so it works while stdout is
captured by `eval "$(elevate export)"` or by a credential_process client. Without a
terminal, the profile's mfa_prompt decides: "auto" asks with a desktop dialog when a
desktop session is present, else we fail at once rather than wait.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Optional, TextIO

from . import errors, hostos, programs, ui
from .errors import MfaError, TerminalBusy, Terminated, UsageError
from .hardening import SIGHUP, end_if_orphaned, parent_gone, signals_deferred
from .models import Profile
from .ui import open_tty

CODE = re.compile(r"^\d{6}$", re.ASCII)
TOTP_STEP = 30  # AWS virtual and hardware TOTP devices use RFC 6238's 30-second step
PROMPT_TIMEOUT = 300.0
PROCESS_TIMEOUT = 120.0
_ATTEMPTS = 3
# Under credential_process the caller decides how long a prompt may take.
SDK_DEADLINE_NOTE = (
    "some SDKs stop waiting for credential_process after 60 s (Go's, and so Terraform): "
    "if this prompt ends, run the command again"
)


def normalize_code(raw: str) -> Optional[str]:
    """Six digits with any spaces removed, or None."""
    code = "".join(raw.split())
    return code if CODE.fullmatch(code) else None


def seconds_to_next_code(now: datetime) -> int:
    """Seconds until the authenticator shows its next code."""
    return TOTP_STEP - int(now.timestamp()) % TOTP_STEP


def check_token(token: str) -> str:
    """Validate a --token value before any AWS call."""
    code = normalize_code(token)
    if code is None:
        raise UsageError("--token must be six digits (spaces are ignored)")
    return code


def obtain_code(
    profile: Profile,
    token: Optional[str],
    *,
    tty_opener: Callable[[], AbstractContextManager[Optional[TextIO]]] = open_tty,
    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
    environ: Mapping[str, str],
    ask_dialog: Optional[Callable[[str, Mapping[str, str]], str]] = None,
    tell_background: bool = True,
    for_sdk: bool = False,
    console: Callable[[], Optional[hostos.Console]] = hostos.console,
) -> str:
    """The MFA code for `profile` from the first source that applies.

    From a background job it raises TerminalBusy, after saying so on the terminal unless
    `tell_background` is False (the caller then says it its own way); likewise when a program
    has the terminal out of line mode (a full-screen editor, a REPL): a read would take its keys.
    `for_sdk` (credential_process): the prompt says that the caller may stop waiting.
    Windows has no /dev/tty: `console()` (hostos.console) is asked on there instead.
    """
    if token is not None:
        return check_token(token)
    if profile.mfa_process:
        return _from_process(profile.mfa_process, tty_opener, popen, environ)
    if profile.mfa_prompt == "none":
        raise MfaError(
            f'profile {profile.name!r} has mfa_prompt = "none": pass -t/--token CODE or set mfa_process'
        )
    if profile.mfa_prompt == "dialog":
        return _from_dialog(profile, environ, ask_dialog)
    with tty_opener() as tty:
        if tty is not None:
            return _from_prompt(profile, tty, tell_background, for_sdk)
    con = console()
    if con is not None:
        return _from_console(profile, con, for_sdk)
    from . import dialog  # not at the top: an mfa_process or a terminal answers most calls

    if profile.mfa_prompt == "auto" and dialog.desktop_session(environ):
        return _from_dialog(profile, environ, ask_dialog)
    raise MfaError(
        "no terminal to ask for the MFA code: pass -t/--token CODE or set "
        f"mfa_process in profile {profile.name!r}"
    )


def _from_dialog(
    profile: Profile,
    environ: Mapping[str, str],
    ask_dialog: Optional[Callable[[str, Mapping[str, str]], str]],
) -> str:
    from . import dialog

    ask = ask_dialog or dialog.ask
    # The dialog's argv is visible to every user (ps): the profile's name, not the device ARN
    # (which names the account and the user).
    answer = ask(f"MFA code for aws-elevate profile {profile.name}", environ)
    code = normalize_code(answer)
    if code is None:
        raise MfaError("the MFA dialog did not return a six-digit code")
    return code


def _from_process(
    command: str,
    tty_opener: Callable[[], AbstractContextManager[Optional[TextIO]]],
    popen: Callable[..., subprocess.Popen[bytes]],
    environ: Mapping[str, str],
) -> str:
    argv = shlex.split(command)
    program = process_program(argv[0], environ)
    started: list[subprocess.Popen[bytes]] = []
    with tty_opener() as tty:
        try:
            try:
                # A signal while the child starts would leave it running with nobody to stop it:
                # it is held until the child is known, and then raised inside this `try`.
                with signals_deferred():
                    started.append(
                        popen(
                            argv,
                            executable=program,
                            stdin=tty if tty is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE,
                            stderr=tty if tty is not None else sys.stderr,
                        )
                    )
            except FileNotFoundError:
                raise MfaError(f"mfa_process: command not found: {argv[0]!r}") from None
            except PermissionError:
                raise MfaError(f"mfa_process: {argv[0]!r} is not executable") from None
            except OSError as exc:
                raise MfaError(f"mfa_process: cannot run {argv[0]!r}: {exc.strerror}") from None
            out = _wait_for(started[0])
        finally:
            for child in started:
                if child.poll() is None:  # timed out, or we are being interrupted: stop it
                    child.kill()
                    child.wait()
    child = started[0]
    if child.returncode != 0:
        raise MfaError(f"mfa_process {argv[0]!r} failed with exit status {child.returncode}")
    code = normalize_code(out.decode("utf-8", "replace"))
    if code is None:
        raise MfaError(f"mfa_process {argv[0]!r} did not print a six-digit code")
    return code


def process_program(name: str, environ: Mapping[str, str]) -> str:
    """The program mfa_process runs: an absolute path as given, else a bare name found in
    PATH's trusted directories (elevate.programs), as for the dialog; MfaError otherwise."""
    if os.path.isabs(name):
        return name
    if os.sep in name or (os.altsep and os.altsep in name):
        raise MfaError(
            f"mfa_process: {name!r} is a relative path, which would run from the working directory: "
            "give its absolute path"
        )
    found = programs.find_trusted(name, environ)
    if found is not None:
        return found
    passed_over = programs.untrusted_match(name, environ)
    if passed_over is not None:
        raise MfaError(
            f"mfa_process: {name!r} is found only at {passed_over!r}, through a relative PATH entry or "
            "a place others can write: give the absolute path of the one you mean"
        )
    raise MfaError(f"mfa_process: command not found in PATH's trusted directories: {name!r}")


def _wait_for(child: subprocess.Popen[bytes]) -> bytes:
    """The child's stdout once it exits; bounded, and given up when our own parent dies."""
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while True:
        try:
            out, _ = child.communicate(timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
            return out
        except subprocess.TimeoutExpired:
            end_if_orphaned()
            if time.monotonic() >= deadline:
                raise MfaError(f"mfa_process gave no code within {PROCESS_TIMEOUT:.0f} s") from None


def _from_prompt(profile: Profile, tty: TextIO, tell_background: bool = True, for_sdk: bool = False) -> str:
    if in_background(tty):
        # The digits typed would go to the shell, not to us: say so now rather than wait.
        message = (
            "elevate is running in the background (a job started with &?), so it cannot read "
            "the MFA code from the terminal: run it in the foreground, or pass -t/--token CODE "
            f"or set mfa_process in profile {profile.name!r}"
        )
        if tell_background:
            _write_anyway(tty, ui.line(message) + "\n")
        raise TerminalBusy(message)
    if not _line_mode(tty):
        raise TerminalBusy(
            "another program has the terminal out of line mode (a full-screen program?), so "
            "elevate cannot read the MFA code there: pass -t/--token CODE or set mfa_process "
            f"in profile {profile.name!r}"
        )

    def ask(prompt: str) -> Optional[str]:
        tty.write(prompt)
        tty.flush()
        return _told_why_if_ended(tty, lambda: _read_line(tty))

    return _ask_code(profile, ask, tty.write, for_sdk)


def _from_console(profile: Profile, con: hostos.Console, for_sdk: bool) -> str:
    """The code typed at the Windows console: shown as typed, bounded in time like the prompt."""

    def ask(prompt: str) -> Optional[str]:
        try:
            return hostos.console_line(
                con, prompt, echo=True, timeout=PROMPT_TIMEOUT, on_idle=end_if_orphaned
            )
        except errors.ConsoleTimeout:
            raise MfaError(f"no MFA code entered within {PROMPT_TIMEOUT:.0f} s") from None

    return _ask_code(
        profile, ask, lambda text: hostos.console_write(con, text.replace("\n", "\r\n")), for_sdk
    )


def _ask_code(
    profile: Profile, ask: Callable[[str], Optional[str]], say: Callable[[str], object], for_sdk: bool
) -> str:
    """Ask for the code up to _ATTEMPTS times: `ask(prompt)` is the line typed (None at end of input)."""
    if for_sdk:
        say(ui.line(SDK_DEADLINE_NOTE) + "\n")
    for _ in range(_ATTEMPTS):
        line = ask(f"MFA code for {profile.mfa_serial}: ")
        if line is None:
            raise MfaError("no MFA code entered")
        code = normalize_code(line)
        if code is not None:
            return code
        say("An MFA code is six digits. Try again.\n")
    raise MfaError(f"no valid MFA code after {_ATTEMPTS} attempts")


def _told_why_if_ended(tty: TextIO, read: Callable[[], Optional[str]]) -> Optional[str]:
    """`read()`; when elevate is ended meanwhile (a signal, or whoever asked is gone), the
    terminal says why before the prompt vanishes: the caller's stderr is often swallowed."""
    try:
        return read()
    except Terminated as exc:
        why = (
            "the program that asked for credentials stopped waiting"
            if exc.signum == SIGHUP and parent_gone()
            else f"elevate was stopped ({signal.Signals(exc.signum).name})"
        )
        _write_anyway(
            tty, "\n" + ui.line(f"{why} while the MFA code was being asked for: {SDK_DEADLINE_NOTE}") + "\n"
        )
        raise


def in_background(tty: TextIO) -> bool:
    """Whether this process is not in the terminal's foreground process group."""
    try:
        fd = tty.fileno()
    except (OSError, ValueError, AttributeError):
        return False  # not a real terminal (a test double): nothing to tell
    return hostos.in_background(fd)


def _line_mode(tty: TextIO) -> bool:
    """Whether the terminal reads whole lines (ICANON), as a shell leaves it for us."""
    try:
        fd = tty.fileno()
    except (OSError, ValueError, AttributeError):
        return True  # not a real terminal (a test double): nothing to protect
    return hostos.line_mode(fd)


def _write_anyway(tty: TextIO, text: str) -> None:
    """Write to the terminal from a background job: with SIGTTOU ignored, TOSTOP cannot stop us."""
    try:
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    except ValueError:  # not the main thread: SIGTTOU's default stays; TOSTOP is rarely set
        previous = None
    try:
        tty.write(text)
        tty.flush()
    except OSError:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTTOU, previous)


def _read_line(tty: TextIO) -> Optional[str]:
    """One line from the terminal, or None at end of input; bounded so we never hang."""
    deadline = time.monotonic() + PROMPT_TIMEOUT
    while True:
        try:
            ready, _, _ = select.select([tty], [], [], min(1.0, max(deadline - time.monotonic(), 0)))
        except (OSError, ValueError, TypeError):
            ready = [tty]  # not selectable (a test double): read directly
        if ready:
            break
        # Whoever asked for credentials (a killed AWS CLI, an SDK that gave up) is gone.
        end_if_orphaned()
        if time.monotonic() >= deadline:
            raise MfaError(f"no MFA code entered within {PROMPT_TIMEOUT:.0f} s")
    line = tty.readline()
    return line if line else None
