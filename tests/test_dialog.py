"""MFA codes from a desktop dialog when there is no terminal: mfa_prompt, fake and real dialogs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, TextIO, cast

import pytest
from support.cli import run_elevate
from support.constants import ROLE
from support.fakests import FakeSts
from support.realparts import require_tool

from elevate import dialog, keystore, mfa
from elevate.config import parse_config
from elevate.errors import ConfigError, MfaError
from elevate.models import Profile

EXAMPLE_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SERIAL = "arn:aws:iam::123456789012:mfa/alice"


def profile(**values: object) -> Profile:
    return Profile(name="dev", role_arn=ROLE, mfa_serial=SERIAL, **values)  # type: ignore[arg-type]


@contextmanager
def no_tty() -> Iterator[None]:
    yield None


class FakeTty:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True)
        self.written = ""

    def write(self, text: str) -> int:
        self.written += text
        return len(text)

    def flush(self) -> None:
        pass

    def readline(self) -> str:
        return self.lines.pop(0) if self.lines else ""


def fake_dialog(bindir: Path, body: str, name: str = "zenity") -> Path:
    """A dialog program on PATH: a shell script that records its argv then runs `body`."""
    bindir.mkdir(exist_ok=True)
    program = bindir / name
    program.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > "{bindir}/argv"\necho $$ > "{bindir}/pid"\n{body}\n'
    )
    program.chmod(stat.S_IRWXU)
    return program


def desktop(bindir: Path) -> dict[str, str]:
    return {"PATH": f"{bindir}{os.pathsep}/usr/bin:/bin", "DISPLAY": ":77"}


class Asker:
    def __init__(self, answer: str = "123456") -> None:
        self.answer = answer
        self.questions: list[str] = []

    def __call__(self, question: str, environ: Mapping[str, str]) -> str:
        self.questions.append(question)
        return self.answer


# -- mfa_prompt: which source asks --------------------------------------------------------


def test_auto_without_a_terminal_asks_a_dialog_on_a_desktop() -> None:
    asker = Asker(" 123 456\n")
    code = mfa.obtain_code(profile(), None, tty_opener=no_tty, environ={"DISPLAY": ":0"}, ask_dialog=asker)
    assert code == "123456" and asker.questions == ["MFA code for aws-elevate profile dev"]


def test_auto_prefers_the_terminal() -> None:
    tty = FakeTty("654321\n")
    asker = Asker()

    @contextmanager
    def opener() -> Iterator[FakeTty]:
        yield tty

    code = mfa.obtain_code(profile(), None, tty_opener=opener, environ={"DISPLAY": ":0"}, ask_dialog=asker)  # type: ignore[arg-type]
    assert code == "654321" and asker.questions == []


def test_auto_without_terminal_or_desktop_fails_fast_as_before() -> None:
    asker = Asker()
    with pytest.raises(MfaError, match="no terminal to ask for the MFA code"):
        mfa.obtain_code(profile(), None, tty_opener=no_tty, environ={}, ask_dialog=asker)
    assert asker.questions == []


def test_terminal_never_opens_a_dialog() -> None:
    asker = Asker()
    with pytest.raises(MfaError, match="no terminal"):
        mfa.obtain_code(
            profile(mfa_prompt="terminal"),
            None,
            tty_opener=no_tty,
            environ={"DISPLAY": ":0"},
            ask_dialog=asker,
        )
    assert asker.questions == []


def test_dialog_is_used_even_with_a_terminal_and_none_asks_nobody() -> None:
    asker = Asker()

    @contextmanager
    def opener() -> Iterator[Optional[TextIO]]:
        yield cast(TextIO, FakeTty("654321\n"))

    got = mfa.obtain_code(profile(mfa_prompt="dialog"), None, tty_opener=opener, environ={}, ask_dialog=asker)
    assert got == "123456" and len(asker.questions) == 1
    with pytest.raises(MfaError, match='mfa_prompt = "none": pass -t/--token'):
        mfa.obtain_code(profile(mfa_prompt="none"), None, tty_opener=opener, environ={}, ask_dialog=asker)
    assert len(asker.questions) == 1
    assert (
        mfa.obtain_code(
            profile(mfa_prompt="none"), "111 222", tty_opener=opener, ask_dialog=asker, environ=os.environ
        )
        == "111222"
    )


@pytest.mark.parametrize("answer", ["", "12345", "1234567", "abcdef", "123456\n654321\n"])
def test_a_dialog_answer_that_is_not_a_code_is_refused(answer: str) -> None:
    with pytest.raises(MfaError, match="did not return a six-digit code"):
        mfa.obtain_code(
            profile(), None, tty_opener=no_tty, environ={"DISPLAY": ":0"}, ask_dialog=Asker(answer)
        )


def test_config_validates_mfa_prompt() -> None:
    base = f'[profiles.dev]\nrole_arn = "{ROLE}"\nmfa_serial = "{SERIAL}"\n'
    assert parse_config(base, Path("c.toml")).profiles["dev"].mfa_prompt == "auto"
    for value in ("auto", "terminal", "dialog", "none"):
        assert (
            parse_config(base + f'mfa_prompt = "{value}"\n', Path("c.toml")).profiles["dev"].mfa_prompt
            == value
        )
    with pytest.raises(
        ConfigError,
        match=r"c.toml:4: profile 'dev': mfa_prompt 'popup' must be one of auto, terminal, dialog, none",
    ):
        parse_config(base + 'mfa_prompt = "popup"\n', Path("c.toml"))
    with pytest.raises(ConfigError, match="mfa_prompt must be a string"):
        parse_config(base + "mfa_prompt = true\n", Path("c.toml"))


# -- the dialog programs ------------------------------------------------------------------


def test_which_program_and_its_argv() -> None:
    assert dialog.desktop_session({}, "darwin") and not dialog.desktop_session({}, "linux")
    assert dialog.desktop_session({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    zenity = dialog.dialog_argv("/usr/bin/zenity", "MFA code for X", 120)
    assert zenity == [
        "/usr/bin/zenity",
        "--entry",
        "--hide-text",
        "--title",
        "aws-elevate",
        "--text",
        "MFA code for X",
    ]
    assert dialog.dialog_argv("/usr/bin/kdialog", "Q", 120) == [
        "/usr/bin/kdialog",
        "--title",
        "aws-elevate",
        "--password",
        "Q",
    ]
    osa = dialog.dialog_argv("/usr/bin/osascript", 'say "hi" \\', 30)
    assert (
        osa[1] == "-e" and 'display dialog "say \\"hi\\" \\\\" default answer "" with hidden answer' in osa[2]
    )
    assert "giving up after 30" in osa[2] and osa[3:] == ["-e", "text returned of result"]


@pytest.mark.parametrize("entry", ["", ".", "bin"])
def test_a_dialog_planted_in_the_working_directory_is_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    """credential_process runs in the caller's directory: an empty, "." or relative PATH entry
    would run a `zenity` planted there (a cloned repository), which then asks for the code."""
    work = tmp_path / "repo"
    fake_dialog(work, "echo 111111")
    fake_dialog(work / "bin", "echo 111111")
    monkeypatch.chdir(work)
    env = {"PATH": f"{entry}{os.pathsep}{tmp_path / 'empty'}", "DISPLAY": ":77"}
    assert dialog.dialog_program(env, "linux") is None
    with pytest.raises(MfaError, match="no dialog program"):
        mfa.obtain_code(profile(), None, tty_opener=no_tty, environ=env)
    assert not (work / "pid").exists() and not (work / "bin" / "pid").exists()


@pytest.mark.parametrize("writable", ["file", "directory"])
def test_a_dialog_others_can_replace_is_never_run(tmp_path: Path, writable: str) -> None:
    """A dialog program (or its PATH directory) writable by group or others could have been
    swapped by another local user for one that keeps the code, or runs anything as us."""
    bindir = tmp_path / "shared-bin"
    program = fake_dialog(bindir, "echo 111111")
    if writable == "file":
        program.chmod(0o777)
    else:
        bindir.chmod(0o1777)
    env = {"PATH": str(bindir), "DISPLAY": ":77"}
    assert dialog.dialog_program(env, "linux") is None
    with pytest.raises(MfaError, match="no dialog program"):
        mfa.obtain_code(profile(), None, tty_opener=no_tty, environ=env)
    assert not (bindir / "pid").exists()


def test_kdialog_when_zenity_is_missing(tmp_path: Path) -> None:
    fake_dialog(tmp_path / "bin", "echo 246810", name="kdialog")
    env = {"PATH": str(tmp_path / "bin"), "DISPLAY": ":77"}
    assert dialog.dialog_program(env, "linux") == str(tmp_path / "bin" / "kdialog")
    assert mfa.obtain_code(profile(), None, tty_opener=no_tty, environ=env) == "246810"
    assert (tmp_path / "bin" / "argv").read_text().splitlines()[:3] == [
        "--title",
        "aws-elevate",
        "--password",
    ]


def test_a_fake_zenity_gives_the_code_on_stdout_and_nothing_secret_in_argv(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    fake_dialog(bindir, "echo 135790")
    assert mfa.obtain_code(profile(), None, tty_opener=no_tty, environ=desktop(bindir)) == "135790"
    argv = (bindir / "argv").read_text()
    assert "135790" not in argv and EXAMPLE_SECRET not in argv
    # Every user can read a dialog's argv: it names the profile, not the device ARN (which
    # names the account and the IAM user).
    assert "profile dev" in argv
    assert SERIAL not in argv and SERIAL.split(":")[4] not in argv and "alice" not in argv


def test_no_dialog_program_on_a_desktop_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(MfaError, match=r"^no dialog program for the MFA code: install zenity or kdialog$"):
        mfa.obtain_code(
            profile(mfa_prompt="dialog"),
            None,
            tty_opener=no_tty,
            environ={"PATH": str(tmp_path / "empty"), "DISPLAY": ":7"},
        )
    with pytest.raises(MfaError, match="no desktop session"):
        mfa.obtain_code(
            profile(mfa_prompt="dialog"), None, tty_opener=no_tty, environ={"PATH": str(tmp_path)}
        )


def test_cancel_ends_in_one_line(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    fake_dialog(bindir, "echo 123456\nexit 1")  # what it printed before Cancel does not count
    with pytest.raises(MfaError) as caught:
        mfa.obtain_code(profile(), None, tty_opener=no_tty, environ=desktop(bindir))
    assert caught.value.message == "the MFA dialog was cancelled (zenity exit status 1)"


def test_a_dialog_that_never_answers_is_killed_with_its_children(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    fake_dialog(bindir, 'sleep 300 &\necho $! > "$(dirname "$0")/child"\nwait')
    started = time.monotonic()
    with pytest.raises(MfaError, match=r"^the MFA dialog got no answer within 1 s$"):
        dialog.ask("MFA code for X", desktop(bindir), timeout=1.0)
    assert time.monotonic() - started < 10
    for name in ("pid", "child"):
        pid = int((bindir / name).read_text())
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), f"the dialog's {name} process {pid} outlived the timeout"


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for a reaper that is not ours does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_dialog_that_floods_stdout_is_refused(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    fake_dialog(bindir, "head -c 100000 /dev/zero | tr '\\0' 1")
    with pytest.raises(MfaError, match="printed more than a code"):
        dialog.ask("Q", desktop(bindir))


# -- through the real CLI, with no terminal -----------------------------------------------


def setup_profile(**extra: str) -> None:
    keystore.put_keys("dev", keystore.check_keys(EXAMPLE_ID, EXAMPLE_SECRET))
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[profiles.dev]", f'role_arn = "{ROLE}"', f'mfa_serial = "{SERIAL}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")


def setsid_elevate(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`setsid elevate ARGS </dev/null`: no controlling terminal, no stdin, as an IDE runs it."""
    setsid = require_tool("setsid")
    return subprocess.Popen(
        [setsid, sys.executable, "-m", "elevate", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_credential_process_without_a_terminal_asks_a_dialog(fake_sts: FakeSts, tmp_path: Path) -> None:
    setup_profile()
    bindir = tmp_path / "bin"
    fake_dialog(bindir, "echo 975310")
    env = {**os.environ, "DISPLAY": ":77", "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    child = setsid_elevate(env, "credential-process", "dev")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert json.loads(out)["Version"] == 1 and err == ""
    assert fake_sts.last("AssumeRole")["TokenCode"] == "975310"


def test_without_a_desktop_credential_process_still_fails_fast(fake_sts: FakeSts) -> None:
    setup_profile()
    done = run_elevate("credential-process", "dev")
    assert done.returncode == 1 and done.stdout == ""
    assert "no terminal to ask for the MFA code" in done.stderr and done.stderr.count("\n") == 1


def test_a_cancelled_dialog_is_one_line_through_the_cli(fake_sts: FakeSts, tmp_path: Path) -> None:
    setup_profile()
    bindir = tmp_path / "bin"
    fake_dialog(bindir, "exit 1")
    env = {**os.environ, "DISPLAY": ":77", "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    done = run_elevate("credential-process", "dev", env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "elevate: error: the MFA dialog was cancelled (zenity exit status 1)\n"
    assert fake_sts.count("AssumeRole") == 0


def test_concurrent_callers_get_one_dialog_and_the_waiting_notice(fake_sts: FakeSts, tmp_path: Path) -> None:
    setup_profile()
    bindir = tmp_path / "bin"
    fake_dialog(bindir, 'echo x >> "$(dirname "$0")/shown"\nsleep 2\necho 864200')
    env = {**os.environ, "DISPLAY": ":77", "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    first = setsid_elevate(env, "credential-process", "dev")
    deadline = time.monotonic() + 20
    while not (bindir / "shown").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = setsid_elevate(env, "credential-process", "dev")
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    assert json.loads(out1) == json.loads(out2)
    assert (bindir / "shown").read_text() == "x\n"  # one dialog for both callers
    assert "elevate: waiting for the MFA prompt in another elevate process..." in err2
    assert fake_sts.count("AssumeRole") == 1


# -- the real thing: zenity under Xvfb, typed into by xdotool -----------------------------


@contextmanager
def xvfb() -> Iterator[str]:
    """A private X server on a free display number; its DISPLAY."""
    server = require_tool("Xvfb")
    read, write = os.pipe()
    proc = subprocess.Popen(
        [server, "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(write)
    try:
        number = b""
        with os.fdopen(read, "rb") as pipe:
            while not number.endswith(b"\n"):
                chunk = pipe.read(1)
                if not chunk:
                    raise AssertionError("Xvfb exited before giving its display")
                number += chunk
        yield f":{int(number)}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def xdotool(display: str, *args: str, timeout: float = 30) -> str:
    tool = require_tool("xdotool")
    done = subprocess.run(
        [tool, *args], env={**os.environ, "DISPLAY": display}, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_credential_process_gets_its_code_from_a_real_zenity_under_xvfb(fake_sts: FakeSts) -> None:
    zenity = require_tool("zenity")
    require_tool("xdotool")
    setup_profile()
    with xvfb() as display:
        env = {
            **os.environ,
            "DISPLAY": display,
            "PATH": f"{os.path.dirname(zenity)}{os.pathsep}{os.environ['PATH']}",
        }
        child = setsid_elevate(env, "credential-process", "dev")
        try:
            window = xdotool(display, "search", "--sync", "--name", "aws-elevate").split()[0]
            xdotool(display, "windowfocus", "--sync", window)
            xdotool(display, "type", "--delay", "50", "314159")
            xdotool(display, "key", "Return")
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.returncode == 0, err
    creds = json.loads(out)
    assert creds["Version"] == 1 and creds["AccessKeyId"] == fake_sts.issued[-1]["AccessKeyId"]
    assert fake_sts.last("AssumeRole")["TokenCode"] == "314159"
    assert "314159" not in err


def test_zenity_cancel_under_xvfb_is_one_line(fake_sts: FakeSts) -> None:
    require_tool("zenity")
    setup_profile()
    with xvfb() as display:
        env = {**os.environ, "DISPLAY": display}
        child = setsid_elevate(env, "credential-process", "dev")
        try:
            window = xdotool(display, "search", "--sync", "--name", "aws-elevate").split()[0]
            xdotool(display, "windowfocus", "--sync", window)
            xdotool(display, "key", "Escape")
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.returncode == 1 and out == ""
    assert err.splitlines()[-1] == "elevate: error: the MFA dialog was cancelled (zenity exit status 1)"
    assert fake_sts.count("AssumeRole") == 0
