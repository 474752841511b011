"""scripts/acceptance, run against moto for its wiring (moto evaluates no policy).

Against real IAM in a sandbox every row must PASS (docs/admin.md). Here the script must deploy
both templates, make the throwaway developer and device, try every property, delete all it made
and print the table; the rows that expect "denied" show "allowed" (moto allows everything, and
has no policy simulator), so the exit status is 1: which also shows the script fails a broken
property rather than passing it.
"""

from __future__ import annotations

import subprocess
import sys

from support.cfn import REPO, aws_env, moto_client, venv_tool

ACCEPTANCE = REPO / "scripts" / "acceptance"
PREFIX = "accept-test"
PROPERTIES = [
    "key alone, window closed: create an MFA device",
    "key alone, window open: enable the device",
    "key alone: close own window (UntagUser)",
    "key alone, window closed again: create a second device",
    "key alone: reopen own window (TagUser)",
    "key alone: create an access key",
    "key alone: AssumeRole of a role trusting the user by name, no MFA condition",
    'key alone: AssumeRole of a role trusting "*" in the account, no MFA condition',
    "key alone: AssumeRole without MFA",
    "AssumeRole of accept-test-role in a foreign account (policy simulator, with MFA)",
    "key + MFA code in the AssumeRole call (elevate's default flow)",
    "MFA session (GetSessionToken with a code)",
    "fresh MFA: create and delete own access key",
    "fresh MFA: create another developer's access key",
    "fresh MFA: AssumeRole with a session name not the user name",
    "fresh MFA: AssumeRole as elevate does",
    "elevated, no scope: write the probe parameter (ssm:PutParameter)",
    "elevated with --scope read-only: the same write",
    "MFA session older than 60 s: create own access key",
    "MFA session older than 60 s: deactivate own MFA device",
    "key alone, tagged, after OnboardingWindowEnds: create a second device",
]


def test_acceptance_runs_every_property_and_leaves_nothing_behind(cfn_moto: str) -> None:
    venv_tool("cfn-lint")  # deploy-stack lints first
    result = subprocess.run(
        [
            sys.executable,
            str(ACCEPTANCE),
            "--prefix",
            PREFIX,
            "--settle",
            "0",
            "--old-session-wait",
            "0",
            "--no-code-wait",
            "--window-minutes",
            "0",
        ],
        env=aws_env(cfn_moto),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["property", "expected", "observed", "verdict"]
    rows = {}
    for line in lines[1:]:
        prop, rest = line.split("  ", 1)
        rows[prop.strip()] = rest.split()
    assert list(rows) == PROPERTIES, result.stderr
    for prop, (expected, *observed) in rows.items():
        if expected == "allowed":
            assert observed == ["allowed", "PASS"], (prop, observed, result.stderr)
        elif "simulator" in prop:
            assert observed[0] == "error:" and observed[-1] == "FAIL"  # moto has no simulator
        else:
            assert observed == ["allowed", "FAIL"], (prop, observed)  # moto evaluates no policy
    assert "NOT deleted" not in result.stderr
    iam = moto_client(cfn_moto, "iam")
    assert not [u for u in iam.list_users()["Users"] if u["UserName"].startswith(PREFIX)]
    assert not iam.list_virtual_mfa_devices()["VirtualMFADevices"]
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(PREFIX)]
    cfn = moto_client(cfn_moto, "cloudformation")
    live = [
        s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    assert not [name for name in live if name.startswith(PREFIX)]


def test_acceptance_help() -> None:
    result = subprocess.run(
        [sys.executable, str(ACCEPTANCE), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert "--sensitive-age" in result.stdout and "--prefix" in result.stdout
