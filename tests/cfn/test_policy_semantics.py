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
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from typing import Any

import pytest

from cfn.cfn_support import (
    DEVELOPER_ACCESS,
    ELEVATED_ROLE,
    import_pmapper,
    load_template,
    moto_client,
    need,
)

IDENTITY = "111122223333"  # the identity account: users, group, policy and a role
MEMBER = "444455556666"  # a member account with the role from elevated-role.yaml
STRANGER = "999988887777"  # an unrelated account
ROLE_NAME = "DeveloperElevated"
MAX_MFA_AGE = 3600  # the templates' default MaxMfaAgeSeconds

# The developers' policy, as the issue states it (lower case: IAM action names are
# case-insensitive and the catalogue below is lower case).
STAR = {"iam:getaccountpasswordpolicy", "iam:listvirtualmfadevices"}  # no resource-level support
OWN_USER_WITH_MFA = {
    "iam:getuser", "iam:getmfadevice", "iam:listmfadevices",
    "iam:enablemfadevice", "iam:resyncmfadevice", "iam:deactivatemfadevice",
    "iam:createaccesskey", "iam:deleteaccesskey", "iam:updateaccesskey",
    "iam:listaccesskeys", "iam:getaccesskeylastused",
    "iam:changepassword",
}
OWN_USER_WITHOUT_MFA = {  # what enrolling an MFA device (and a first password change) needs
    "iam:getuser", "iam:getmfadevice", "iam:listmfadevices",
    "iam:enablemfadevice", "iam:resyncmfadevice", "iam:changepassword",
}
OWN_MFA_DEVICE = {"iam:createvirtualmfadevice", "iam:deletevirtualmfadevice"}
ELEVATED_ROLE_ACTIONS = {"sts:assumerole", "sts:setsourceidentity"}


def arn(account: str, resource: str) -> str:
    return f"arn:aws:iam::{account}:{resource}"


ALICE = arn(IDENTITY, "user/developers/alice")
BOB = arn(IDENTITY, "user/developers/bob")
IDENTITY_ROLE = arn(IDENTITY, f"role/{ROLE_NAME}")
MEMBER_ROLE = arn(MEMBER, f"role/{ROLE_NAME}")


def fresh_mfa(age: int = 5, **extra: str) -> dict[str, str]:
    """Request context of a call made with an MFA code `age` seconds ago."""
    return {"aws:MultiFactorAuthPresent": "true", "aws:MultiFactorAuthAge": str(age), **extra}


# Long-term access keys: the MFA keys are absent from the request context.
NO_MFA: dict[str, str] = {}
# Temporary credentials obtained without MFA.
MFA_FALSE = {"aws:MultiFactorAuthPresent": "false"}


def as_iam_stores(document: Any) -> Any:
    """Numbers in Condition values back to the strings CloudFormation passes (see module doc)."""
    if isinstance(document, dict):
        return {k: as_iam_stores(v) for k, v in document.items()}
    if isinstance(document, list):
        return [as_iam_stores(v) for v in document]
    if isinstance(document, (int, float)) and not isinstance(document, bool):
        return str(document)
    return document


def for_requester(document: dict[str, Any], principal_arn: str) -> dict[str, Any]:
    """Replace ${aws:username} in Condition values as IAM does for this requester (see module
    doc). Roles have no aws:username: the literal stays and can match no source identity."""
    if ":user/" not in principal_arn:
        return document
    user_name = principal_arn.rsplit("/", 1)[1]
    resolved = copy.deepcopy(document)
    statements = resolved["Statement"]
    for statement in statements if isinstance(statements, list) else [statements]:
        for operator in (statement.get("Condition") or {}).values():
            for key, value in operator.items():
                values = value if isinstance(value, list) else [value]
                values = [v.replace("${aws:username}", user_name) for v in values]
                operator[key] = values if isinstance(value, list) else values[0]
    return resolved


@dataclass(frozen=True)
class Rendered:
    developer_policy: dict[str, Any]
    identity_trust: dict[str, Any]
    member_trust: dict[str, Any]
    default_trust: dict[str, Any]  # elevated-role.yaml with every default, in STRANGER


def deploy(url: str, account: str, template: Any, name: str, **params: str) -> dict[str, str]:
    cfn = moto_client(url, "cloudformation", account)
    cfn.create_stack(
        StackName=name,
        TemplateBody=template.read_text(),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def trust_of(url: str, account: str) -> dict[str, Any]:
    role = moto_client(url, "iam", account).get_role(RoleName=ROLE_NAME)["Role"]
    return as_iam_stores(role["AssumeRolePolicyDocument"])


@pytest.fixture(scope="module")
def rendered(cfn_moto: str) -> Rendered:
    outputs = deploy(cfn_moto, IDENTITY, DEVELOPER_ACCESS, "developer-access")
    iam = moto_client(cfn_moto, "iam", IDENTITY)
    policy = iam.get_policy(PolicyArn=outputs["DeveloperPolicyArn"])["Policy"]
    version = iam.get_policy_version(
        PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"]
    )["PolicyVersion"]
    document = version["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    deploy(cfn_moto, MEMBER, ELEVATED_ROLE, "elevated-role", TrustedAccountId=IDENTITY)
    deploy(cfn_moto, STRANGER, ELEVATED_ROLE, "elevated-role")
    return Rendered(
        developer_policy=as_iam_stores(document),
        identity_trust=trust_of(cfn_moto, IDENTITY),
        member_trust=trust_of(cfn_moto, MEMBER),
        default_trust=trust_of(cfn_moto, STRANGER),
    )


class Evaluator:
    """Principals built from the rendered documents, and PMapper's verdicts about them."""

    def __init__(self, rendered: Rendered) -> None:
        self.qi = import_pmapper()
        from principalmapper.common import Group, Node, Policy

        self.Group, self.Node, self.Policy = Group, Node, Policy
        self.rendered = rendered

    def user(self, user_arn: str, in_group: bool = True, policies: tuple[dict[str, Any], ...] = ()) -> Any:
        account = user_arn.split(":")[4]
        groups = []
        if in_group:
            document = for_requester(self.rendered.developer_policy, user_arn)
            policy = self.Policy(arn(account, "policy/Developers-self-service-and-elevate"),
                                 "Developers-self-service-and-elevate", document)
            groups.append(self.Group(arn(account, "group/Developers"), [policy]))
        inline = [self.Policy(user_arn, f"inline{i}", p) for i, p in enumerate(policies)]
        return self.Node(user_arn, "AIDA" + user_arn.rsplit("/", 1)[1].upper(), inline, groups,
                         None, None, 1, True, False, None, True, None)

    def role(self, role_arn: str, policies: tuple[dict[str, Any], ...]) -> Any:
        inline = [self.Policy(role_arn, f"inline{i}", p) for i, p in enumerate(policies)]
        trust = {"Version": "2012-10-17", "Statement": []}
        return self.Node(role_arn, "AROA" + role_arn.rsplit("/", 1)[1].upper(), inline, [],
                         trust, None, 0, False, False, None, False, None)

    def allowed(self, principal: Any, action: str, resource: str, context: dict[str, str]) -> bool:
        """Identity-based decision (no resource policy involved)."""
        return bool(self.qi.local_check_authorization_full(principal, action, resource, context))

    def can_assume(self, principal: Any, role_arn: str, trust: dict[str, Any],
                   context: dict[str, str]) -> bool:
        """AssumeRole, plus SetSourceIdentity when the call sets one: both need the caller's
        policies and the role's trust policy to agree."""
        owner = role_arn.split(":")[4]
        trust = for_requester(trust, principal.arn)
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
    assert ev.can_assume(alice, IDENTITY_ROLE, trust, fresh_mfa(**{"sts:SourceIdentity": "alice"}))


@pytest.mark.parametrize(
    ("age", "allowed"),
    [(0, True), (MAX_MFA_AGE - 1, True), (MAX_MFA_AGE, False), (MAX_MFA_AGE + 1, False),
     (8 * 3600, False)],
)
def test_mfa_older_than_max_age_cannot_assume(
    ev: Evaluator, rendered: Rendered, age: int, allowed: bool
) -> None:
    context = fresh_mfa(age, **{"sts:SourceIdentity": "alice"})
    for role_arn, trust in ((IDENTITY_ROLE, rendered.identity_trust),
                            (MEMBER_ROLE, rendered.member_trust)):
        assert ev.can_assume(ev.user(ALICE), role_arn, trust, context) is allowed


def test_source_identity_must_be_the_callers_own_user_name(ev: Evaluator, rendered: Rendered) -> None:
    alice = ev.user(ALICE)
    trust = rendered.identity_trust
    assert ev.can_assume(alice, IDENTITY_ROLE, trust, fresh_mfa(**{"sts:SourceIdentity": "alice"}))
    # Without a source identity the trust policy's StringEquals has nothing to match.
    assert not ev.can_assume(alice, IDENTITY_ROLE, trust, fresh_mfa())
    assert not ev.can_assume(alice, IDENTITY_ROLE, trust, fresh_mfa(**{"sts:SourceIdentity": "bob"}))
    # Neither side allows setting someone else's name, even when the other side would.
    context = fresh_mfa(**{"sts:SourceIdentity": "bob"})
    assert not ev.allowed(alice, "sts:SetSourceIdentity", IDENTITY_ROLE, context)
    assert ev.allowed(alice, "sts:SetSourceIdentity", IDENTITY_ROLE,
                      fresh_mfa(**{"sts:SourceIdentity": "alice"}))


def test_a_role_cannot_assume_even_with_mfa(ev: Evaluator, rendered: Rendered) -> None:
    runner = ev.role(arn(IDENTITY, "role/ci-runner"), (ADMIN_LIKE,))
    for source_identity in ("ci-runner", "${aws:username}"):
        context = fresh_mfa(**{"sts:SourceIdentity": source_identity})
        # Its own policy allows the calls: the trust policy is what refuses.
        assert ev.allowed(runner, "sts:AssumeRole", IDENTITY_ROLE, context)
        assert not ev.can_assume(runner, IDENTITY_ROLE, rendered.identity_trust, context)


@pytest.mark.parametrize(
    "user_arn",
    [arn(IDENTITY, "user/contractors/carol"), arn(IDENTITY, "user/dave"),
     arn(IDENTITY, "user/developers-old/erin")],
)
def test_a_user_outside_user_path_cannot_assume(
    ev: Evaluator, rendered: Rendered, user_arn: str
) -> None:
    # Even added to the developers' group (and so allowed by its policy).
    user = ev.user(user_arn)
    name = user_arn.rsplit("/", 1)[1]
    context = fresh_mfa(**{"sts:SourceIdentity": name})
    assert ev.allowed(user, "sts:AssumeRole", IDENTITY_ROLE, context)
    assert not ev.can_assume(user, IDENTITY_ROLE, rendered.identity_trust, context)


def test_trusting_the_account_still_needs_the_developers_policy(
    ev: Evaluator, rendered: Rendered
) -> None:
    # Under UserPath but not in the group: the trust policy names the account, so the caller's
    # own policies must allow the call too.
    frank = ev.user(arn(IDENTITY, "user/developers/frank"), in_group=False)
    context = fresh_mfa(**{"sts:SourceIdentity": "frank"})
    assert not ev.can_assume(frank, IDENTITY_ROLE, rendered.identity_trust, context)
    with_group = ev.user(arn(IDENTITY, "user/developers/frank"))
    assert ev.can_assume(with_group, IDENTITY_ROLE, rendered.identity_trust, context)


def test_member_account_role_trusts_only_the_identity_accounts_developers(
    ev: Evaluator, rendered: Rendered
) -> None:
    alice = ev.user(ALICE)
    trust = rendered.member_trust
    assert ev.can_assume(alice, MEMBER_ROLE, trust, fresh_mfa(**{"sts:SourceIdentity": "alice"}))
    assert not ev.can_assume(alice, MEMBER_ROLE, trust, {"sts:SourceIdentity": "alice"})
    # A developer-looking user of another account, whose own policies allow everything.
    eve = ev.user(arn(STRANGER, "user/developers/eve"), in_group=False, policies=(ADMIN_LIKE,))
    context = fresh_mfa(**{"sts:SourceIdentity": "eve"})
    assert not ev.can_assume(eve, MEMBER_ROLE, trust, context)
    assert not ev.can_assume(eve, IDENTITY_ROLE, rendered.identity_trust, context)
    # And the member account's own users are not trusted either.
    local = ev.user(arn(MEMBER, "user/developers/mallory"), in_group=False, policies=(ADMIN_LIKE,))
    context = fresh_mfa(**{"sts:SourceIdentity": "mallory"})
    assert not ev.can_assume(local, MEMBER_ROLE, trust, context)


def test_both_templates_render_the_same_trust_policy(rendered: Rendered) -> None:
    # elevated-role.yaml with every default (TrustedAccountId empty: trust the account itself)
    # is the identity stack's role, moved to another account.
    moved = json.loads(json.dumps(rendered.default_trust).replace(STRANGER, IDENTITY))
    assert moved == rendered.identity_trust
    member = json.loads(json.dumps(rendered.member_trust))
    assert member == rendered.identity_trust  # it trusts IDENTITY, and names no other account


def test_pmapper_compares_condition_variables_literally(ev: Evaluator, rendered: Rendered) -> None:
    """The limitation `for_requester` works around, shown on PMapper itself."""
    alice = ev.user(ALICE)
    literal = rendered.identity_trust
    assert "${aws:username}" in json.dumps(literal)
    owner = IDENTITY

    def raw(source_identity: str) -> bool:
        return bool(ev.qi.local_check_authorization_full(
            alice, "sts:AssumeRole", IDENTITY_ROLE, fresh_mfa(**{"sts:SourceIdentity": source_identity}),
            resource_policy=literal, resource_owner=owner))

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
    for other in (BOB, arn(IDENTITY, "user/alice"), arn(IDENTITY, "user/other/alice"),
                  arn(MEMBER, "user/developers/alice")):
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
    for context in (fresh_mfa(**{"sts:SourceIdentity": "alice"}), NO_MFA, MFA_FALSE):
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
    return tuple(sorted(
        f"{prefix}:{action}" for prefix, spec in services.items() for action in spec["Actions"]
    ))


PROBES = {
    "own user": (ALICE, OWN_USER_WITH_MFA, OWN_USER_WITHOUT_MFA),
    "another user": (BOB, set(), set()),
    "own MFA device": (arn(IDENTITY, "mfa/alice"), OWN_MFA_DEVICE, OWN_MFA_DEVICE),
    "another's MFA device": (arn(IDENTITY, "mfa/bob"), set(), set()),
    # Without MFA the developers' policy lets the AssumeRole request through to the role, whose
    # trust policy then refuses it (test_assume_role_needs_mfa): the Deny exempts sts:AssumeRole
    # because whether IAM counts an MFA code passed in the call as the caller's MFA context is
    # not something we can check offline (docs/admin.md).
    "elevated role here": (IDENTITY_ROLE, ELEVATED_ROLE_ACTIONS, {"sts:assumerole"}),
    "elevated role in a member account": (MEMBER_ROLE, ELEVATED_ROLE_ACTIONS, {"sts:assumerole"}),
    "another role": (arn(IDENTITY, "role/Admin"), set(), set()),
    "a bucket": ("arn:aws:s3:::some-bucket", set(), set()),
    "any": ("*", set(), set()),
}


@pytest.mark.parametrize("probe", list(PROBES))
def test_every_known_action_against_the_developers_policy(ev: Evaluator, probe: str) -> None:
    """Across the whole action catalogue, the developers' policy allows exactly what the issue
    lists, with MFA and without."""
    resource, with_mfa, without_mfa = PROBES[probe]
    alice = ev.user(ALICE)
    actions = catalogue()
    assert len(actions) > 10_000
    context = fresh_mfa(**{"sts:SourceIdentity": "alice"})
    allowed = {a for a in actions if ev.allowed(alice, a, resource, context)}
    assert allowed == with_mfa | STAR
    allowed = {a for a in actions if ev.allowed(alice, a, resource, NO_MFA)}
    assert allowed == without_mfa | STAR


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
    assert resources["DeveloperGroup"]["Properties"]["ManagedPolicyArns"] == [
        {"Ref": "DeveloperPolicy"}
    ]
