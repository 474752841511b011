"""What the policies allow, decided by a real IAM policy evaluator (principalmapper's local
authorization checks), on the documents as CloudFormation renders them for concrete accounts.

The documents come from deploying both templates into moto (in named accounts) and reading them
back from IAM, so every !Sub, !If and parameter default has been resolved by CloudFormation's
rules, not by ours. Two things are added before evaluation, each said where it happens:

* moto renders a Number parameter as a JSON number; CloudFormation passes it as a string, which
  is what PMapper's numeric operators parse. `as_iam_stores` turns those numbers back into strings.
* PMapper substitutes `${...}` policy variables in Resource, but compares Condition values
  literally. IAM replaces `${aws:username}` in a condition value with the requesting user's name
  (and a role has none), so `for_requester` does exactly that one substitution, per principal.
  `test_pmapper_compares_condition_variables_literally` shows that this step is needed, and that
  it changes nothing else.
* PMapper does not fill in `aws:ResourceAccount`; IAM sets it to the account that owns the
  resource. `Evaluator.allowed` and `can_assume` add it from the resource ARN's account field
  (nothing for "*" or ARNs without an account), and `test_resource_account_is_what_iam_sets`
  shows the key decides.
* moto ignores nothing here that the tests read, except that it returns a role's inline policy
  as Python's repr of the document rather than JSON: `inline_policy` reads both.

The attacker's sequences (section "the attacks" below) are the issue's: a stolen key alone, an
MFA session 11 hours old, and what fresh MFA may and may not do; each test names the attack.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import pytest

from cfn.cfn_support import (
    DEVELOPER_ACCESS,
    ELEVATED_ROLE,
    as_iam_stores,
    for_requester,
    import_pmapper,
    inline_policy,
    load_template,
    moto_client,
    need,
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


@pytest.fixture(scope="module")
def rendered(cfn_moto: str) -> Rendered:
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


@pytest.fixture(scope="module")
def ev(rendered: Rendered) -> Evaluator:
    return Evaluator(rendered)


ADMIN_LIKE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sts:*", "iam:*"], "Resource": "*"}],
}


# --- the elevated role -------------------------------------------------------------------------


def test_assume_role_needs_mfa(ev: Evaluator, rendered: Rendered) -> None:
    alice = ev.user(ALICE)
    trust = rendered.identity_trust
    assert not ev.can_assume(alice, IDENTITY_ROLE, trust, {"sts:SourceIdentity": "alice", **NO_MFA})
    assert not ev.can_assume(alice, IDENTITY_ROLE, trust, {"sts:SourceIdentity": "alice", **MFA_FALSE})
    assert ev.can_assume(alice, IDENTITY_ROLE, trust, elevate_call("alice"))


@pytest.mark.parametrize(
    ("age", "allowed"),
    [(0, True), (MAX_MFA_AGE - 1, True), (MAX_MFA_AGE, False), (MAX_MFA_AGE + 1, False), (8 * 3600, False)],
)
def test_mfa_older_than_max_age_cannot_assume(
    ev: Evaluator, rendered: Rendered, age: int, allowed: bool
) -> None:
    context = elevate_call("alice", age)
    for role_arn, trust in ((IDENTITY_ROLE, rendered.identity_trust), (MEMBER_ROLE, rendered.member_trust)):
        assert ev.can_assume(ev.user(ALICE), role_arn, trust, context) is allowed


def test_source_identity_must_be_the_callers_own_user_name(ev: Evaluator, rendered: Rendered) -> None:
    alice = ev.user(ALICE)
    trust = rendered.identity_trust
    assert ev.can_assume(alice, IDENTITY_ROLE, trust, elevate_call("alice"))
    # Without a source identity the trust policy's StringEquals has nothing to match.
    assert not ev.can_assume(alice, IDENTITY_ROLE, trust, fresh_mfa())
    assert not ev.can_assume(
        alice,
        IDENTITY_ROLE,
        trust,
        fresh_mfa(extra={"sts:SourceIdentity": "bob", "sts:RoleSessionName": "alice"}),
    )
    # Neither side allows setting someone else's name, even when the other side would.
    context = elevate_call("bob")
    assert not ev.allowed(alice, "sts:SetSourceIdentity", IDENTITY_ROLE, context)
    assert ev.allowed(alice, "sts:SetSourceIdentity", IDENTITY_ROLE, elevate_call("alice"))


def test_a_role_cannot_assume_even_with_mfa(ev: Evaluator, rendered: Rendered) -> None:
    runner = ev.role(arn(IDENTITY, "role/ci-runner"), (ADMIN_LIKE,))
    for source_identity in ("ci-runner", "${aws:username}"):
        context = elevate_call(source_identity)
        # Its own policy allows the calls: the trust policy is what refuses.
        assert ev.allowed(runner, "sts:AssumeRole", IDENTITY_ROLE, context)
        assert not ev.can_assume(runner, IDENTITY_ROLE, rendered.identity_trust, context)


@pytest.mark.parametrize(
    "user_arn",
    [
        arn(IDENTITY, "user/contractors/carol"),
        arn(IDENTITY, "user/dave"),
        arn(IDENTITY, "user/developers-old/erin"),
    ],
)
def test_a_user_outside_user_path_cannot_assume(ev: Evaluator, rendered: Rendered, user_arn: str) -> None:
    # Even added to the developers' group (and so allowed by its policy).
    user = ev.user(user_arn)
    name = user_arn.rsplit("/", 1)[1]
    context = elevate_call(name)
    assert ev.allowed(user, "sts:AssumeRole", IDENTITY_ROLE, context)
    assert not ev.can_assume(user, IDENTITY_ROLE, rendered.identity_trust, context)


def test_trusting_the_account_still_needs_the_developers_policy(ev: Evaluator, rendered: Rendered) -> None:
    # Under UserPath but not in the group: the trust policy names the account, so the caller's
    # own policies must allow the call too.
    frank = ev.user(arn(IDENTITY, "user/developers/frank"), in_group=False)
    context = elevate_call("frank")
    assert not ev.can_assume(frank, IDENTITY_ROLE, rendered.identity_trust, context)
    with_group = ev.user(arn(IDENTITY, "user/developers/frank"))
    assert ev.can_assume(with_group, IDENTITY_ROLE, rendered.identity_trust, context)


def test_member_account_role_trusts_only_the_identity_accounts_developers(
    ev: Evaluator, rendered: Rendered
) -> None:
    alice = ev.user(ALICE)
    trust = rendered.member_trust
    assert ev.can_assume(alice, MEMBER_ROLE, trust, elevate_call("alice"))
    assert not ev.can_assume(alice, MEMBER_ROLE, trust, {"sts:SourceIdentity": "alice"})
    # A developer-looking user of another account, whose own policies allow everything.
    eve = ev.user(arn(STRANGER, "user/developers/eve"), in_group=False, policies=(ADMIN_LIKE,))
    context = elevate_call("eve")
    assert not ev.can_assume(eve, MEMBER_ROLE, trust, context)
    assert not ev.can_assume(eve, IDENTITY_ROLE, rendered.identity_trust, context)
    # And the member account's own users are not trusted either.
    local = ev.user(arn(MEMBER, "user/developers/mallory"), in_group=False, policies=(ADMIN_LIKE,))
    context = elevate_call("mallory")
    assert not ev.can_assume(local, MEMBER_ROLE, trust, context)


def test_both_templates_render_the_same_trust_policy(rendered: Rendered) -> None:
    # elevated-role.yaml told to trust its own account (STRANGER) is the identity stack's role,
    # moved to another account.
    moved = json.loads(json.dumps(rendered.own_trust).replace(STRANGER, IDENTITY))
    assert moved == rendered.identity_trust
    member = json.loads(json.dumps(rendered.member_trust))
    assert member == rendered.identity_trust  # it trusts IDENTITY, and names no other account


def test_pmapper_compares_condition_variables_literally(ev: Evaluator, rendered: Rendered) -> None:
    """The limitation `for_requester` works around, shown on PMapper itself."""
    alice = ev.user(ALICE)
    literal = rendered.identity_trust
    assert "${aws:username}" in json.dumps(literal)
    owner = IDENTITY

    def raw(name: str) -> bool:
        context = with_resource_account(elevate_call(name), IDENTITY_ROLE)
        return bool(
            ev.qi.local_check_authorization_full(
                alice, "sts:AssumeRole", IDENTITY_ROLE, context, resource_policy=literal, resource_owner=owner
            )
        )

    assert not raw("alice")  # IAM would allow this
    assert raw("${aws:username}")  # and PMapper matches the unexpanded text instead
    # The substitution touches nothing but that value.
    resolved = for_requester(literal, ALICE)
    assert json.dumps(resolved).replace('"alice"', '"${aws:username}"') == json.dumps(literal)


# --- the developers' own credentials -----------------------------------------------------------


@pytest.mark.parametrize("action", ["iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:UpdateAccessKey"])
def test_own_access_keys_only_with_mfa_and_never_anothers(ev: Evaluator, action: str) -> None:
    alice = ev.user(ALICE)
    assert ev.allowed(alice, action, ALICE, fresh_mfa())
    assert not ev.allowed(alice, action, ALICE, NO_MFA)
    assert not ev.allowed(alice, action, ALICE, MFA_FALSE)
    for other in (
        BOB,
        arn(IDENTITY, "user/alice"),
        arn(IDENTITY, "user/other/alice"),
        arn(MEMBER, "user/developers/alice"),
    ):
        for context in (fresh_mfa(), NO_MFA):
            assert not ev.allowed(alice, action, other, context), (action, other, context)


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:ListAllMyBuckets", "*"),
        ("iam:CreateUser", arn(IDENTITY, "user/developers/mallory")),
        ("iam:AttachUserPolicy", ALICE),
        ("iam:AttachUserPolicy", BOB),
        ("iam:PutUserPolicy", ALICE),
        ("iam:AddUserToGroup", arn(IDENTITY, "group/Admins")),
        ("iam:UpdateLoginProfile", ALICE),
        ("iam:CreateLoginProfile", BOB),
        ("iam:DeactivateMFADevice", BOB),
        ("iam:DeleteVirtualMFADevice", arn(IDENTITY, "mfa/bob")),
        ("sts:AssumeRole", arn(IDENTITY, "role/Admin")),
        ("ec2:RunInstances", "*"),
    ],
)
def test_a_developer_can_do_nothing_else(ev: Evaluator, action: str, resource: str) -> None:
    alice = ev.user(ALICE)
    for context in (elevate_call("alice"), NO_MFA, MFA_FALSE):
        assert not ev.allowed(alice, action, resource, context), (action, resource, context)


@functools.lru_cache(maxsize=1)
def catalogue() -> tuple[str, ...]:
    """Every IAM action cfn-lint knows (about 20,000, lower case)."""
    try:
        from cfnlint.data import AdditionalSpecs
        from cfnlint.helpers import load_resource
    except ImportError as exc:
        need(False, f"cfn-lint is not importable: {exc}")
        raise
    services = load_resource(AdditionalSpecs, "Policies.json")
    return tuple(
        sorted(f"{prefix}:{action}" for prefix, spec in services.items() for action in spec["Actions"])
    )


# Contexts a developer's request can come with: long-term keys alone (window closed, the
# normal state after onboarding), keys alone in the onboarding window, an MFA session 11 hours
# old, and fresh MFA.
CONTEXTS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "key alone": (NO_MFA, {}),
    "key alone, window open": (NO_MFA, ONBOARDING),
    "11-hour MFA session": (elevate_call("alice", ELEVEN_HOURS), {}),
    "fresh MFA": (elevate_call("alice"), {}),
}
# What the developers' policy allows, per resource and context, as the issue states it. Without
# MFA the developers' policy lets the AssumeRole request through to the role (in RoleAccountIds
# only), whose trust policy then refuses it (test_assume_role_needs_mfa): see docs/admin.md on
# why the Deny still exempts sts:AssumeRole.
ELEVATED_NO_MFA = {"sts:assumerole"}
PROBES: dict[str, tuple[str, dict[str, set[str]]]] = {
    "own user": (
        ALICE,
        {
            "key alone": OWN_USER_WITHOUT_MFA,
            "key alone, window open": OWN_USER_IN_WINDOW,
            "11-hour MFA session": OWN_USER_READ,
            "fresh MFA": OWN_USER_WITH_MFA,
        },
    ),
    "another user": (BOB, {}),
    "own MFA device": (
        arn(IDENTITY, "mfa/alice"),
        {
            "key alone, window open": OWN_MFA_DEVICE,
            "fresh MFA": OWN_MFA_DEVICE,
        },
    ),
    "another's MFA device": (arn(IDENTITY, "mfa/bob"), {}),
    "elevated role here": (
        IDENTITY_ROLE,
        {
            "key alone": ELEVATED_NO_MFA,
            "key alone, window open": ELEVATED_NO_MFA,
            "11-hour MFA session": ELEVATED_ROLE_ACTIONS,
            "fresh MFA": ELEVATED_ROLE_ACTIONS,
        },
    ),
    "elevated role in a member account": (
        MEMBER_ROLE,
        {
            "key alone": ELEVATED_NO_MFA,
            "key alone, window open": ELEVATED_NO_MFA,
            "11-hour MFA session": ELEVATED_ROLE_ACTIONS,
            "fresh MFA": ELEVATED_ROLE_ACTIONS,
        },
    ),
    "the role's name in a foreign account": (arn(STRANGER, f"role/{ROLE_NAME}"), {}),
    "another role": (arn(IDENTITY, "role/Admin"), {}),
    "a bucket": ("arn:aws:s3:::some-bucket", {}),
    "any": ("*", {}),
}
# Actions without resource-level permissions (Resource "*") come on top, whatever the resource.
ON_STAR = {
    "key alone": STAR_ALWAYS,
    "key alone, window open": STAR,
    "11-hour MFA session": STAR,
    "fresh MFA": STAR,
}


@pytest.mark.parametrize("situation", list(CONTEXTS))
@pytest.mark.parametrize("probe", list(PROBES))
def test_every_known_action_against_the_developers_policy(ev: Evaluator, probe: str, situation: str) -> None:
    """Across the whole action catalogue, the developers' policy allows exactly what the issue
    lists, for each resource and each kind of request.  (The 11-hour session's role actions are
    the caller's side only: the trust policy refuses MFA older than MaxMfaAgeSeconds.)"""
    resource, expected = PROBES[probe]
    context, tags = CONTEXTS[situation]
    alice = ev.user(ALICE, tags=tags)
    actions = catalogue()
    assert len(actions) > 10_000
    allowed = {a for a in actions if ev.allowed(alice, a, resource, context)}
    assert allowed == expected.get(situation, set()) | ON_STAR[situation]


def test_no_wildcard_actions_and_no_needless_star_resources(rendered: Rendered) -> None:
    """Allow statements name actions exactly, and use Resource "*" only for actions that
    support no resource-level permissions (per cfn-lint's catalogue of IAM actions)."""
    from cfnlint.data import AdditionalSpecs
    from cfnlint.helpers import load_resource

    services = load_resource(AdditionalSpecs, "Policies.json")
    documents = [rendered.developer_policy, rendered.identity_trust, rendered.member_trust]
    for document in documents:
        for statement in document["Statement"]:
            actions = statement.get("Action") or statement.get("NotAction")
            actions = actions if isinstance(actions, list) else [actions]
            assert all("*" not in a and "?" not in a for a in actions), statement
            resources = statement.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            if statement["Effect"] == "Allow" and "*" in resources:
                for action in actions:
                    prefix, name = action.lower().split(":")
                    spec = services[prefix]["Actions"][name]
                    assert not spec.get("Resources"), f"{action} supports resource-level permissions"


def test_nothing_is_attached_to_users_directly() -> None:
    template = load_template(DEVELOPER_ACCESS)
    resources = template["Resources"]
    types = {r["Type"] for r in resources.values()}
    assert "AWS::IAM::User" not in types
    assert "AWS::IAM::Policy" not in types
    assert "AWS::IAM::UserPolicy" not in types
    for resource in resources.values():
        assert "Users" not in resource.get("Properties", {}) or resource["Type"] == (
            "AWS::IAM::UserToGroupAddition"
        )
    # The developers' policy is attached through the group, and only there.
    policy = resources["DeveloperPolicy"]["Properties"]
    assert not {"Users", "Roles", "Groups"} & set(policy)
    assert resources["DeveloperGroup"]["Properties"]["ManagedPolicyArns"] == [{"Ref": "DeveloperPolicy"}]


# --- the attacks (issue 9), as an attacker would run them ----------------------------------------
#
# Each is a sequence of calls; the test asserts where the sequence is stopped. On the templates
# before issue 9 every one of these tests fails (the record is in the closing note).

OWN_DEVICE = arn(IDENTITY, "mfa/alice")
# A role of the elevated role's name in an account outside RoleAccountIds, whose trust (a legacy
# role, a mistyped StackSet) trusts the identity account without any MFA condition.
FOREIGN_ROLE = arn(STRANGER, f"role/{ROLE_NAME}")
LEGACY_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{IDENTITY}:root"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
        }
    ],
}


def first_allowed(
    ev: Evaluator, principal: Any, steps: list[tuple[str, str]], context: dict[str, Any]
) -> list[str]:
    return [
        f"{action} {resource}"
        for action, resource in steps
        if ev.allowed(principal, action, resource, context)
    ]


def test_attack_stolen_key_alone_registers_a_device_of_its_own(ev: Evaluator) -> None:
    """Key alone, window closed (alice enrolled long ago): a thief lists the account's devices,
    creates and enables a virtual device of their own (IAM allows eight per user, and
    EnableMFADevice cannot be narrowed to a serial), then, with MFA from it, would deactivate
    alice's device and mint keys. The first step is refused."""
    alice = ev.user(ALICE)
    steps = [
        ("iam:ListVirtualMFADevices", "*"),
        ("iam:DeleteVirtualMFADevice", OWN_DEVICE),
        ("iam:CreateVirtualMFADevice", OWN_DEVICE),
        ("iam:EnableMFADevice", ALICE),
        ("iam:ResyncMFADevice", ALICE),
        ("iam:CreateAccessKey", ALICE),
        ("iam:DeactivateMFADevice", ALICE),
        ("iam:ChangePassword", ALICE),
    ]
    assert first_allowed(ev, alice, steps, NO_MFA) == []
    # Nor can the key reopen the window (only an admin tags users).
    assert not ev.allowed(alice, "iam:TagUser", ALICE, {**NO_MFA, "aws:TagKeys": ["elevate-onboarding"]})


def test_attack_stolen_key_alone_assumes_a_legacy_role_in_a_foreign_account(ev: Evaluator) -> None:
    alice = ev.user(ALICE)
    for context in (
        NO_MFA,
        {"sts:SourceIdentity": "alice", "sts:RoleSessionName": "alice"},
        elevate_call("alice"),
    ):
        assert not ev.can_assume(alice, FOREIGN_ROLE, LEGACY_TRUST, context), context
        assert not ev.allowed(alice, "sts:AssumeRole", FOREIGN_ROLE, context)
    # The same legacy trust in an account of RoleAccountIds is still the admin's to fix: there the
    # role's own trust decides (which is why the stack deploys that trust everywhere).
    assert ev.allowed(alice, "sts:AssumeRole", MEMBER_ROLE, NO_MFA)


def test_attack_eleven_hour_old_mfa_session_takes_over_keys_and_devices(ev: Evaluator) -> None:
    """An MFA session read from a cache file 11 hours after its code was typed: no key, device or
    password change; reading stays possible."""
    alice = ev.user(ALICE)
    stale = elevate_call("alice", ELEVEN_HOURS)
    steps = [
        ("iam:CreateAccessKey", ALICE),
        ("iam:UpdateAccessKey", ALICE),
        ("iam:DeleteAccessKey", ALICE),
        ("iam:DeactivateMFADevice", ALICE),
        ("iam:EnableMFADevice", ALICE),
        ("iam:ResyncMFADevice", ALICE),
        ("iam:DeleteVirtualMFADevice", OWN_DEVICE),
        ("iam:CreateVirtualMFADevice", OWN_DEVICE),
        ("iam:ChangePassword", ALICE),
    ]
    assert first_allowed(ev, alice, steps, stale) == []
    assert ev.allowed(alice, "iam:ListAccessKeys", ALICE, stale)
    # The threshold is SensitiveMfaMaxAgeSeconds: just under it works, at it does not.
    assert ev.allowed(alice, "iam:CreateAccessKey", ALICE, fresh_mfa(SENSITIVE_MFA_AGE - 1))
    assert not ev.allowed(alice, "iam:CreateAccessKey", ALICE, fresh_mfa(SENSITIVE_MFA_AGE))


def test_fresh_mfa_rotates_and_enrols_its_own_but_nobody_elses(ev: Evaluator) -> None:
    """What `elevate rotate` and `elevate mfa enroll` do, with a fresh MFA session: allowed on
    the caller's own user, device and onboarding tag; refused on bob's, and the window cannot be
    reopened."""
    alice = ev.user(ALICE)
    fresh = elevate_call("alice")
    own = [
        ("iam:CreateAccessKey", ALICE),
        ("iam:DeleteAccessKey", ALICE),
        ("iam:UpdateAccessKey", ALICE),
        ("iam:DeactivateMFADevice", ALICE),
        ("iam:DeleteVirtualMFADevice", OWN_DEVICE),
        ("iam:CreateVirtualMFADevice", OWN_DEVICE),
        ("iam:EnableMFADevice", ALICE),
    ]
    assert len(first_allowed(ev, alice, own, fresh)) == len(own)
    assert ev.allowed(alice, "iam:UntagUser", ALICE, {**fresh, **untag("elevate-onboarding")})
    bobs = [(action, BOB if resource == ALICE else arn(IDENTITY, "mfa/bob")) for action, resource in own]
    assert first_allowed(ev, alice, bobs, fresh) == []
    assert not ev.allowed(alice, "iam:UntagUser", BOB, {**fresh, **untag("elevate-onboarding")})
    # Only that one tag key, and never TagUser (reopening is the admin's).
    assert not ev.allowed(alice, "iam:UntagUser", ALICE, {**fresh, **untag("elevate-onboarding", "team")})
    assert not ev.allowed(alice, "iam:UntagUser", ALICE, {**fresh, **untag("team")})
    assert not ev.allowed(alice, "iam:TagUser", ALICE, {**fresh, **untag("elevate-onboarding")})


def test_onboarding_window_lets_a_new_user_enrol_and_close_it_without_mfa(ev: Evaluator) -> None:
    """The window's purpose: a new user tagged by the admin enrols with the key alone, then
    closes the window (elevate mfa enroll does it right after EnableMFADevice)."""
    newcomer = ev.user(ALICE, tags=ONBOARDING)
    enrol = [
        ("iam:CreateVirtualMFADevice", OWN_DEVICE),
        ("iam:EnableMFADevice", ALICE),
        ("iam:ResyncMFADevice", ALICE),
        ("iam:DeleteVirtualMFADevice", OWN_DEVICE),
        ("iam:ListVirtualMFADevices", "*"),
        ("iam:ChangePassword", ALICE),
    ]
    assert len(first_allowed(ev, newcomer, enrol, NO_MFA)) == len(enrol)
    assert ev.allowed(newcomer, "iam:UntagUser", ALICE, {**NO_MFA, **untag("elevate-onboarding")})
    # Even in the window the key alone makes no key, touches nobody else, and assumes nothing.
    for action, resource in [
        ("iam:CreateAccessKey", ALICE),
        ("iam:DeactivateMFADevice", ALICE),
        ("iam:EnableMFADevice", BOB),
        ("iam:CreateVirtualMFADevice", arn(IDENTITY, "mfa/bob")),
    ]:
        assert not ev.allowed(newcomer, action, resource, NO_MFA), action
    assert not ev.allowed(newcomer, "iam:UntagUser", BOB, {**NO_MFA, **untag("elevate-onboarding")})
    # A tag of another value is no window.
    other = ev.user(ALICE, tags={"elevate-onboarding": "false"})
    assert not ev.allowed(other, "iam:CreateVirtualMFADevice", OWN_DEVICE, NO_MFA)


def test_attack_session_named_after_someone_else(ev: Evaluator, rendered: Rendered) -> None:
    """alice appearing as assumed-role/DeveloperElevated/bob: the trust binds the session name."""
    alice = ev.user(ALICE)
    posing = fresh_mfa(extra={"sts:SourceIdentity": "alice", "sts:RoleSessionName": "bob"})
    unnamed = fresh_mfa(extra={"sts:SourceIdentity": "alice"})
    for role_arn, trust in ((IDENTITY_ROLE, rendered.identity_trust), (MEMBER_ROLE, rendered.member_trust)):
        assert not ev.can_assume(alice, role_arn, trust, posing)
        assert not ev.can_assume(alice, role_arn, trust, unnamed)
        assert ev.can_assume(alice, role_arn, trust, elevate_call("alice"))


def test_resource_account_is_what_iam_sets(ev: Evaluator) -> None:
    """The aws:ResourceAccount step (module doc) decides: without the key the explicit Deny on
    roles outside RoleAccountIds refuses even the identity account's role; with the key IAM
    would set, it is allowed."""
    alice = ev.user(ALICE)
    bare = ev.qi.local_check_authorization_full(alice, "sts:AssumeRole", IDENTITY_ROLE, elevate_call("alice"))
    assert not bare
    assert ev.allowed(alice, "sts:AssumeRole", IDENTITY_ROLE, elevate_call("alice"))


# --- the gate protects itself -----------------------------------------------------------------

GATE_WRITES = [
    ("iam:UpdateAssumeRolePolicy", IDENTITY_ROLE),
    ("iam:DeleteRolePolicy", IDENTITY_ROLE),
    ("iam:PutRolePolicy", IDENTITY_ROLE),
    ("iam:DeleteRolePermissionsBoundary", IDENTITY_ROLE),
    ("iam:CreatePolicyVersion", arn(IDENTITY, "policy/Developers-self-service-and-elevate")),
    ("iam:SetDefaultPolicyVersion", arn(IDENTITY, "policy/Developers-self-service-and-elevate")),
    ("iam:DetachGroupPolicy", arn(IDENTITY, "group/Developers")),
    ("iam:AttachGroupPolicy", arn(IDENTITY, "group/Developers")),
    ("iam:PutGroupPolicy", arn(IDENTITY, "group/Developers")),
    ("iam:AddUserToGroup", arn(IDENTITY, "group/Developers")),
    ("iam:CreateAccessKey", BOB),
    ("iam:TagUser", BOB),
    ("iam:DeactivateMFADevice", BOB),
    ("iam:CreateUser", arn(IDENTITY, "user/developers/mallory")),
    ("iam:DeleteVirtualMFADevice", arn(IDENTITY, "mfa/bob")),
]


def test_attack_elevated_session_edits_the_gate(ev: Evaluator, rendered: Rendered) -> None:
    """With CreateRole=true, an elevated session whose managed policies grant all of IAM tries to
    remove the MFA condition or mint a developer's keys: the role's inline Deny refuses."""
    gate = rendered.identity_gate
    assert gate is not None, "the role created with CreateRole=true has no inline gate policy"
    session = ev.role(IDENTITY_ROLE, (ADMIN_LIKE, gate))
    assert first_allowed(ev, session, GATE_WRITES, fresh_mfa()) == []
    # Scoped to the gate: reading it, and IAM elsewhere, stay as the managed policies say.
    assert ev.allowed(session, "iam:GetRole", IDENTITY_ROLE, fresh_mfa())
    assert ev.allowed(
        session,
        "iam:GetPolicyVersion",
        arn(IDENTITY, "policy/Developers-self-service-and-elevate"),
        fresh_mfa(),
    )
    assert ev.allowed(session, "iam:CreateRole", arn(IDENTITY, "role/app"), fresh_mfa())


def test_attack_member_role_rewrites_its_own_trust(ev: Evaluator, rendered: Rendered) -> None:
    gate = rendered.member_gate
    assert gate is not None, "elevated-role.yaml's role has no inline gate policy"
    session = ev.role(MEMBER_ROLE, (ADMIN_LIKE, gate))
    for action in (
        "iam:UpdateAssumeRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:DeleteRolePermissionsBoundary",
    ):
        assert not ev.allowed(session, action, MEMBER_ROLE, fresh_mfa()), action
    assert ev.allowed(session, "iam:GetRole", MEMBER_ROLE, fresh_mfa())


def test_the_gate_protection_is_an_explicit_opt_out(cfn_moto: str) -> None:
    deploy(cfn_moto, OPT_OUT, DEVELOPER_ACCESS, "developer-access", **OPT_OUT_PARAMS)
    assert gate_of(cfn_moto, OPT_OUT) is None
    parameters = load_template(DEVELOPER_ACCESS)["Parameters"]
    assert parameters["AllowRoleToEditGate"]["Default"] == "false"
    assert load_template(ELEVATED_ROLE)["Parameters"]["AllowRoleToEditGate"]["Default"] == "false"


# --- the templates' defaults ------------------------------------------------------------------


def test_elevated_role_never_trusts_an_account_by_default(cfn_moto: str) -> None:
    """TrustedAccountId has no default: a stack (or StackSet) created without it fails instead
    of quietly trusting the account it lands in."""
    assert "Default" not in load_template(ELEVATED_ROLE)["Parameters"]["TrustedAccountId"]
    cfn = moto_client(cfn_moto, "cloudformation", "555566667777")
    with pytest.raises(cfn.exceptions.ClientError, match="TrustedAccountId"):
        cfn.create_stack(
            StackName="no-trust",
            TemplateBody=ELEVATED_ROLE.read_text(),
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )


def test_default_managed_policy_reads_no_data() -> None:
    view_only = "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"
    assert load_template(DEVELOPER_ACCESS)["Parameters"]["ElevatedManagedPolicyArns"]["Default"] == view_only
    assert load_template(ELEVATED_ROLE)["Parameters"]["ManagedPolicyArns"]["Default"] == view_only


def test_sensitive_mfa_age_parameter() -> None:
    parameter = load_template(DEVELOPER_ACCESS)["Parameters"]["SensitiveMfaMaxAgeSeconds"]
    assert parameter["Default"] == SENSITIVE_MFA_AGE


def test_every_parameter_the_tests_pass_is_declared() -> None:
    """`deploy` drops undeclared parameters (for the before/after runs); here they must all exist."""
    assert set(IDENTITY_PARAMS) | set(OPT_OUT_PARAMS) <= declared(DEVELOPER_ACCESS)
    assert set(MEMBER_PARAMS) | set(OWN_PARAMS) <= declared(ELEVATED_ROLE)
