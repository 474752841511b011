"""The second pass on the IAM stack (issue 19), as the attacker's chains, judged by
principalmapper on the documents IAM renders in moto (how, and what PMapper needs added: see
test_policy_semantics.py's module docstring; the helpers are in support/cfn.py).

* A stolen key alone reaches no role but the gate: not a same-account role whose trust names the
  user, nor one trusting "*" with aws:PrincipalOrgID (such trusts need no Allow in the caller's
  policies, so only a Deny in the developers' policy stops them).
* An elevated session with AdministratorAccess, under the boundary the stack creates, cannot
  undo the gate indirectly: a role made without the boundary, the chain CreateRole x ->
  AttachRolePolicy -> act as x -> DeleteRolePolicy on the gate, a group membership, a new policy
  version of the boundary, the identity stack or StackSet, PassRole to CloudFormation, or
  CloudTrail.
* DenyConfigReads and the onboarding window that closes by itself.

Each test names its attack; every one failed on the templates before this change (the record is
in the issue's closing note). What PMapper cannot show (IAM's own handling of same-account
trusts, the window's end in real time) is in scripts/acceptance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from support.cfn import (
    DEVELOPER_ACCESS,
    ELEVATED_ROLE,
    Judge,
    as_iam_stores,
    deploy_in_moto,
    inline_policy,
    managed_policy,
    moto_client,
)

IDENTITY = "111122223333"
MEMBER = "444455556666"
CONFIG_DENIED = "777788889999"  # developer-access.yaml with DenyConfigReads=true
WINDOW_DEFAULT = "121212121212"  # developer-access.yaml with the window left at its default
GATE_ROLE_NAME = "DeveloperElevated"  # the stack's role, by name
STACK = "developer-access"
ORG = "o-exampleorgid"
ADMINISTRATOR_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def arn(account: str, resource: str) -> str:
    return f"arn:aws:iam::{account}:{resource}"


ALICE = arn(IDENTITY, "user/developers/alice")
GATE = arn(IDENTITY, f"role/{GATE_ROLE_NAME}")
MEMBER_GATE = arn(MEMBER, f"role/{GATE_ROLE_NAME}")
BOUNDARY = arn(IDENTITY, f"policy/{GATE_ROLE_NAME}-gate-boundary")
MEMBER_BOUNDARY = arn(MEMBER, f"policy/{GATE_ROLE_NAME}-gate-boundary")
KEY_ALONE: dict[str, Any] = {}
WITH_MFA = {"aws:MultiFactorAuthPresent": "true", "aws:MultiFactorAuthAge": "5"}


@dataclass(frozen=True)
class Rendered:
    developer_policy: dict[str, Any]
    gate_trust: dict[str, Any]
    gate_inline: dict[str, Any]
    gate_boundary: dict[str, Any] | None
    member_inline: dict[str, Any]
    member_boundary: dict[str, Any] | None
    config_denied_boundary: dict[str, Any] | None
    window_default_policy: dict[str, Any]


def boundary_of(url: str, account: str) -> dict[str, Any] | None:
    role = moto_client(url, "iam", account).get_role(RoleName=GATE_ROLE_NAME)["Role"]
    attached = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    return managed_policy(url, account, attached) if attached else None


@pytest.fixture(scope="module")
def rendered(cfn_moto: str) -> Rendered:
    outputs = deploy_in_moto(
        cfn_moto,
        IDENTITY,
        DEVELOPER_ACCESS,
        STACK,
        RoleAccountIds=f"{IDENTITY},{MEMBER}",
        OnboardingWindowEnds="2099-01-01T00:00:00Z",
    )
    deploy_in_moto(cfn_moto, MEMBER, ELEVATED_ROLE, "elevated-role", TrustedAccountId=IDENTITY)
    deploy_in_moto(cfn_moto, CONFIG_DENIED, DEVELOPER_ACCESS, STACK, DenyConfigReads="true")
    window = deploy_in_moto(cfn_moto, WINDOW_DEFAULT, DEVELOPER_ACCESS, STACK)
    role = moto_client(cfn_moto, "iam", IDENTITY).get_role(RoleName=GATE_ROLE_NAME)["Role"]
    return Rendered(
        developer_policy=managed_policy(cfn_moto, IDENTITY, outputs["DeveloperPolicyArn"]),
        gate_trust=as_iam_stores(role["AssumeRolePolicyDocument"]),
        gate_inline=inline_policy(cfn_moto, IDENTITY, GATE_ROLE_NAME, "protect-the-mfa-gate"),
        gate_boundary=boundary_of(cfn_moto, IDENTITY),
        member_inline=inline_policy(cfn_moto, MEMBER, GATE_ROLE_NAME, "protect-the-mfa-gate"),
        member_boundary=boundary_of(cfn_moto, MEMBER),
        config_denied_boundary=boundary_of(cfn_moto, CONFIG_DENIED),
        window_default_policy=managed_policy(cfn_moto, WINDOW_DEFAULT, window["DeveloperPolicyArn"]),
    )


@pytest.fixture(scope="module")
def judge() -> Judge:
    return Judge()


def elevated(judge: Judge, rendered: Rendered) -> Any:
    """A session of the identity account's gate role given AdministratorAccess."""
    return judge.role(GATE, (ADMINISTRATOR_ACCESS, rendered.gate_inline), rendered.gate_boundary)


def member_elevated(judge: Judge, rendered: Rendered) -> Any:
    return judge.role(MEMBER_GATE, (ADMINISTRATOR_ACCESS, rendered.member_inline), rendered.member_boundary)


# --- a stolen key alone reaches no role but the gate -------------------------------------------

BY_NAME = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALICE},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
        }
    ],
}
ORG_WIDE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG}},
        }
    ],
}
STS_ACTIONS = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]


def key_alone_reaches(judge: Judge, rendered: Rendered, role: str, trust: dict[str, Any]) -> list[str]:
    alice = judge.user(ALICE, (rendered.developer_policy,))
    return [
        f"{action} {sorted(context)}"
        for context in (KEY_ALONE, {"aws:PrincipalOrgID": ORG}, {**WITH_MFA, "aws:PrincipalOrgID": ORG})
        for action in STS_ACTIONS
        if judge.can_assume(alice, role, trust, context, action)
    ]


def test_attack_key_alone_assumes_a_same_account_role_that_trusts_the_user(
    judge: Judge, rendered: Rendered
) -> None:
    """A legacy role (or a backdoor an elevated session left) in the identity account whose trust
    names alice, with no MFA condition: within one account that trust needs no Allow in her
    policies, so only the developers' Deny stops the key alone (and an MFA session too)."""
    assert key_alone_reaches(judge, rendered, arn(IDENTITY, "role/legacy"), BY_NAME) == []


@pytest.mark.parametrize("account", [IDENTITY, MEMBER])
def test_key_alone_and_a_role_trusting_the_organization(
    judge: Judge, rendered: Rendered, account: str
) -> None:
    """A role trusting "*" with aws:PrincipalOrgID. PMapper asks for an Allow in the caller's
    policies even within the account for Principal "*", so it refused this before the Deny too;
    what IAM itself does is a scripts/acceptance case. In a member account (and for a role that
    names alice there) the cross-account call always needed her Allow, which names only the gate."""
    assert key_alone_reaches(judge, rendered, arn(account, "role/org-wide"), ORG_WIDE) == []
    assert key_alone_reaches(judge, rendered, arn(MEMBER, "role/legacy"), BY_NAME) == []


def test_the_gate_stays_reachable_the_way_elevate_calls_it(judge: Judge, rendered: Rendered) -> None:
    alice = judge.user(ALICE, (rendered.developer_policy,))
    call = {**WITH_MFA, "sts:SourceIdentity": "alice", "sts:RoleSessionName": "alice"}
    for action in ("sts:AssumeRole", "sts:SetSourceIdentity"):
        assert judge.can_assume(alice, GATE, rendered.gate_trust, call, action)
    # The Deny names the gate by name in any account; the account Deny keeps it to RoleAccountIds.
    assert judge.allowed(alice, "sts:AssumeRole", MEMBER_GATE, call)
    assert not judge.allowed(alice, "sts:AssumeRole", arn("999988887777", f"role/{GATE_ROLE_NAME}"), call)
    # A role of the gate's name under a path is another role.
    assert not judge.allowed(alice, "sts:AssumeRole", arn(IDENTITY, f"role/x/{GATE_ROLE_NAME}"), call)


# --- an elevated session with AdministratorAccess cannot undo the gate indirectly ----------------


def test_attack_create_role_without_the_boundary(judge: Judge, rendered: Rendered) -> None:
    session = elevated(judge, rendered)
    backdoor = arn(IDENTITY, "role/backdoor")
    assert not judge.allowed(session, "iam:CreateRole", backdoor, {})
    assert not judge.allowed(
        session, "iam:CreateRole", backdoor, {"iam:PermissionsBoundary": arn(IDENTITY, "policy/x")}
    )
    assert not judge.allowed(session, "iam:CreateUser", arn(IDENTITY, "user/backdoor"), {})
    # With the boundary, creating roles stays possible (what PowerUser-style work needs).
    assert judge.allowed(session, "iam:CreateRole", backdoor, {"iam:PermissionsBoundary": BOUNDARY})


def test_attack_chain_create_role_attach_admin_assume_and_delete_the_gate(
    judge: Judge, rendered: Rendered
) -> None:
    """CreateRole x -> AttachRolePolicy AdministratorAccess -> AssumeRole x -> as x,
    DeleteRolePolicy on the gate's inline Deny (and the ways around the boundary x is under)."""
    session = elevated(judge, rendered)
    x = arn(IDENTITY, "role/x")
    # The only x the session can create carries the boundary; attaching admin to it is allowed.
    assert judge.allowed(session, "iam:CreateRole", x, {"iam:PermissionsBoundary": BOUNDARY})
    assert judge.allowed(session, "iam:AttachRolePolicy", x, {})
    as_x = judge.role(x, (ADMINISTRATOR_ACCESS,), rendered.gate_boundary)
    for action, resource, context in [
        ("iam:DeleteRolePolicy", GATE, {}),
        ("iam:UpdateAssumeRolePolicy", GATE, {}),
        ("iam:DeleteRolePermissionsBoundary", GATE, {}),
        ("iam:DeleteRolePermissionsBoundary", x, {}),
        ("iam:PutRolePermissionsBoundary", x, {"iam:PermissionsBoundary": arn(IDENTITY, "policy/open")}),
        ("iam:CreatePolicyVersion", BOUNDARY, {}),
        ("iam:CreatePolicyVersion", arn(IDENTITY, "policy/Developers-self-service-and-elevate"), {}),
        ("iam:CreateRole", arn(IDENTITY, "role/y"), {}),
    ]:
        assert not judge.allowed(as_x, action, resource, context), (action, resource)
        assert not judge.allowed(session, action, resource, context), (action, resource)


def test_attack_add_a_developer_to_another_group(judge: Judge, rendered: Rendered) -> None:
    """alice into an admin group: her key alone would then hold its rights in 36-hour MFA
    sessions, outside the role's boundary. AddUserToGroup names only the group."""
    session = elevated(judge, rendered)
    for group in ("group/Admins", "group/Developers", "group/anything"):
        assert not judge.allowed(session, "iam:AddUserToGroup", arn(IDENTITY, group), {}), group
        assert not judge.allowed(session, "iam:RemoveUserFromGroup", arn(IDENTITY, group), {}), group


def test_attack_new_version_of_the_boundary(judge: Judge, rendered: Rendered) -> None:
    session = elevated(judge, rendered)
    for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"):
        assert not judge.allowed(session, action, BOUNDARY, {}), action
    assert judge.allowed(session, "iam:GetPolicyVersion", BOUNDARY, {})


@pytest.mark.parametrize(
    "resource",
    [
        f"arn:aws:cloudformation:us-east-1:{IDENTITY}:stack/{STACK}/0f1e2d3c-aaaa-bbbb-cccc-000000000000",
        f"arn:aws:cloudformation:eu-west-1:{IDENTITY}:stack/{STACK}/0f1e2d3c-aaaa-bbbb-cccc-000000000000",
        f"arn:aws:cloudformation:us-east-1:{IDENTITY}:stackset/aws-elevate-elevated-role:0f1e2d3c-aaaa",
    ],
)
def test_attack_update_or_delete_the_identity_stack(judge: Judge, rendered: Rendered, resource: str) -> None:
    session = elevated(judge, rendered)
    for action in (
        "cloudformation:UpdateStack",
        "cloudformation:DeleteStack",
        "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet",
        "cloudformation:SetStackPolicy",
        "cloudformation:UpdateTerminationProtection",
        "cloudformation:UpdateStackSet",
        "cloudformation:DeleteStackSet",
        "cloudformation:UpdateStackInstances",
    ):
        assert not judge.allowed(session, action, resource, {}), action
    assert judge.allowed(session, "cloudformation:DescribeStacks", resource, {})
    # Other stacks are the managed policies' business.
    other = f"arn:aws:cloudformation:us-east-1:{IDENTITY}:stack/app/1"
    assert judge.allowed(session, "cloudformation:UpdateStack", other, {})


def test_attack_pass_a_role_to_cloudformation(judge: Judge, rendered: Rendered) -> None:
    session = elevated(judge, rendered)
    admin_role = arn(IDENTITY, "role/OrganizationAccountAccessRole")
    context = {"iam:PassedToService": "cloudformation.amazonaws.com"}
    assert not judge.allowed(session, "iam:PassRole", admin_role, context)
    # Passing roles to other services stays as the managed policies say (docs/admin.md says
    # why that is a risk left to the admin: an existing admin role passed to Lambda or EC2).
    assert judge.allowed(session, "iam:PassRole", admin_role, {"iam:PassedToService": "lambda.amazonaws.com"})


def test_attack_blind_cloudtrail(judge: Judge, rendered: Rendered) -> None:
    session = elevated(judge, rendered)
    trail = f"arn:aws:cloudtrail:us-east-1:{IDENTITY}:trail/org-trail"
    for action in (
        "cloudtrail:StopLogging",
        "cloudtrail:DeleteTrail",
        "cloudtrail:UpdateTrail",
        "cloudtrail:PutEventSelectors",
    ):
        assert not judge.allowed(session, action, trail, {}), action
    assert judge.allowed(session, "cloudtrail:LookupEvents", "*", {})


def test_attack_member_account_session_works_around_its_role(judge: Judge, rendered: Rendered) -> None:
    """The same indirect paths from the member account's role (elevated-role.yaml)."""
    session = member_elevated(judge, rendered)
    stack = f"arn:aws:cloudformation:us-east-1:{MEMBER}:stack/elevated-role/0f1e2d3c"
    for action, resource, context in [
        ("iam:CreateRole", arn(MEMBER, "role/x"), {}),
        ("iam:DeleteRolePermissionsBoundary", arn(MEMBER, "role/x"), {}),
        ("iam:CreatePolicyVersion", MEMBER_BOUNDARY, {}),
        ("iam:AddUserToGroup", arn(MEMBER, "group/Admins"), {}),
        ("cloudformation:UpdateStack", stack, {}),
        ("iam:PassRole", arn(MEMBER, "role/admin"), {"iam:PassedToService": "cloudformation.amazonaws.com"}),
        ("cloudtrail:StopLogging", f"arn:aws:cloudtrail:us-east-1:{MEMBER}:trail/t", {}),
    ]:
        assert not judge.allowed(session, action, resource, context), (action, resource)
    assert judge.allowed(
        session, "iam:CreateRole", arn(MEMBER, "role/x"), {"iam:PermissionsBoundary": MEMBER_BOUNDARY}
    )


# --- what ViewOnlyAccess shows, and the onboarding window -------------------------------------

CONFIG_READS = [
    ("lambda:ListFunctions", "*"),
    ("lambda:GetFunctionConfiguration", "arn:aws:lambda:us-east-1:777788889999:function:f"),
    ("ec2:DescribeInstanceAttribute", "*"),
    ("ec2:DescribeLaunchTemplateVersions", "*"),
    ("ecs:DescribeTaskDefinition", "*"),
    ("cloudformation:DescribeStacks", "arn:aws:cloudformation:us-east-1:777788889999:stack/app/1"),
    ("apigateway:GET", "arn:aws:apigateway:us-east-1::/restapis/a1/stages/prod"),
    ("cognito-idp:ListUsers", "arn:aws:cognito-idp:us-east-1:777788889999:userpool/p"),
    ("sns:ListSubscriptions", "*"),
    ("s3:ListBucket", "arn:aws:s3:::some-bucket"),
]


def test_deny_config_reads_is_opt_in(judge: Judge, rendered: Rendered) -> None:
    role = arn(CONFIG_DENIED, f"role/{GATE_ROLE_NAME}")
    denied = judge.role(role, (ADMINISTRATOR_ACCESS,), rendered.config_denied_boundary)
    default = judge.role(GATE, (ADMINISTRATOR_ACCESS,), rendered.gate_boundary)
    for action, resource in CONFIG_READS:
        assert not judge.allowed(denied, action, resource, {}), action
        assert judge.allowed(default, action, resource, {}), action
    # Metadata reads stay.
    assert judge.allowed(denied, "ec2:DescribeInstances", "*", {})


ENROL = [
    ("iam:CreateVirtualMFADevice", arn(IDENTITY, "mfa/alice")),
    ("iam:EnableMFADevice", ALICE),
    ("iam:ListVirtualMFADevices", "*"),
    ("iam:ChangePassword", ALICE),
]


def test_attack_onboarding_window_left_open(judge: Judge, rendered: Rendered) -> None:
    """A user tagged elevate-onboarding=true weeks ago and never enrolled: a thief with the key
    registers a device. The window closes at OnboardingWindowEnds whatever the tag says."""
    tagged = {"elevate-onboarding": "true"}
    alice = judge.user(ALICE, (rendered.developer_policy,), tags=tagged)
    before = {"aws:CurrentTime": "2098-12-31T23:59:59Z"}
    after = {"aws:CurrentTime": "2099-01-01T00:00:00Z"}
    for action, resource in ENROL:
        assert judge.allowed(alice, action, resource, before), action
        assert not judge.allowed(alice, action, resource, after), action
    # Left at its default, the window is closed: tagging a user opens nothing.
    default = judge.user(
        arn(WINDOW_DEFAULT, "user/developers/alice"), (rendered.window_default_policy,), tags=tagged
    )
    for action, resource in ENROL:
        resource = resource.replace(IDENTITY, WINDOW_DEFAULT)
        assert not judge.allowed(default, action, resource, {}), action
