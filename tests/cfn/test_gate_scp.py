"""The optional SCP (cloudformation/gate-scp.yaml): in a member account a local administrator
cannot rewrite the gate role's trust (the drift test's attack), the StackSet's execution role
still can. Judged by principalmapper with the SCP as the account's service control policy; the
Fn::Sub values are filled in here as CloudFormation would (partition aws, the default RoleName)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from support.cfn import TEMPLATES, Judge, load_template, venv_tool

GATE_SCP = TEMPLATES / "gate-scp.yaml"
MEMBER = "444455556666"
MEMBER_GATE_ROLE = f"arn:aws:iam::{MEMBER}:role/DeveloperElevated"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ALLOW_ALL_SCP = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def rendered_scp() -> dict[str, Any]:
    content = load_template(GATE_SCP)["Resources"]["GateScp"]["Properties"]["Content"]
    text = json.dumps(content)
    text = text.replace("${AWS::Partition}", "aws").replace("${RoleName}", "DeveloperElevated")
    resolved = json.loads(text, object_hook=lambda d: d.get("Fn::Sub", d) if len(d) == 1 else d)
    assert "Fn::" not in json.dumps(resolved)
    return dict(resolved)


def allowed(judge: Judge, principal: Any, action: str, resource: str) -> bool:
    scps = [
        [
            judge.policy("arn:aws:organizations::1:policy/full", "FullAWSAccess", ALLOW_ALL_SCP),
            judge.policy("arn:aws:organizations::1:policy/gate", "gate", rendered_scp()),
        ]
    ]
    return bool(
        judge.qi.local_check_authorization_full(
            principal, action, resource, {}, service_control_policy_groups=scps
        )
    )


@pytest.mark.parametrize(
    "action", ["iam:UpdateAssumeRolePolicy", "iam:DeleteRolePolicy", "iam:DeleteRolePermissionsBoundary"]
)
def test_a_local_admin_cannot_rewrite_the_gate(action: str) -> None:
    judge = Judge()
    local_admin = judge.role(f"arn:aws:iam::{MEMBER}:role/Admin", (ADMIN,))
    stackset = judge.role(f"arn:aws:iam::{MEMBER}:role/stacksets-exec-0123456789abcdef", (ADMIN,))
    assert not allowed(judge, local_admin, action, MEMBER_GATE_ROLE)
    assert allowed(judge, stackset, action, MEMBER_GATE_ROLE)
    assert allowed(judge, local_admin, "iam:GetRole", MEMBER_GATE_ROLE)
    assert allowed(judge, local_admin, action, f"arn:aws:iam::{MEMBER}:role/app")


def test_the_scp_template_lints_clean() -> None:
    result = subprocess.run(
        [venv_tool("cfn-lint"), "-c", "I", "--", str(GATE_SCP)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
