"""`elevate completion`: the bash, zsh and fish scripts work in the real shells, and the
environment-variable mechanism matches the command.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.cli import elevate_argv, run_elevate
from support.onboarding import (
    elevate_config,
    put,
)
from support.realparts import require_tool

from elevate.cli import cli

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

TIMEOUT = 60

# --- completion --------------------------------------------------------------------------------


@pytest.fixture
def elevate_on_path(tmp_path: Path) -> dict[str, str]:
    """PATH with an `elevate` that runs this checkout (the completion scripts call it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "elevate"
    script.write_text(f'#!/bin/sh\nexec {shlex.join(elevate_argv())} "$@"\n')
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.slow  # a real shell
def test_completion_bash_completes_commands_and_profiles(elevate_on_path: dict[str, str]) -> None:
    bash = require_tool("bash")
    put(
        elevate_config(),
        b'[profiles.dev]\nrole_arn = "arn:aws:iam::123456789012:role/R"\n'
        b'mfa_serial = "arn:aws:iam::123456789012:mfa/u"\n[profiles.demo]\n'
        b'role_arn = "arn:aws:iam::123456789012:role/R"\nmfa_serial = "arn:aws:iam::123456789012:mfa/u"\n',
    )
    complete = 'COMPREPLY=(); _elevate_completion elevate; echo "${COMPREPLY[@]}"'
    script = (
        f'eval "$(elevate completion bash)"; COMP_WORDS=(elevate con); COMP_CWORD=1; {complete}; '
        f"COMP_WORDS=(elevate doctor de); COMP_CWORD=2; {complete}"
    )
    done = subprocess.run(
        [bash, "--norc", "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=elevate_on_path,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["configure", "demo dev"]


@pytest.mark.slow  # a real shell
def test_completion_zsh_script_loads(elevate_on_path: dict[str, str]) -> None:
    zsh = require_tool("zsh")
    script = (
        "autoload -Uz compinit && compinit -u -D && "
        'eval "$(elevate completion zsh)" && print -r -- $_comps[elevate]'
    )
    done = subprocess.run(
        [zsh, "-f", "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=elevate_on_path,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "_elevate_completion"


@pytest.mark.slow  # a real shell
def test_completion_fish_completes_subcommands(elevate_on_path: dict[str, str]) -> None:
    fish = require_tool("fish")
    script = "elevate completion fish | source; complete -C 'elevate mfa '"
    done = subprocess.run(
        [fish, "--no-config", "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=elevate_on_path,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["enroll"]


def test_completion_through_clirunner_prints_the_zsh_script() -> None:
    result = CliRunner().invoke(cli, ["completion", "zsh"], standalone_mode=False)
    assert result.exception is None
    assert result.stdout.startswith("#compdef elevate") and "_ELEVATE_COMPLETE=zsh_complete" in result.stdout
    refused = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert refused.exit_code == 2


@pytest.mark.slow  # a real shell
def test_completion_env_var_mechanism_matches_the_command(elevate_on_path: dict[str, str]) -> None:
    # `elevate` from PATH, not run_elevate: the console-script name is what click's completion
    # variable (_ELEVATE_COMPLETE) is derived from, so the shim on PATH is what is under test.
    via_var = subprocess.run(
        ["elevate"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        start_new_session=True,
        env={**elevate_on_path, "_ELEVATE_COMPLETE": "bash_source"},
    )
    assert via_var.returncode == 0, via_var.stderr
    assert via_var.stdout.strip() == run_elevate("completion", "bash").stdout.strip()
