"""The IAM policies of the CloudFormation templates as rendered in moto, and a real policy
evaluator (principalmapper) over them: the accounts, principals, contexts and documents that the
policy semantics tests (tests/cfn/test_policy_semantics.py, test_policy_attacks.py) share. Why each
adjustment before evaluation is needed is said in test_policy_semantics.py's docstring."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from support.cfn import (
    DEVELOPER_ACCESS,
    ELEVATED_ROLE,
    as_iam_stores,
    for_requester,
    import_pmapper,
    inline_policy,
    load_template,
    moto_client,
    with_resource_account,
)

IDENTITY = "111122223333"  # the identity account: users, group, policy and a role
MEMBER = "444455556666"  # a member account with the role from elevated-role.yaml
STRANGER = "999988887777"  # an unrelated account
ROLE_NAME = "DeveloperElevated"
MAX_MFA_AGE = 3600  # the templates' default MaxMfaAgeSeconds
SENSITIVE_MFA_AGE = 900  # developer-access.yaml's default SensitiveMfaMaxAgeSeconds
ELEVEN_HOURS = 11 * 3600
ONBOARDING = {"elevate-onboarding": "true"}  # the tag an admin sets to open the window

# The developers' policy, as the issue states it (lower case: IAM action names are
# case-insensitive and the catalogue below is lower case).
STAR_ALWAYS = {"iam:getaccountpasswordpolicy"}  # no resource-level support
STAR = STAR_ALWAYS | {"iam:listvirtualmfadevices"}  # with MFA, or in the onboarding window
OWN_USER_READ = {
    "iam:getuser",
    "iam:getmfadevice",
    "iam:listmfadevices",
    "iam:listaccesskeys",
    "iam:getaccesskeylastused",
}
# Key, device and password changes: only with MFA younger than SensitiveMfaMaxAgeSeconds.
OWN_USER_SENSITIVE = {
    "iam:enablemfadevice",
    "iam:resyncmfadevice",
    "iam:deactivatemfadevice",
    "iam:createaccesskey",
    "iam:deleteaccesskey",
    "iam:updateaccesskey",
    "iam:changepassword",
}
OWN_USER_WITH_MFA = OWN_USER_READ | OWN_USER_SENSITIVE
OWN_USER_WITHOUT_MFA = {"iam:getuser", "iam:getmfadevice", "iam:listmfadevices"}
# What enrolling an MFA device (and a first password change) needs: in the window only.
OWN_USER_IN_WINDOW = OWN_USER_WITHOUT_MFA | {
    "iam:enablemfadevice",
    "iam:resyncmfadevice",
    "iam:changepassword",
}
OWN_MFA_DEVICE = {"iam:createvirtualmfadevice", "iam:deletevirtualmfadevice"}
ELEVATED_ROLE_ACTIONS = {"sts:assumerole", "sts:setsourceidentity"}


def arn(account: str, resource: str) -> str:
    return f"arn:aws:iam::{account}:{resource}"


ALICE = arn(IDENTITY, "user/developers/alice")
BOB = arn(IDENTITY, "user/developers/bob")
IDENTITY_ROLE = arn(IDENTITY, f"role/{ROLE_NAME}")
MEMBER_ROLE = arn(MEMBER, f"role/{ROLE_NAME}")


def fresh_mfa(age: int = 5, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Request context of a call made with an MFA code `age` seconds ago (plus `extra` keys)."""
    return {"aws:MultiFactorAuthPresent": "true", "aws:MultiFactorAuthAge": str(age), **(extra or {})}


def elevate_call(name: str, age: int = 5) -> dict[str, str]:
    """The AssumeRole request elevate makes for user `name`: MFA, and the user name as both
    source identity and session name."""
    return fresh_mfa(age, {"sts:SourceIdentity": name, "sts:RoleSessionName": name})


def untag(*keys: str) -> dict[str, str | list[str]]:
    return {"aws:TagKeys": list(keys)}


# Long-term access keys: the MFA keys are absent from the request context.
NO_MFA: dict[str, str] = {}
# Temporary credentials obtained without MFA.
MFA_FALSE = {"aws:MultiFactorAuthPresent": "false"}


@dataclass(frozen=True)
class Rendered:
    developer_policy: dict[str, Any]
    identity_trust: dict[str, Any]
    member_trust: dict[str, Any]
    own_trust: dict[str, Any]  # elevated-role.yaml trusting its own account (STRANGER), explicitly
    identity_gate: dict[str, Any] | None  # the role's inline Deny, when the stack made one
    member_gate: dict[str, Any] | None


def declared(template: Any) -> set[str]:
    return set(load_template(template).get("Parameters") or {})


def deploy(url: str, account: str, template: Any, name: str, **params: str) -> dict[str, str]:
    """Create a stack in moto. Parameters the template does not declare are left out, so that
    these tests can also be run against older templates (the before/after record in the issue);
    `test_every_parameter_the_tests_pass_is_declared` keeps that from hiding a typo."""
    cfn = moto_client(url, "cloudformation", account)
    known = declared(template)
    cfn.create_stack(
        StackName=name,
        TemplateBody=template.read_text(),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items() if k in known],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def trust_of(url: str, account: str) -> dict[str, Any]:
    role = moto_client(url, "iam", account).get_role(RoleName=ROLE_NAME)["Role"]
    trust: dict[str, Any] = as_iam_stores(role["AssumeRolePolicyDocument"])
    return trust


# The onboarding window's end far ahead, so that the tag alone decides here (the end itself is
# tested in test_attacks_gate.py).
IDENTITY_PARAMS = {"RoleAccountIds": f"{IDENTITY},{MEMBER}", "OnboardingWindowEnds": "2099-01-01T00:00:00Z"}
MEMBER_PARAMS = {"TrustedAccountId": IDENTITY}
OWN_PARAMS = {"TrustedAccountId": STRANGER}
OPT_OUT = "222233334444"  # developer-access.yaml with AllowRoleToEditGate=true
OPT_OUT_PARAMS = {"AllowRoleToEditGate": "true"}


def gate_of(url: str, account: str) -> dict[str, Any] | None:
    names = moto_client(url, "iam", account).list_role_policies(RoleName=ROLE_NAME)["PolicyNames"]
    return inline_policy(url, account, ROLE_NAME, "protect-the-mfa-gate") if names else None


def render(cfn_moto: str) -> Rendered:
    """Both templates deployed into moto (three accounts) and their documents read back from IAM."""
    outputs = deploy(cfn_moto, IDENTITY, DEVELOPER_ACCESS, "developer-access", **IDENTITY_PARAMS)
    iam = moto_client(cfn_moto, "iam", IDENTITY)
    policy = iam.get_policy(PolicyArn=outputs["DeveloperPolicyArn"])["Policy"]
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])[
        "PolicyVersion"
    ]
    document = version["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    deploy(cfn_moto, MEMBER, ELEVATED_ROLE, "elevated-role", **MEMBER_PARAMS)
    deploy(cfn_moto, STRANGER, ELEVATED_ROLE, "elevated-role", **OWN_PARAMS)
    return Rendered(
        developer_policy=as_iam_stores(document),
        identity_trust=trust_of(cfn_moto, IDENTITY),
        member_trust=trust_of(cfn_moto, MEMBER),
        own_trust=trust_of(cfn_moto, STRANGER),
        identity_gate=gate_of(cfn_moto, IDENTITY),
        member_gate=gate_of(cfn_moto, MEMBER),
    )


class Evaluator:
    """Principals built from the rendered documents, and PMapper's verdicts about them."""

    def __init__(self, rendered: Rendered) -> None:
        self.qi = import_pmapper()
        from principalmapper.common import Group, Node, Policy

        self.Group, self.Node, self.Policy = Group, Node, Policy
        self.rendered = rendered

    def user(
        self,
        user_arn: str,
        in_group: bool = True,
        policies: tuple[dict[str, Any], ...] = (),
        tags: dict[str, str] | None = None,
    ) -> Any:
        """An IAM user; `tags` are its principal tags (aws:PrincipalTag/*), e.g. ONBOARDING."""
        account = user_arn.split(":")[4]
        groups = []
        if in_group:
            document = for_requester(self.rendered.developer_policy, user_arn)
            policy = self.Policy(
                arn(account, "policy/Developers-self-service-and-elevate"),
                "Developers-self-service-and-elevate",
                document,
            )
            groups.append(self.Group(arn(account, "group/Developers"), [policy]))
        inline = [self.Policy(user_arn, f"inline{i}", p) for i, p in enumerate(policies)]
        return self.Node(
            user_arn,
            "AIDA" + user_arn.rsplit("/", 1)[1].upper(),
            inline,
            groups,
            None,
            None,
            1,
            True,
            False,
            None,
            True,
            dict(tags or {}),
        )

    def role(self, role_arn: str, policies: tuple[dict[str, Any], ...]) -> Any:
        inline = [self.Policy(role_arn, f"inline{i}", p) for i, p in enumerate(policies)]
        trust = {"Version": "2012-10-17", "Statement": []}
        return self.Node(
            role_arn,
            "AROA" + role_arn.rsplit("/", 1)[1].upper(),
            inline,
            [],
            trust,
            None,
            0,
            False,
            False,
            None,
            False,
            None,
        )

    def allowed(self, principal: Any, action: str, resource: str, context: dict[str, Any]) -> bool:
        """Identity-based decision (no resource policy involved)."""
        context = with_resource_account(context, resource)
        return bool(self.qi.local_check_authorization_full(principal, action, resource, context))

    def can_assume(
        self, principal: Any, role_arn: str, trust: dict[str, Any], context: dict[str, str]
    ) -> bool:
        """AssumeRole, plus SetSourceIdentity when the call sets one: both need the caller's
        policies and the role's trust policy to agree."""
        owner = role_arn.split(":")[4]
        trust = for_requester(trust, principal.arn)
        context = with_resource_account(context, role_arn)
        actions = ["sts:AssumeRole"]
        if "sts:SourceIdentity" in context:
            actions.append("sts:SetSourceIdentity")
        return all(
            self.qi.local_check_authorization_full(
                principal, action, role_arn, context, resource_policy=trust, resource_owner=owner
            )
            for action in actions
        )


ADMIN_LIKE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sts:*", "iam:*"], "Resource": "*"}],
}
