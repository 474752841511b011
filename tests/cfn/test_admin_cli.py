"""`elevate admin deploy` and `elevate admin drift`: the deploy tool (elevate/admin/deploy.py)
reached through the package's CLI, arguments and exit status passed through unchanged, and
scripts/deploy-stack the same tool for a fresh clone."""

from __future__ import annotations

import os

from support.cfn import DEPLOY_STACK, run_deploy_stack
from support.cli import run_elevate


def test_admin_deploy_is_the_deploy_tool() -> None:
    own = run_elevate("admin", "deploy", "--help")
    assert own.returncode == 0, own.stderr
    assert "Usage: elevate admin deploy" in own.stdout
    done = run_deploy_stack(["--help"], dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "usage: deploy-stack" in done.stdout
    for mode in ("stack", "stackset", "drift", "window"):
        assert mode in done.stdout
    stack = run_elevate("admin", "deploy", "stack", "--help")
    assert stack.returncode == 0, stack.stderr
    assert "--stack-name" in stack.stdout and "--no-protection" in stack.stdout


def test_admin_drift_is_the_drift_mode() -> None:
    own = run_elevate("admin", "drift", "--help")
    assert own.returncode == 0, own.stderr
    assert "Usage: elevate admin drift" in own.stdout
    # Its options reach the drift mode (an unknown one is argparse's error, exit 2).
    done = run_elevate("admin", "drift", "--no-such-option")
    assert done.returncode == 2
    assert "deploy-stack: error: unrecognized arguments: --no-such-option" in done.stderr
    modes = run_elevate("admin", "deploy", "drift", "--help")
    assert "--member-role-name" in modes.stdout and "--stack-set-name" in modes.stdout


def test_admin_passes_the_exit_status_and_the_error_through() -> None:
    done = run_elevate("admin", "deploy", "stack", "--no-lint", "--param", "no-equals-sign")
    assert done.returncode == 1
    assert "deploy-stack: error: --param wants KEY=VALUE" in done.stderr
    usage = run_elevate("admin", "deploy", "no-such-mode")
    assert usage.returncode == 2
    assert "invalid choice" in usage.stderr


def test_admin_group_lists_its_commands() -> None:
    done = run_elevate("admin", "--help")
    assert done.returncode == 0, done.stderr
    assert "deploy" in done.stdout and "drift" in done.stdout


def test_deploy_stack_script_is_a_shim_over_the_package() -> None:
    assert os.access(DEPLOY_STACK, os.X_OK)
    text = DEPLOY_STACK.read_text()
    assert "from elevate.admin.deploy import main" in text
    assert len(text.splitlines()) < 25
    done = run_deploy_stack(["stack", "--no-lint", "--param", "x"], dict(os.environ))
    assert done.returncode == 1
    assert "--param wants KEY=VALUE" in done.stderr
