"""MFA code sources: --token, mfa_process, and the terminal prompt (with a fake terminal)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, TextIO

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.branches import Branches

from elevate import mfa
from elevate.config import parse_config
from elevate.errors import ConfigError, MfaError, TerminalBusy, UsageError
from elevate.models import Profile

PROFILE = Profile(
    name="dev", role_arn="arn:aws:iam::123456789012:role/R", mfa_serial="arn:aws:iam::123456789012:mfa/a"
)


class FakeTty(io.StringIO):
    """A terminal whose input is fixed and whose output we can read."""

    def __init__(self, typed: str) -> None:
        super().__init__()
        self.input = io.StringIO(typed)

    def readline(self, size: Optional[int] = -1) -> str:  # type: ignore[override]
        return self.input.readline()


def opener(tty: Optional[TextIO]):  # type: ignore[no-untyped-def]
    @contextlib.contextmanager
    def open_it() -> Iterator[Optional[TextIO]]:
        yield tty

    return open_it


@pytest.mark.parametrize(
    ("raw", "code"), [("123456", "123456"), (" 123 456\n", "123456"), ("1 2 3 4 5 6", "123456")]
)
def test_normalize_accepts_six_digits_with_spaces(raw: str, code: str) -> None:
    assert mfa.normalize_code(raw) == code


@pytest.mark.parametrize("raw", ["12345", "1234567", "12345a", "", "١٢٣٤٥٦", "123456\n7", "12-3456"])
def test_normalize_refuses_anything_else(raw: str) -> None:
    assert mfa.normalize_code(raw) is None


def test_any_token_is_six_ascii_digits_or_refused() -> None:
    branches = Branches()
    # Six digits, spaces anywhere (they are ignored), beside arbitrary text.
    tokens = st.one_of(st.from_regex(r" ?[0-9]{3} ?[0-9]{3} ?", fullmatch=True), st.text(max_size=20))

    @given(tokens)
    def check(raw: str) -> None:
        try:
            code = mfa.check_token(raw)
        except UsageError as exc:
            branches.took("refused")
            assert "--token must be six digits" in exc.message
            assert raw.strip() == "" or raw not in exc.message or len(raw) < 3
        else:
            branches.took("accepted")
            assert len(code) == 6 and code.isascii() and code.isdigit()

    check()
    branches.assert_each_ran("accepted", "refused")


def test_token_wins_over_everything() -> None:
    profile = Profile(**{**PROFILE.__dict__, "mfa_process": "false"})
    assert mfa.obtain_code(profile, "654321", tty_opener=opener(None), environ=os.environ) == "654321"


def test_prompt_on_terminal_reprompts_then_accepts() -> None:
    tty = FakeTty("abc\n12345\n 654 321\n")
    assert mfa.obtain_code(PROFILE, None, tty_opener=opener(tty), environ=os.environ) == "654321"
    shown = tty.getvalue()
    assert shown.count("MFA code for arn:aws:iam::123456789012:mfa/a: ") == 3
    assert shown.count("An MFA code is six digits") == 2


def test_prompt_gives_up_after_three_bad_codes_and_on_eof() -> None:
    with pytest.raises(MfaError, match="no valid MFA code after 3 attempts"):
        mfa.obtain_code(PROFILE, None, tty_opener=opener(FakeTty("a\nb\nc\nd\n")), environ=os.environ)
    with pytest.raises(MfaError, match="no MFA code entered"):
        mfa.obtain_code(PROFILE, None, tty_opener=opener(FakeTty("")), environ=os.environ)


def test_no_terminal_fails_at_once_naming_the_alternatives() -> None:
    with pytest.raises(MfaError, match=r"pass -t/--token CODE or set mfa_process in profile 'dev'"):
        mfa.obtain_code(PROFILE, None, tty_opener=opener(None), environ=os.environ)


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "code.sh"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_mfa_process_runs_without_shell_and_reads_stdout(tmp_path: Path) -> None:
    marker = tmp_path / "ran-through-shell"
    path = script(tmp_path, 'echo " 123 456 "; echo chatter >&2')
    command = f"{path} ';touch {marker}'"
    profile = Profile(**{**PROFILE.__dict__, "mfa_process": command})
    assert mfa.obtain_code(profile, None, tty_opener=opener(None), environ=os.environ) == "123456"
    assert not marker.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("exit 3", "failed with exit status 3"),
        ("echo nope", "did not print a six-digit code"),
        ("echo 12345", "did not print"),
    ],
)
def test_mfa_process_failures(tmp_path: Path, body: str, message: str) -> None:
    profile = Profile(**{**PROFILE.__dict__, "mfa_process": script(tmp_path, body)})
    with pytest.raises(MfaError, match=message):
        mfa.obtain_code(profile, None, tty_opener=opener(None), environ=os.environ)


def test_mfa_process_missing_and_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = Profile(**{**PROFILE.__dict__, "mfa_process": str(tmp_path / "absent")})
    with pytest.raises(MfaError, match="command not found"):
        mfa.obtain_code(profile, None, tty_opener=opener(None), environ=os.environ)
    monkeypatch.setattr(mfa, "PROCESS_TIMEOUT", 0.5)
    slow = Profile(**{**PROFILE.__dict__, "mfa_process": script(tmp_path, "sleep 30")})
    with pytest.raises(MfaError, match="gave no code within"):
        mfa.obtain_code(slow, None, tty_opener=opener(None), environ=os.environ)


def test_seconds_to_next_code() -> None:
    assert mfa.seconds_to_next_code(datetime(2026, 1, 1, 0, 0, 0, tzinfo=timezone.utc)) == 30
    assert mfa.seconds_to_next_code(datetime(2026, 1, 1, 0, 0, 29, tzinfo=timezone.utc)) == 1
    assert mfa.seconds_to_next_code(datetime(2026, 1, 1, 0, 0, 45, tzinfo=timezone.utc)) == 15


def test_config_value_with_trailing_newline_is_refused() -> None:
    text = (
        '[profiles.dev]\nrole_arn = "arn:aws:iam::123456789012:role/R\\n"\n'
        'mfa_serial = "arn:aws:iam::123456789012:mfa/a"\n'
    )
    with pytest.raises(ConfigError, match="role_arn"):
        parse_config(text, Path("c.toml"))


def test_prompt_never_touches_stdout() -> None:
    # A process with no terminal: the failure is on stderr, stdout stays empty.
    done = subprocess.run(
        [sys.executable, "-c", "from elevate import ui; ui.tell('hello')"],
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    assert done.stdout == "" and done.stderr == "elevate: hello\n"


def drain(fd: int) -> bytes:
    """What is waiting on `fd` now (nothing when nothing is)."""
    import select

    data = b""
    while select.select([fd], [], [], 0.2)[0]:
        data += os.read(fd, 4096)
    return data


def test_a_terminal_out_of_line_mode_is_not_read_from() -> None:
    """A full-screen program (an editor, a REPL) holds the terminal raw: a read would take its
    keystrokes one by one and wait for a newline that may never come. elevate refuses at once."""
    import tty as ttymod

    master, slave = os.openpty()
    try:
        terminal = io.TextIOWrapper(io.FileIO(slave, "r+", closefd=False), write_through=True)
        os.write(master, b"123456\n")
        ask = opener(terminal)
        assert mfa.obtain_code(PROFILE, None, tty_opener=ask, environ={}) == "123456"  # line mode: read
        assert b"MFA code for" in drain(master)
        ttymod.setraw(slave)
        os.write(master, b"654321\n")
        with pytest.raises(TerminalBusy, match="out of line mode"):
            mfa.obtain_code(PROFILE, None, tty_opener=ask, environ={})
        assert b"MFA code for" not in drain(master)  # not asked
        assert os.read(slave, 100) == b"654321\n"  # and the keys are still there for the program
    finally:
        os.close(master)
        os.close(slave)
