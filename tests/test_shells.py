"""The renderers' text evaluated by real shells: hostile values arrive intact and run nothing.

Values are fed straight to elevate.output (bypassing validate.py, which would refuse them
long before a renderer sees them), the text is evaluated by bash, zsh, fish and sh the
ways users do it (eval, source, a pipe, stdin), and the shell then dumps its environment
with `env -0`, which round-trips every byte except NUL.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import string
import subprocess
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from support.cli import run_elevate
from support.configs import write_config
from support.constants import SERIAL
from support.provision import provision
from support.realparts import require_tool

from elevate import cache, output
from elevate.cli import cli
from elevate.config import load_config
from elevate.errors import OutputError
from elevate.invocation import Invocation
from elevate.models import SessionCredentials
from elevate.store import FileStore

SHELL_TIMEOUT = 20
CLI_TIMEOUT = 60


def hostile_values(marker: Path) -> dict[str, str]:
    """Values that break any quoting short of the right one; each names a distinct trap."""
    m = str(marker)
    return {
        "SINGLE_QUOTE": "it's",
        "ONLY_QUOTE": "'",
        "QUOTE_ESCAPE": "'\\''",
        "DOUBLE_QUOTE": 'say "hi" "',
        "CMD_SUBST": "$(touch MARKER)",
        "CMD_SUBST_ABS": f"$(touch '{m}')",
        "CMD_SUBST_FISH": f"(touch '{m}')",
        "BACKTICKS": f"`touch MARKER` `touch {m}`",
        "SEMICOLON": f"a; touch {m}; b",
        "PIPE": f"a | touch {m}",
        "AMPERSAND": f"a & touch {m} & b && c",
        "NEWLINE": f"line one\ntouch {m}\n",
        "CR": "a\rb\r\n\r",
        "BACKSLASH": "a\\b\\\\c\\n\\'\\\"",
        "TRAILING_BACKSLASH": "abc\\",
        "QUOTE_BACKSLASH": "\\'",
        "BACKSLASH_QUOTE_END": "'\\",
        "BANG": "!! !$ !-1 !touch",
        "PERCENT": "%s %n %% 100%",
        "BRACES": "{a,b} {} ${HOME} $HOME ${PATH:-x} {1..3}",
        "GLOB": "* ? [a-z] ~ ~root",
        "UNICODE": "naïve \u2018single\u2019 \u201cdouble\u201d \u201a\u201b ✓ 日本語 \U0001f512",
        "LEADING_DASH": "-e",
        "LEADING_DASHES": "--help",
        "EMPTY": "",
        "SPACES": "  padded  ",
        "TAB": "\ta\tb\t",
        "CONTROL": "\x01\x1b[31mred\x1b[0m\x7f",
        "LONG": "A/+=" * 5000,
    }


def fake_credentials() -> SessionCredentials:
    """Credential-shaped values generated at runtime, never stored in the repo."""
    upper = string.ascii_uppercase + string.digits
    wide = string.ascii_letters + string.digits + "/+"
    return SessionCredentials(
        access_key_id="ASIA" + "".join(secrets.choice(upper) for _ in range(16)),
        secret_access_key="".join(secrets.choice(wide) for _ in range(40)),
        session_token="".join(secrets.choice(wide) for _ in range(400)),
        expiration=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1),
    )


def shell_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LC_ALL"] = "C.UTF-8"
    env["HOME"] = str(work.parent / "home")
    return env


def parse_env0(raw: bytes) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in raw.split(b"\0"):
        if entry:
            name, _, value = entry.partition(b"=")
            found[name.decode()] = value
    return found


# shell -> (argv prefix, how to evaluate a file for each method)
POSIX_METHODS = {
    "source": '. "$1" && env -0',
    "eval": 'eval "$(cat "$1")" && env -0',
}
FISH_METHODS = {
    "source": "source $argv[1]; and env -0",
    "pipe": "cat $argv[1] | source; and env -0",
}
SHELLS = {
    "bash": (["--norc", "--noprofile"], "bash"),
    "zsh": (["-f"], "zsh"),
    "sh": ([], "bash"),
    "fish": (["--no-config"], "fish"),
}
CASES = [
    (shell, method)
    for shell in SHELLS
    for method in [*(FISH_METHODS if shell == "fish" else POSIX_METHODS), "stdin"]
]


def evaluate(shell: str, method: str, text: str, tmp_path: Path) -> dict[str, bytes]:
    """Have a real `shell` evaluate `text` by `method`; return its environment afterwards."""
    path = require_tool(shell)
    flags, _ = SHELLS[shell]
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    script = tmp_path / "exports.txt"
    script.write_text(text, encoding="utf-8")
    if method == "stdin":
        argv = [path, *flags] + ([] if shell == "fish" else ["-s"])
        stdin = (text + "env -0\n").encode()
    else:
        body = (FISH_METHODS if shell == "fish" else POSIX_METHODS)[method]
        argv = [path, *flags, "-c", body] + ([] if shell == "fish" else [shell]) + [str(script)]
        stdin = b""
    done = subprocess.run(
        argv, input=stdin, capture_output=True, cwd=work, env=shell_env(work), timeout=SHELL_TIMEOUT
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stderr == b""
    return parse_env0(done.stdout)


def assert_arrived(expected: Mapping[str, str], got: Mapping[str, bytes], work: Path) -> None:
    for name, value in expected.items():
        assert name in got, f"{name} was not exported"
        assert got[name] == value.encode("utf-8"), f"{name} changed on the way"
    assert list(work.iterdir()) == [], "a value ran a command in the shell"


@pytest.mark.slow  # a real shell
@pytest.mark.parametrize(("shell", "method"), CASES)
def test_hostile_values_arrive_intact(shell: str, method: str, tmp_path: Path) -> None:
    marker = tmp_path / "work" / "MARKER"
    env = {f"HOSTILE_{name}": value for name, value in hostile_values(marker).items()}
    text = output.render(SHELLS[shell][1], env)
    got = evaluate(shell, method, text, tmp_path)
    assert_arrived(env, got, tmp_path / "work")
    assert not marker.exists()


@pytest.mark.slow  # a real shell
@pytest.mark.parametrize("shell", list(SHELLS))
def test_credential_variables_with_hostile_fields(shell: str, tmp_path: Path) -> None:
    """The full variables() set: every credential field, the region and the profile hostile."""
    marker = tmp_path / "work" / "MARKER"
    values = list(hostile_values(marker).values())
    expiration = datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    for offset in range(0, len(values), 5):
        pick = (values * 2)[offset : offset + 5]
        creds = SessionCredentials(pick[0], pick[1], pick[2], expiration)
        env = output.variables(creds, pick[3] or "r", pick[4])
        got = evaluate(shell, "source", output.render(SHELLS[shell][1], env), tmp_path)
        assert_arrived(env, got, tmp_path / "work")
        assert got["AWS_CREDENTIAL_EXPIRATION"] == b"2031-01-02T01:04:05Z"
    assert not marker.exists()


@pytest.mark.slow  # a real shell
def test_the_shell_check_catches_naive_quoting(tmp_path: Path) -> None:
    """Control: the same harness sees a command run by double-quoted exports."""
    marker = tmp_path / "work" / "MARKER"
    env = {"NAIVE": "$(touch MARKER)x"}
    naive = "".join(f'export {name}="{value}"\n' for name, value in env.items())
    got = evaluate("bash", "source", naive, tmp_path)
    assert got["NAIVE"] == b"x"
    assert marker.exists()


# --- PowerShell: pure functions here, the real thing when pwsh happens to be installed ----------

PS_QUOTES = "'\u2018\u2019\u201a\u201b"


def parse_powershell_verbatim(text: str) -> str:
    """PowerShell's reading of a '...' string: any single-quote mark ends it unless doubled."""
    assert text[0] in PS_QUOTES
    value, i = [], 1
    while i < len(text):
        c = text[i]
        if c in PS_QUOTES:
            if i + 1 < len(text) and text[i + 1] in PS_QUOTES:
                value.append(c)
                i += 2
                continue
            assert i == len(text) - 1, f"string ends early at {i}: {text!r}"
            return "".join(value)
        value.append(c)
        i += 1
    raise AssertionError(f"unterminated string: {text!r}")


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("it's", "'it''s'"),
        ("'", "''''"),
        ("\u2018x\u2019", "'\u2018\u2018x\u2019\u2019'"),
        ("\u201a\u201b", "'\u201a\u201a\u201b\u201b'"),
        ('$env:PATH $(Remove-Item x) `n "', "'$env:PATH $(Remove-Item x) `n \"'"),
        ("", "''"),
    ],
)
def test_quote_powershell_doubles_every_single_quote_mark(value: str, quoted: str) -> None:
    assert output.quote_powershell(value) == quoted
    assert parse_powershell_verbatim(quoted) == value


@given(st.text(alphabet=st.characters(blacklist_characters="\0")))
def test_quote_powershell_round_trips(value: str) -> None:
    assert parse_powershell_verbatim(output.quote_powershell(value)) == value


def test_render_powershell_lines() -> None:
    text = output.render_powershell({"A": "x'y", "B": ""})
    assert text == "$env:A = 'x''y'\n$env:B = ''\n"


@pytest.mark.slow  # a real shell
def test_powershell_for_real_when_installed(tmp_path: Path) -> None:
    pwsh = shutil.which("pwsh")
    if pwsh is None:
        pytest.skip("pwsh is not installed (optional)")
    marker = tmp_path / "work" / "MARKER"
    (tmp_path / "work").mkdir()
    env = {f"HOSTILE_{k}": v for k, v in hostile_values(marker).items() if v and "\r" not in v}
    script = output.render_powershell(env)
    script += "[Environment]::GetEnvironmentVariables() | ConvertTo-Json -Compress\n"
    path = tmp_path / "exports.ps1"
    path.write_text(script, encoding="utf-8-sig")
    done = subprocess.run(
        [pwsh, "-NoProfile", "-NonInteractive", "-File", str(path)],
        capture_output=True,
        cwd=tmp_path / "work",
        env=shell_env(tmp_path / "work"),
        timeout=SHELL_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    got = json.loads(done.stdout)
    for name, value in env.items():
        assert got[name] == value
    assert not marker.exists()


# --- dotenv ----------------------------------------------------------------------------------------

UNSAFE_FOR_DOTENV = ["it's", "a\nb", "a\rb", "a\\b", "abc\\", "a\0b", "${HOME}", "$HOME"]


@pytest.mark.parametrize("value", UNSAFE_FOR_DOTENV)
def test_dotenv_refuses_unsafe_values_naming_the_variable(value: str) -> None:
    with pytest.raises(OutputError) as caught:
        output.render_dotenv({"AWS_REGION": "eu-west-1", "SOME_VARIABLE": value})
    assert "SOME_VARIABLE" in caught.value.message


SAFE_FOR_DOTENV = {
    "DOUBLE_QUOTE": 'say "hi"',
    "BACKTICKS": "`touch MARKER`",
    "PUNCTUATION": "a; b | c & d # e ! f % g {} = h",
    "UNICODE": "naïve \u2018single\u2019 \u201cdouble\u201d 日本語",
    "LEADING_DASH": "-e",
    "EMPTY": "",
    "SPACES": "  padded  ",
}


def test_dotenv_safe_values_round_trip_through_python_dotenv() -> None:
    dotenv = pytest.importorskip("dotenv")
    creds = fake_credentials()
    env = {**output.variables(creds, "eu-west-1", "dev"), **SAFE_FOR_DOTENV}
    parsed = dotenv.dotenv_values(stream=io.StringIO(output.render_dotenv(env)))
    assert dict(parsed) == env


@pytest.mark.parametrize("fmt", output.FORMATS)
def test_nul_byte_refused_by_every_format(fmt: str) -> None:
    with pytest.raises(OutputError):
        output.render(fmt, {"AWS_ACCESS_KEY_ID": "ASIA\0X"})


# --- the default format follows $SHELL -----------------------------------------------------------

SHELL_FORMATS = [
    ("/usr/bin/fish", "fish"),
    ("/bin/zsh", "zsh"),
    ("/usr/local/bin/pwsh", "powershell"),
    ("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "powershell"),
    ("/bin/bash", "bash"),
    ("/bin/sh", "bash"),
    ("", "bash"),
    (None, "bash"),
]


@pytest.mark.parametrize(("shell", "fmt"), SHELL_FORMATS)
def test_default_format_follows_shell(shell: str | None, fmt: str) -> None:
    assert output.default_format(shell) == fmt


def write_dev_config(role_arn: str, mfa_serial: str) -> Path:
    return write_config(
        {"dev": {"role_arn": role_arn, "mfa_serial": mfa_serial, "region": "eu-west-1"}}, default="dev"
    )


def seed_cache(creds: SessionCredentials) -> None:
    """Put `creds` in the file cache for profile dev, as an earlier elevation would have."""
    profile = load_config(Path(os.environ["ELEVATE_CONFIG"])).profiles["dev"]
    store = FileStore(cache.cache_dir(os.environ))
    store.write(cache.entry_key(profile, Invocation.from_environ(os.environ)), cache.encode(creds, "dev"))


FIRST_LINE = {"fish": "set -gx AWS_ACCESS_KEY_ID ", "powershell": "$env:AWS_ACCESS_KEY_ID = "}


@pytest.mark.parametrize(("shell", "fmt"), [s for s in SHELL_FORMATS if s[0] != ""])
def test_export_default_format_follows_shell_through_the_cli(
    shell: str | None, fmt: str, tmp_path: Path
) -> None:
    """Both the fast path (subprocess) and the full CLI (CliRunner) read $SHELL."""
    write_dev_config("arn:aws:iam::123456789012:role/Dev", SERIAL)
    creds = fake_credentials()
    seed_cache(creds)
    want = FIRST_LINE.get(fmt, "export AWS_ACCESS_KEY_ID=") + {
        "powershell": output.quote_powershell,
        "fish": output.quote_fish,
    }.get(fmt, output.quote_posix)(creds.access_key_id)

    env = {k: v for k, v in os.environ.items() if k != "SHELL"}
    if shell is not None:
        env["SHELL"] = shell
    fast = run_elevate("export", env=env, timeout=CLI_TIMEOUT)
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout.splitlines()[0] == want

    result = CliRunner().invoke(cli, ["export", "dev"], env={"SHELL": shell})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == want


# --- through the real CLI against moto ------------------------------------------------------------


def elevate_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_elevate(*args, stdin=stdin, timeout=CLI_TIMEOUT)


def test_cli_export_evaluated_by_bash_matches_credential_process(moto_env: str, tmp_path: Path) -> None:
    bash = require_tool("bash")
    user = provision(moto_env, user_name="shells-cli")
    write_dev_config(user.role_arn, user.mfa_serial)
    added = elevate_cli("keys", "add", "dev", stdin=f"{user.access_key_id}\n{user.secret_access_key}\n")
    assert added.returncode == 0, added.stderr

    process = elevate_cli("credential-process", "dev", "--token", user.totp().now())
    assert process.returncode == 0, process.stderr
    issued = json.loads(process.stdout)

    exported = elevate_cli("export", "dev", "--format", "bash")  # served from the cache: no code
    assert exported.returncode == 0, exported.stderr
    script = exported.stdout + 'printf "%s\\0%s" "$AWS_ACCESS_KEY_ID" "$AWS_CREDENTIAL_EXPIRATION"\n'
    done = subprocess.run(
        [bash, "--norc", "--noprofile", "-s"],
        input=script,
        capture_output=True,
        text=True,
        env=shell_env(tmp_path),
        timeout=SHELL_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    key_id, expiration = done.stdout.split("\0")
    assert key_id.startswith("ASIA")
    assert key_id == issued["AccessKeyId"]
    assert expiration == issued["Expiration"]
    assert expiration.endswith("Z")
    assert datetime.fromisoformat(expiration[:-1] + "+00:00") > datetime.now(timezone.utc)
