"""One way to speak: every line elevate words follows elevate.ui's one prefix rule, written
through its emitters only, and nothing of it reaches stdout."""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, TextIO

import pytest
from click.testing import CliRunner
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.onboarding import credentials_file, golden, put

import elevate
from elevate import ui
from elevate.cli import cli
from elevate.invocation import Invocation
from elevate.onboarding.configure import Onboarding

PACKAGE = Path(elevate.__file__).parent
HOSTILE = "line one\nline two \x1b[2Jcleared \u202eesrever\x07"


@contextmanager
def no_terminal() -> Iterator[Optional[TextIO]]:
    yield None


@pytest.fixture
def headless(monkeypatch: pytest.MonkeyPatch) -> None:
    """No controlling terminal: what goes to the terminal falls back to stderr."""
    monkeypatch.setattr(ui, "open_tty", no_terminal)


EMITTERS: list[tuple[str, Callable[[str], None], ui.Kind]] = [
    ("tell", ui.tell, ""),
    ("inform", ui.inform, ""),
    ("warn", ui.warn, "warning"),
    ("error", ui.error, "error"),
]


@pytest.mark.parametrize(("name", "emit", "kind"), EMITTERS, ids=[e[0] for e in EMITTERS])
def test_every_emitter_follows_the_one_prefix_rule(
    headless: None, capsys: pytest.CaptureFixture[str], name: str, emit: Callable[[str], None], kind: ui.Kind
) -> None:
    emit("the stack is ready")
    out, err = capsys.readouterr()
    assert out == "", f"{name} wrote to stdout, which carries data only"
    expected = f"elevate: {kind}: the stack is ready\n" if kind else "elevate: the stack is ready\n"
    assert err == expected == ui.line("the stack is ready", kind) + "\n"


@pytest.mark.parametrize("emit", [ui.warn, ui.error], ids=["warn", "error"])
def test_a_warning_or_an_error_is_one_printable_line_however_hostile_its_text(
    capsys: pytest.CaptureFixture[str], emit: Callable[[str], None]
) -> None:
    emit(HOSTILE)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n")
    assert not any(ord(c) < 0x20 or c == "\u202e" for c in err[:-1]), repr(err)
    assert "line one | line two \\x1b[2Jcleared \\u202eesrever\\x07" in err


def test_a_message_keeps_its_lines_and_a_program_speaks_under_its_own_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ui.inform("will remove:\n  a\n  b")
    ui.inform("creating stack s", "deploy-stack")
    ui.error("no region", "deploy-stack")
    assert capsys.readouterr().err == (
        "elevate: will remove:\n  a\n  b\ndeploy-stack: creating stack s\ndeploy-stack: error: no region\n"
    )


def test_text_shown_as_it_is_gets_no_prefix_and_one_line_end(capsys: pytest.CaptureFixture[str]) -> None:
    ui.stderr("Usage: elevate [OPTIONS]\n\nError: no such option\n")
    assert capsys.readouterr() == ("", "Usage: elevate [OPTIONS]\n\nError: no such option\n")


def test_a_closed_stderr_is_not_an_error(monkeypatch: pytest.MonkeyPatch, headless: None) -> None:
    class Closed:
        def write(self, text: str) -> int:
            raise ValueError("I/O operation on closed file")

        def flush(self) -> None:
            raise ValueError("I/O operation on closed file")

    monkeypatch.setattr("sys.stderr", Closed())
    for _, emit, _kind in EMITTERS:
        emit("nobody hears this")


# --- the rule has one owner: no module words a prefix, or writes to stderr, itself -----------


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Each string literal, and each f-string's literal parts, with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _stderr_writes(tree: ast.AST) -> Iterator[int]:
    """Lines that write to sys.stderr directly: sys.stderr.write(...), print(..., file=sys.stderr),
    click.echo(..., err=True)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        text = ast.unparse(node.func)
        if text in ("sys.stderr.write", "sys.__stderr__.write"):
            yield node.lineno
        for keyword in node.keywords:
            if keyword.arg == "file" and "stderr" in ast.unparse(keyword.value):
                yield node.lineno
            if text.endswith("echo") and keyword.arg == "err":
                yield node.lineno


def test_the_checks_below_see_a_hand_made_prefix_and_a_direct_write() -> None:
    tree = ast.parse(
        'import sys\nsys.stderr.write(f"elevate: {x}")\nprint("\\nelevate: interrupted", file=sys.stderr)\n'
        'click.echo("x", err=True)\nlog = "elevate: debug: %(message)s"\nnotify(f"warning: {problem}")\n'
    )
    assert sorted(line for line, text in _strings(tree) if _hand_made(text)) == [2, 3, 5, 6]
    assert sorted(_stderr_writes(tree)) == [2, 3, 4]


def _hand_made(text: str) -> bool:
    """A prefix, or a warning's or an error's kind, worded outside elevate.ui."""
    starts = ("elevate: ", "deploy-stack: ", "warning: ", "error: ")
    return any(part.startswith(starts) for part in text.split("\n"))


def test_no_module_words_the_prefix_or_writes_to_stderr_but_ui() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "ui.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(PACKAGE.parent)
        found += [f"{where}:{line} {text!r}" for line, text in _strings(tree) if _hand_made(text)]
        found += [f"{where}:{line} writes to stderr" for line in _stderr_writes(tree)]
    assert not found, found


# --- one event, one form -------------------------------------------------------------------


def test_a_stored_key_set_is_told_the_same_way_by_keys_add_as_by_keys_import() -> None:
    # `keys import` always said `elevate: stored ... as NAME in BACKEND`; `keys add` said it bare.
    done = CliRunner().invoke(cli, ["keys", "add", "work"], input=f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n")
    assert done.exit_code == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("elevate: stored AKIA************MPLE as 'work' in "), done.stderr
    assert done.stderr.count("\n") == 1 and EXAMPLE_SECRET not in done.stderr


def test_a_readable_credentials_file_is_warned_about_as_every_warning_is(
    sealed_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(credentials_file(), golden("credentials.in", KEY_ID=EXAMPLE_ID, SECRET=EXAMPLE_SECRET), 0o644)
    told: list[str] = []
    Onboarding(Invocation.from_environ(os.environ), notify=told.append).import_keys(
        "work", "work", delete_plaintext=True
    )
    warning = f"elevate: warning: {credentials_file()} is readable by group or others (mode 644): "
    assert capsys.readouterr().err.startswith(warning)
    assert not any("readable by group" in line for line in told)  # a warning, not a progress line
