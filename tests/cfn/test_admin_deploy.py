"""The deploy tool's guards (issue 19), against moto: termination protection and a stack policy
unless --no-protection, an onboarding window opened for N minutes, and `drift` per account of
the StackSet (moto has no StackSet drift detection, so the GetRole comparison runs)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from support.cfn import aws_env, moto_client, run_deploy_stack, venv_tool

DEFAULT_ACCOUNT = "123456789012"  # the account moto gives AWS's example access key
IDENTITY = "210987654321"  # the StackSet's trusted account


@pytest.fixture(autouse=True)
def _lint_tool_present() -> None:
    venv_tool("cfn-lint")  # deploy-stack lints first


def deploy(url: str, *args: str) -> Any:
    return run_deploy_stack(list(args), aws_env(url))


def stack(url: str, name: str) -> dict[str, Any]:
    return dict(moto_client(url, "cloudformation").describe_stacks(StackName=name)["Stacks"][0])


def test_a_new_stack_is_protected(cfn_moto: str) -> None:
    result = deploy(
        cfn_moto,
        "stack",
        "--stack-name",
        "guarded",
        "--param",
        "GroupName=Guarded",
        "--param",
        "RoleName=GuardedRole",
    )
    assert result.returncode == 0, result.stderr
    assert stack(cfn_moto, "guarded")["EnableTerminationProtection"] is True
    policy = json.loads(
        moto_client(cfn_moto, "cloudformation").get_stack_policy(StackName="guarded")["StackPolicyBody"]
    )
    denied = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert denied and set(denied[0]["Action"]) == {"Update:Replace", "Update:Delete"}
    for name in ("ElevatedRole", "DeveloperPolicy", "DeveloperGroup", "GateBoundary"):
        assert f"LogicalResourceId/{name}" in denied[0]["Resource"]
    # An update keeps the stack policy (and says nothing of --no-protection).
    again = deploy(cfn_moto, "stack", "--stack-name", "guarded", "--param", "MaxSessionDuration=7200")
    assert again.returncode == 0, again.stderr
    assert "--no-protection" not in again.stderr


def test_no_protection_is_explicit(cfn_moto: str) -> None:
    result = deploy(
        cfn_moto,
        "stack",
        "--stack-name",
        "open",
        "--no-protection",
        "--param",
        "GroupName=Open",
        "--param",
        "RoleName=OpenRole",
    )
    assert result.returncode == 0, result.stderr
    assert "--no-protection: no termination protection, no stack policy" in result.stderr
    assert not stack(cfn_moto, "open").get("EnableTerminationProtection")
    answer = moto_client(cfn_moto, "cloudformation").get_stack_policy(StackName="open")
    assert not answer.get("StackPolicyBody")


def test_window_opens_for_n_minutes_and_closes(cfn_moto: str) -> None:
    iam = moto_client(cfn_moto, "iam")
    iam.create_user(UserName="newcomer", Path="/win/")
    created = deploy(
        cfn_moto,
        "stack",
        "--stack-name",
        "windowed",
        "--param",
        "GroupName=Win",
        "--param",
        "RoleName=WinRole",
        "--param",
        "UserPath=/win/",
    )
    assert created.returncode == 0, created.stderr
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack(cfn_moto, "windowed")["Parameters"]}
    assert params["OnboardingWindowEnds"] < datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    before = datetime.now(timezone.utc).replace(microsecond=0)
    opened = deploy(cfn_moto, "window", "--stack-name", "windowed", "--minutes", "30", "--user", "newcomer")
    assert opened.returncode == 0, opened.stderr
    ends = datetime.strptime(opened.stdout.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before + timedelta(minutes=30) <= ends <= before + timedelta(minutes=31)
    after = {p["ParameterKey"]: p["ParameterValue"] for p in stack(cfn_moto, "windowed")["Parameters"]}
    assert after["OnboardingWindowEnds"] == opened.stdout.strip()
    # The others kept their values (moto shows a list parameter as Python's repr after an update).
    for key in ("GroupName", "RoleName", "UserPath", "MaxSessionDuration", "CreateRole"):
        assert after[key] == params[key], key
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="newcomer")["Tags"]}
    assert tags == {"elevate-onboarding": "true"}

    closed = deploy(cfn_moto, "window", "--stack-name", "windowed", "--minutes", "0")
    assert closed.returncode == 0, closed.stderr
    assert closed.stdout.strip() <= datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    too_long = deploy(cfn_moto, "window", "--stack-name", "windowed", "--minutes", "20000")
    assert too_long.returncode == 1 and "--minutes" in too_long.stderr


def organization(url: str) -> tuple[Any, str]:
    org = moto_client(url, "organizations")
    try:
        org.describe_organization()
    except org.exceptions.AWSOrganizationsNotInUseException:
        org.create_organization(FeatureSet="ALL")
    return org, str(org.list_roots()["Roots"][0]["Id"])


def drift(url: str, *args: str) -> Any:
    return deploy(url, "drift", "--stack-set-name", "gate", *args)


def test_drift_finds_a_member_trust_edited_by_a_local_admin(cfn_moto: str) -> None:
    org, root = organization(cfn_moto)
    ou = org.create_organizational_unit(ParentId=root, Name="drift")["OrganizationalUnit"]["Id"]
    members = []
    for name in ("one", "two"):
        account = str(
            org.create_account(Email=f"{name}@example.com", AccountName=name)["CreateAccountStatus"][
                "AccountId"
            ]
        )
        org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
        members.append(account)
    made = deploy(
        cfn_moto,
        "stackset",
        "--stack-set-name",
        "gate",
        "--ou",
        ou,
        "--param",
        f"TrustedAccountId={IDENTITY}",
    )
    assert made.returncode == 0, made.stderr

    clean = drift(cfn_moto)
    assert clean.returncode == 0, clean.stderr
    assert "StackSet drift detection" in clean.stderr  # moto has none: GetRole comparison
    assert sorted(clean.stdout.splitlines()) == sorted(f"{m}\tIN_SYNC" for m in members)

    # A local admin in one member account removes the MFA conditions.
    iam = moto_client(cfn_moto, "iam", members[0])
    trust = iam.get_role(RoleName="DeveloperElevated")["Role"]["AssumeRolePolicyDocument"]
    statement = trust["Statement"][0]
    statement["Condition"] = {"ArnLike": statement["Condition"]["ArnLike"]}
    iam.update_assume_role_policy(RoleName="DeveloperElevated", PolicyDocument=json.dumps(trust))
    # And in the other, removes the boundary.
    moto_client(cfn_moto, "iam", members[1]).delete_role_permissions_boundary(RoleName="DeveloperElevated")

    found = drift(cfn_moto, "--compare-roles")
    assert found.returncode == 1, found.stderr
    lines = dict(line.split("\t", 1) for line in found.stdout.splitlines())
    assert lines[members[0]] == "DRIFTED\ttrust policy differs from the template"
    assert lines[members[1]].startswith("DRIFTED\tpermissions boundary is none, not arn:aws:iam::")
    assert "2 of 2 account(s) drifted" in found.stderr


def test_drift_of_an_unknown_stack_set_cannot_check(cfn_moto: str) -> None:
    result = drift(cfn_moto, "--stack-set-name", "no-such-set")
    assert result.returncode == 2
    assert "error:" in result.stderr
