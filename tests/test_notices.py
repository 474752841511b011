"""Warnings reach the terminal under credential_process, at most once a day each (issue 12, item 7)."""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.cli import elevate_argv
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.fakests import FakeSts
from support.terminal import finish, spawn

from elevate import notices
from elevate.models import SourceKeys

WARNING = "the stored access key for 'dev' is"


@pytest.mark.slow
def test_a_key_age_warning_reaches_the_terminal_once_a_day(fake_sts: FakeSts, tmp_path: Path) -> None:
    from elevate import keystore

    old = datetime.now(timezone.utc) - timedelta(days=200)
    keystore.put_keys("dev", SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET, created=old))
    write_config(
        {
            "dev": {
                "role_arn": "arn:aws:iam::123456789012:role/Dev",
                "mfa_serial": "arn:aws:iam::123456789012:mfa/dev",
                "region": "us-east-1",
            }
        }
    )
    out = tmp_path / "OUT"

    def credential_process(code: str) -> tuple[str, int]:
        # As the AWS CLI runs it: stdout captured, stderr thrown away, the terminal still there.
        argv = [*elevate_argv(), "credential-process", "dev", "--no-cache", "-t", code]
        return finish(spawn(f"{shlex.join(argv)} > {shlex.quote(str(out))} 2>/dev/null", tmp_path))

    shown, status = credential_process("111111")
    assert status == 0, shown
    assert f"elevate: warning: {WARNING}" in shown and "`elevate rotate dev`" in shown
    assert WARNING not in out.read_text(), "never on stdout"
    again, status = credential_process("222222")
    assert status == 0, again
    assert WARNING not in again, "not twice the same day"
    state = tmp_path / "cache" / "warned.json"
    assert state.stat().st_mode & 0o077 == 0
    assert "rotate" not in state.read_text(), "kept hashed"


def test_once_a_day_per_text_and_again_the_next_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown: list[str] = []

    class Tty:
        def write(self, text: str) -> int:
            shown.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    from collections.abc import Iterator
    from contextlib import contextmanager
    from typing import Optional, TextIO, cast

    @contextmanager
    def tty() -> Iterator[Optional[TextIO]]:
        yield cast(TextIO, Tty())

    day = [datetime(2030, 1, 1, 9, tzinfo=timezone.utc)]

    def say(message: str) -> None:
        notices.warn(
            message, tmp_path / "c", clock=lambda: day[0], tty_opener=tty, stderr_is_terminal=lambda: False
        )

    say("A")
    say("A")
    say("B")
    assert shown == ["elevate: warning: A\n", "elevate: warning: B\n"]
    day[0] += timedelta(days=1)
    say("A")
    assert shown[-1] == "elevate: warning: A\n" and len(shown) == 3
    assert capsys.readouterr().err.count("elevate: warning: A") == 3, "stderr gets every one"
    (tmp_path / "c" / "warned.json").write_text("[not json")
    say("A")
    assert len(shown) == 4, "a damaged record shows the warning rather than hide it"
