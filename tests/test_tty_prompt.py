"""The MFA prompt under a real pseudo-terminal: it reaches the terminal while stdout is captured.

Each test elevates for real against the moto server, with the code typed from the
provisioned device's TOTP seed.
"""

from __future__ import annotations

import json
import re
import shlex
import stat
import sys
from pathlib import Path

from support.cli import run_elevate
from support.terminal import finish
from support.ttyprompt import ELEVATE, prompt_for, set_up, terminal

NO_TTY_TIMEOUT = 10


def only_json_object(text: str) -> dict[str, object]:
    value, end = json.JSONDecoder().raw_decode(text)
    assert text[end:].strip() == "", "more than one JSON value"
    assert isinstance(value, dict)
    return value


def test_prompt_on_terminal_while_stdout_goes_to_a_file(moto_env: str, tmp_path: Path) -> None:
    user = set_up(moto_env, "tty-credential-process")
    out = tmp_path / "OUT"
    with terminal(f"{ELEVATE} credential-process dev > {shlex.quote(str(out))}", tmp_path) as child:
        child.expect(prompt_for(user))
        child.sendline(user.totp().now())
        shown, status = finish(child)
    assert status == 0, shown
    assert "AccessKeyId" not in shown
    text = out.read_text(encoding="utf-8")
    assert "MFA code" not in text
    creds = only_json_object(text)
    assert creds["Version"] == 1
    assert str(creds["AccessKeyId"]).startswith("ASIA")


def test_eval_export_prompts_while_stdout_is_captured(moto_env: str, tmp_path: Path) -> None:
    user = set_up(moto_env, "tty-eval-export")
    command = f'eval "$({ELEVATE} export dev)" && printf "KEY=%s\\n" "$AWS_ACCESS_KEY_ID"'
    with terminal(command, tmp_path) as child:
        child.expect(prompt_for(user))
        child.sendline(user.totp().now())
        child.expect(r"KEY=(\S*)\r?\n")
        assert isinstance(child.match, re.Match)
        key_id = child.match.group(1)
        shown, status = finish(child)
    assert status == 0, shown
    assert re.fullmatch(r"ASIA[A-Z0-9]{12,}", key_id), key_id


def test_malformed_code_prompts_again(moto_env: str, tmp_path: Path) -> None:
    user = set_up(moto_env, "tty-reprompt")
    out = tmp_path / "OUT"
    with terminal(f"{ELEVATE} credential-process dev > {shlex.quote(str(out))}", tmp_path) as child:
        child.expect(prompt_for(user))
        child.sendline("12345")
        child.expect("six digits. Try again.")
        child.expect(prompt_for(user))
        child.sendline(" ".join(user.totp().now()))  # spaces between digits are allowed
        shown, status = finish(child)
    assert status == 0, shown
    only_json_object(out.read_text(encoding="utf-8"))


def test_three_malformed_codes_fail(moto_env: str, tmp_path: Path) -> None:
    user = set_up(moto_env, "tty-three-bad")
    out = tmp_path / "OUT"
    with terminal(f"{ELEVATE} credential-process dev > {shlex.quote(str(out))}", tmp_path) as child:
        for bad in ("abcdef", "1234567", "12 34 5"):
            child.expect(prompt_for(user))
            child.sendline(bad)
            child.expect("six digits. Try again.")
        shown, status = finish(child)
    assert status == 1, shown
    assert "elevate: error: no valid MFA code after 3 attempts" in shown
    assert "Traceback" not in shown
    assert out.read_text(encoding="utf-8") == ""


def test_ctrl_c_at_the_prompt_exits_130(moto_env: str, tmp_path: Path) -> None:
    user = set_up(moto_env, "tty-ctrl-c")
    out = tmp_path / "OUT"
    with terminal(f"{ELEVATE} credential-process dev > {shlex.quote(str(out))}", tmp_path) as child:
        child.expect(prompt_for(user))
        child.sendintr()
        shown, status = finish(child)
    assert status == 130, shown
    assert "interrupted" in shown
    assert "Traceback" not in shown
    assert out.read_text(encoding="utf-8") == ""


def test_no_terminal_fails_at_once(moto_env: str, tmp_path: Path) -> None:
    set_up(moto_env, "tty-none")
    # run_elevate starts a new session: no controlling terminal, so /dev/tty cannot be opened.
    done = run_elevate("credential-process", "dev", timeout=NO_TTY_TIMEOUT)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("elevate: error: ")
    assert "--token" in done.stderr
    assert "mfa_process" in done.stderr
    assert "Traceback" not in done.stderr


def test_mfa_process_supplies_the_code_without_a_prompt(moto_env: str, tmp_path: Path) -> None:
    script = tmp_path / "mfa code tool"
    argv_log = tmp_path / "argv.json"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, pyotp\n"
        f"open({str(argv_log)!r}, 'w').write(json.dumps(sys.argv))\n"
        "print(pyotp.TOTP(os.environ['TEST_MFA_SEED']).now())\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    # Quoted arguments with shell syntax in them: they must reach the script verbatim.
    command = f"{shlex.quote(str(script))} 'a;b' '$HOME' \"`x`\""
    user = set_up(moto_env, "tty-mfa-process", mfa_process=command)
    out = tmp_path / "OUT"
    with terminal(
        f"{ELEVATE} credential-process dev > {shlex.quote(str(out))}",
        tmp_path,
        TEST_MFA_SEED=user.mfa_seed,
    ) as child:
        shown, status = finish(child)
    assert status == 0, shown
    assert "MFA code" not in shown
    creds = only_json_object(out.read_text(encoding="utf-8"))
    assert str(creds["AccessKeyId"]).startswith("ASIA")
    argv = json.loads(argv_log.read_text(encoding="utf-8"))
    assert argv == [str(script), "a;b", "$HOME", "`x`"]
