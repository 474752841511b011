"""Errors that reach the person when an SDK hides elevate's stderr.

Terraform shows "process provider error: exit status 1" (the reason only with TF_LOG=debug),
and the JS SDK v3's default chain says "Could not load credentials from any providers" after
running credential_process twice (its ini and process providers). Under credential_process
the one-line error also goes to the terminal (at most once a minute per reason), and a failure
is remembered for a few seconds, so the chain's second run answers it again without a second
AssumeRole or MFA code.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional, TextIO

import pexpect
import pytest
from support.cli import elevate_argv, one_error_line, run_elevate
from support.configs import write_config
from support.constants import ROLE, SERIAL
from support.fakests import FakeSts
from support.realparts import require, require_tool
from support.sessioncache import MfaScript, example_keys
from support.terminal import terminal

from elevate import core, notices

REPO = Path(__file__).resolve().parent.parent
JS_SDK = Path(os.environ.get("ELEVATE_JS_SDK_DIR") or REPO / ".js-sdk") / "node_modules"
DENIED = (403, "AccessDenied", "User is not authorized to perform: sts:AssumeRole on the role")
ERROR_ON_TERMINAL = re.compile(r"elevate: error: [^\r\n]*not authorized")

JS_DEFAULT_CHAIN = """
const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");
const client = new STSClient({ region: "us-east-1", endpoint: process.argv[2] });
client.send(new GetCallerIdentityCommand({}))
  .then(() => console.log("js: resolved"))
  .catch((e) => console.log("js: failed: " + e.message.split("\\n")[0]));
"""


def denied_profile(fake_sts: FakeSts, mfa: MfaScript) -> None:
    """Profile dev (and the AWS config's [profile dev]) whose AssumeRole STS refuses."""
    example_keys()
    dev = {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev", "mfa_process": mfa.command}
    write_config({"dev": dev}, default="dev")
    command = shlex.join(elevate_argv("credential-process", "dev"))
    path = Path(os.environ["AWS_CONFIG_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[profile dev]\ncredential_process = {command}\nregion = us-east-1\n", encoding="utf-8")
    fake_sts.behave("AssumeRole", error=DENIED)


def test_the_error_reaches_the_terminal_when_stderr_is_swallowed(
    fake_sts: FakeSts, mfa: MfaScript, tmp_path: Path
) -> None:
    denied_profile(fake_sts, mfa)
    one = shlex.join(elevate_argv("credential-process", "dev"))
    with terminal(f"{one} 2>/dev/null; {one} 2>/dev/null; echo done", tmp_path, timeout=30) as tty:
        tty.expect("done")
        shown = str(tty.before)
    assert len(ERROR_ON_TERMINAL.findall(shown)) == 1, shown  # the second run: remembered, not repeated


def test_a_failure_is_answered_again_for_a_few_seconds_without_sts_or_a_code(
    fake_sts: FakeSts, mfa: MfaScript
) -> None:
    denied_profile(fake_sts, mfa)
    first = one_error_line(run_elevate("credential-process", "dev"))
    second = one_error_line(run_elevate("credential-process", "dev"))
    assert "not authorized" in first and "not authorized" in second
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1
    time.sleep(core.SDK_FAILURE_MEMORY_SECONDS + 0.5)
    one_error_line(run_elevate("credential-process", "dev"))
    assert fake_sts.count("AssumeRole") == 2 and mfa.runs == 2  # forgotten after a few seconds
    fake_sts.reset("AssumeRole")
    time.sleep(core.SDK_FAILURE_MEMORY_SECONDS + 0.5)
    assert run_elevate("credential-process", "dev").returncode == 0


def test_a_new_token_is_a_new_attempt(fake_sts: FakeSts, mfa: MfaScript) -> None:
    denied_profile(fake_sts, mfa)
    one_error_line(run_elevate("credential-process", "dev"))
    fake_sts.reset("AssumeRole")
    assert run_elevate("credential-process", "dev", "-t", "246802").returncode == 0


@pytest.mark.slow
def test_the_js_sdk_default_chain_shows_why_and_costs_one_assume_role(
    fake_sts: FakeSts, mfa: MfaScript, tmp_path: Path
) -> None:
    node = require_tool("node")
    require(
        (JS_SDK / "@aws-sdk" / "client-sts").is_dir(), f"the JS SDK v3 is not installed in {JS_SDK.parent}"
    )
    denied_profile(fake_sts, mfa)
    script = tmp_path / "chain.js"
    script.write_text(JS_DEFAULT_CHAIN)
    command = shlex.join([node, str(script), fake_sts.url])
    with terminal(command, tmp_path, timeout=60, AWS_PROFILE="dev", NODE_PATH=str(JS_SDK)) as tty:
        tty.expect(pexpect.EOF)
        shown = str(tty.before)
    assert "js: failed" in shown
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1, shown  # 2 and 2 before
    assert ERROR_ON_TERMINAL.search(shown) is not None, shown


@pytest.mark.slow
def test_terraform_shows_why(fake_sts: FakeSts, mfa: MfaScript, tmp_path: Path) -> None:
    terraform = require_tool("terraform")
    mirror = _terraform_mirror()
    require(mirror is not None, "no filesystem mirror with the hashicorp/aws provider")
    denied_profile(fake_sts, mfa)
    work = tmp_path / "tf"
    work.mkdir()
    cli_config = tmp_path / "terraform.rc"
    cli_config.write_text(
        textwrap.dedent(f"""\
        provider_installation {{
          filesystem_mirror {{
            path    = "{mirror}"
            include = ["registry.terraform.io/hashicorp/aws"]
          }}
          direct {{ exclude = ["registry.terraform.io/hashicorp/aws"] }}
        }}
        """)
    )
    (work / "main.tf").write_text(
        textwrap.dedent(f"""\
        provider "aws" {{
          region                      = "us-east-1"
          profile                     = "dev"
          skip_region_validation      = true
          skip_requesting_account_id  = true
          skip_credentials_validation = false
          endpoints {{
            sts = "{fake_sts.url}"
            iam = "{fake_sts.url}"
          }}
        }}
        data "aws_caller_identity" "me" {{}}
        """)
    )
    env = {"TF_CLI_CONFIG_FILE": str(cli_config), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    init = subprocess.run(
        [terraform, "init", "-input=false", "-no-color"],
        cwd=work,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    require(init.returncode == 0, f"terraform init failed offline: {init.stderr[-300:]}")
    with terminal(f"{terraform} plan -input=false -no-color; echo tf-done", work, timeout=180, **env) as tty:
        tty.expect("tf-done")
        shown = str(tty.before)
    assert "process provider error" in shown or "Error" in shown, shown
    assert ERROR_ON_TERMINAL.search(shown) is not None, shown


def _terraform_mirror() -> Optional[str]:
    for base in (
        "/opt/tf-plugins",
        "/usr/share/terraform/plugins",
        str(Path.home() / ".terraform.d/plugins"),
    ):
        if (Path(base) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return base
    return None


@pytest.mark.slow
def test_the_prompt_says_sdks_may_stop_waiting_and_why_it_vanished(fake_sts: FakeSts, tmp_path: Path) -> None:
    """The Go SDK (and so Terraform) kills credential_process's shell after 60 s: elevate,
    orphaned mid-prompt, says on the terminal why the prompt went away."""
    example_keys()
    write_config({"dev": {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev"}}, default="dev")
    one = shlex.join(elevate_argv("credential-process", "dev"))
    # A stand-in for the SDK: a shell that runs elevate and is killed while elevate asks.
    command = f"sh -c '{one} 2>/dev/null; true' & sdk=$!; sleep 4; kill -KILL $sdk; sleep 4; echo done"
    with terminal(command, tmp_path, timeout=30) as tty:
        tty.expect("MFA code for " + re.escape(SERIAL) + ": ")
        before_prompt = str(tty.before)
        tty.expect("done")
        after = str(tty.before)
    assert "stop waiting for credential_process after 60 s" in before_prompt
    assert "the program that asked for credentials stopped waiting" in after
    assert fake_sts.count("AssumeRole") == 0


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_an_error_reaches_the_terminal_at_most_once_a_minute(tmp_path: Path) -> None:
    shown = io.StringIO()

    @contextmanager
    def tty() -> Iterator[Optional[TextIO]]:
        yield shown

    clock = Clock()

    def tell(message: str, key: Optional[str] = None) -> None:
        notices.error(
            message,
            tmp_path / "cache",
            key=key,
            clock=clock,
            tty_opener=tty,
            stderr_is_terminal=lambda: False,
        )

    tell("STS said no")
    tell("another elevate process failed: STS said no", key="STS said no")
    tell("something else")
    clock.now += timedelta(seconds=notices.ERROR_REPEAT_SECONDS + 1)
    tell("STS said no")
    assert shown.getvalue().splitlines() == [
        "elevate: error: STS said no",
        "elevate: error: something else",
        "elevate: error: STS said no",
    ]
    before = shown.getvalue()
    notices.error("on stderr already", tmp_path / "cache", tty_opener=tty, stderr_is_terminal=lambda: True)
    assert shown.getvalue() == before
