"""The attacks of issue 9 against the rendered policies, as an attacker would run them (a stolen
key alone, an MFA session 11 hours old, what fresh MFA may and may not do), the gate's protection
of itself, and the templates' defaults; decided by principalmapper as in test_policy_semantics.py,
whose docstring says what is adjusted before evaluation and why."""

from __future__ import annotations

from typing import Any

import pytest
from support.cfn import (
    DEVELOPER_ACCESS,
    ELEVATED_ROLE,
    load_template,
    moto_client,
)
from support.policies import (
    ADMIN_LIKE,
    ALICE,
    BOB,
    ELEVEN_HOURS,
    IDENTITY,
    IDENTITY_PARAMS,
    IDENTITY_ROLE,
    MEMBER_PARAMS,
    MEMBER_ROLE,
    NO_MFA,
    ONBOARDING,
    OPT_OUT,
    OPT_OUT_PARAMS,
    OWN_PARAMS,
    ROLE_NAME,
    SENSITIVE_MFA_AGE,
    STRANGER,
    Evaluator,
    Rendered,
    arn,
    declared,
    deploy,
    elevate_call,
    fresh_mfa,
    gate_of,
    untag,
)

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
