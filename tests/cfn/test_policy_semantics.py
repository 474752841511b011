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
  (test_policy_attacks.py) shows the key decides.
* moto ignores nothing here that the tests read, except that it returns a role's inline policy
  as Python's repr of the document rather than JSON: `inline_policy` reads both.

This file covers the elevated role and the developers' own credentials. The attacker's sequences
(test_policy_attacks.py) are the issue's: a stolen key alone, an MFA session 11 hours old, and what
fresh MFA may and may not do; each test names the attack. The shared principals and the evaluator
are in support/policies.py.
"""

from __future__ import annotations

import functools
import json

import pytest
from support.cfn import (
    DEVELOPER_ACCESS,
    for_requester,
    load_template,
    need,
    with_resource_account,
)
from support.policies import (
    ADMIN_LIKE,
    ALICE,
    BOB,
    ELEVATED_ROLE_ACTIONS,
    ELEVEN_HOURS,
    IDENTITY,
    IDENTITY_ROLE,
    MAX_MFA_AGE,
    MEMBER,
    MEMBER_ROLE,
    MFA_FALSE,
    NO_MFA,
    ONBOARDING,
    OWN_MFA_DEVICE,
    OWN_USER_IN_WINDOW,
    OWN_USER_READ,
    OWN_USER_WITH_MFA,
    OWN_USER_WITHOUT_MFA,
    ROLE_NAME,
    STAR,
    STAR_ALWAYS,
    STRANGER,
    Evaluator,
    Rendered,
    arn,
    elevate_call,
    fresh_mfa,
)

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
