"""scripts/deploy-stack, run as a subprocess against a local moto server (AWS_ENDPOINT_URL).

What moto cannot show, and where it is covered instead:
* moto's CloudFormation skips AWS::IAM::Group and AWS::IAM::UserToGroupAddition (so the stack has
  no GroupName output there) and ignores a role's ManagedPolicyArns: the template's wiring of
  these is checked by cfn-lint and checkov (test_lint.py) and the group's policy by
  test_policy_semantics.py.
* moto evaluates no policy conditions: the policies' meaning is proven in test_policy_semantics.py.
* moto leaves IAM roles unchanged on a stack update, and its StackSets ignore AccountFilterType
  (--exclude-account) and update only the recorded parameters of stack instances: the update
  tests check the parameters CloudFormation was given.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cfn import (
    DEPLOY_STACK,
    DEVELOPER_ACCESS,
    aws_env,
    moto_client,
    run_deploy_stack,
    venv_tool,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEFAULT_ACCOUNT = "123456789012"  # the account moto gives AWS's example access key


@pytest.fixture(autouse=True)
def _lint_tool_present() -> None:
    venv_tool("cfn-lint")  # deploy-stack lints first; skip (or fail under CI) without it


def deploy(url: str, *args: str) -> Any:
    return run_deploy_stack(list(args), aws_env(url))


def stack_status(url: str, name: str) -> str:
    return str(moto_client(url, "cloudformation").describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])


def test_help_names_both_modes() -> None:
    assert os.access(DEPLOY_STACK, os.X_OK)
    assert DEPLOY_STACK.read_text().startswith("#!/usr/bin/env python3\n")
    env = dict(os.environ)
    top = run_deploy_stack(["--help"], env)
    assert top.returncode == 0, top.stderr
    assert "stack" in top.stdout and "stackset" in top.stdout
    for mode, option in (("stack", "--stack-name"), ("stackset", "--ou")):
        result = run_deploy_stack([mode, "--help"], env)
        assert result.returncode == 0, result.stderr
        assert option in result.stdout
        assert "--param" in result.stdout and "--endpoint-url" in result.stdout


def test_deploys_the_developer_stack_and_prints_its_outputs(cfn_moto: str) -> None:
    iam = moto_client(cfn_moto, "iam")
    for name in ("alice", "bob"):
        iam.create_user(UserName=name, Path="/developers/")
    boundary = "arn:aws:iam::aws:policy/PowerUserAccess"
    result = deploy(
        cfn_moto,
        "stack",
        "--stack-name",
        "developer-access",
        "--json",
        "--param",
        "DeveloperUserNames=alice,bob",
        "--param",
        "MaxSessionDuration=7200",
        "--param",
        f"PermissionsBoundaryArn={boundary}",
    )
    assert result.returncode == 0, result.stderr
    assert "cfn-lint -c I developer-access.yaml" in result.stderr
    assert "CREATE_COMPLETE" in result.stderr
    assert stack_status(cfn_moto, "developer-access") == "CREATE_COMPLETE"

    outputs = json.loads(result.stdout)
    role = iam.get_role(RoleName="DeveloperElevated")["Role"]
    assert outputs["RoleArn"] == role["Arn"] == f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/DeveloperElevated"
    assert role["MaxSessionDuration"] == 7200
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    statement = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"}
    assert statement["Condition"]["ArnLike"] == {
        "aws:PrincipalArn": f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/developers/*"
    }
    assert outputs["MfaSerialPattern"] == f"arn:aws:iam::{DEFAULT_ACCOUNT}:mfa/<user-name>"
    policy = iam.get_policy(PolicyArn=outputs["DeveloperPolicyArn"])["Policy"]
    assert policy["PolicyName"] == "Developers-self-service-and-elevate"

    # The profile is TOML the CLI can read as it is, once <user-name> is filled in.
    profile = tomllib.loads(outputs["CliProfile"].replace("<user-name>", "alice"))["profiles"]["dev"]
    assert profile == {
        "role_arn": outputs["RoleArn"],
        "mfa_serial": f"arn:aws:iam::{DEFAULT_ACCOUNT}:mfa/alice",
        "region": "us-east-1",
    }


def test_update_keeps_parameters_not_given(cfn_moto: str) -> None:
    iam = moto_client(cfn_moto, "iam")
    first = deploy(
        cfn_moto,
        "stack",
        "--stack-name",
        "team-b",
        "--param",
        "GroupName=TeamB",
        "--param",
        "RoleName=TeamBElevated",
        "--param",
        "UserPath=/team-b/",
    )
    assert first.returncode == 0, first.stderr
    # Text output: one "Key: value" line, multi-line values indented below their key.
    assert f"RoleArn: arn:aws:iam::{DEFAULT_ACCOUNT}:role/TeamBElevated" in first.stdout.splitlines()
    assert "CliProfile:\n    [profiles.dev]\n" in first.stdout
    assert iam.get_role(RoleName="TeamBElevated")["Role"]["MaxSessionDuration"] == 3600

    second = deploy(cfn_moto, "stack", "--stack-name", "team-b", "--param", "MaxSessionDuration=14400")
    assert second.returncode == 0, second.stderr
    assert "updating stack team-b" in second.stderr
    assert stack_status(cfn_moto, "team-b") == "UPDATE_COMPLETE"
    # moto leaves an IAM role as it was on a stack update, so look at what the stack was given.
    stack = moto_client(cfn_moto, "cloudformation").describe_stacks(StackName="team-b")["Stacks"][0]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert parameters["MaxSessionDuration"] == "14400"
    assert parameters["UserPath"] == "/team-b/"
    assert parameters["GroupName"] == "TeamB"
    assert parameters["RoleName"] == "TeamBElevated"


def test_without_the_role(cfn_moto: str) -> None:
    result = deploy(
        cfn_moto,
        "stack",
        "--stack-name",
        "identity-only",
        "--json",
        "--param",
        "CreateRole=false",
        "--param",
        "GroupName=Remote",
        "--param",
        "RoleName=RemoteElevated",
        "--param",
        "RoleAccountIds=444455556666",
    )
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)
    assert outputs["RoleArn"] == "arn:aws:iam::<account-id>:role/RemoteElevated"
    roles = moto_client(cfn_moto, "iam").list_roles()["Roles"]
    assert "RemoteElevated" not in {r["RoleName"] for r in roles}
    assert "Remote-self-service-and-elevate" in outputs["DeveloperPolicyArn"]


def test_a_template_that_fails_lint_is_not_deployed(cfn_moto: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        DEVELOPER_ACCESS.read_text().replace(
            "MaxSessionDuration: !Ref MaxSessionDuration",
            "MaxSessionDuration: !Ref MaxSessionDuration\n      MaxSessionDurationTypo: 1",
        )
    )
    result = deploy(cfn_moto, "stack", "--stack-name", "broken", "--template", str(broken))
    assert result.returncode == 1
    assert "cfn-lint found problems" in result.stderr
    assert "MaxSessionDurationTypo" in result.stderr
    stacks = moto_client(cfn_moto, "cloudformation").list_stacks()["StackSummaries"]
    assert "broken" not in {s["StackName"] for s in stacks}


def organization(url: str) -> tuple[Any, str]:
    """moto's organization (created once per server) and its root."""
    org = moto_client(url, "organizations")
    try:
        org.describe_organization()
    except org.exceptions.AWSOrganizationsNotInUseException:
        org.create_organization(FeatureSet="ALL")
    return org, str(org.list_roots()["Roots"][0]["Id"])


def test_stackset_puts_the_role_in_every_account_of_the_ous(cfn_moto: str) -> None:
    org, root = organization(cfn_moto)
    ou = org.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]

    def account(name: str, parent: str) -> str:
        status = org.create_account(Email=f"{name}@example.com", AccountName=name)
        account_id = str(status["CreateAccountStatus"]["AccountId"])
        if parent != root:
            org.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=parent)
        return account_id

    members = {account("dev", ou), account("prod", ou)}
    outsider = account("sandbox", root)

    result = deploy(
        cfn_moto,
        "stackset",
        "--stack-set-name",
        "elevated-role",
        "--ou",
        ou,
        "--param",
        f"TrustedAccountId={DEFAULT_ACCOUNT}",
        "--param",
        "RoleName=OrgElevated",
    )
    assert result.returncode == 0, result.stderr
    assert "cfn-lint -c I elevated-role.yaml" in result.stderr
    listed = {line.split("\t")[0] for line in result.stdout.splitlines()}
    assert listed == members

    for member in members:
        role = moto_client(cfn_moto, "iam", member).get_role(RoleName="OrgElevated")["Role"]
        assert role["Arn"] == f"arn:aws:iam::{member}:role/OrgElevated"
        statement = role["AssumeRolePolicyDocument"]["Statement"][0]
        assert statement["Principal"] == {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"}
    outsider_roles = moto_client(cfn_moto, "iam", outsider).list_roles()["Roles"]
    assert "OrgElevated" not in {r["RoleName"] for r in outsider_roles}

    stack_set = moto_client(cfn_moto, "cloudformation").describe_stack_set(StackSetName="elevated-role")[
        "StackSet"
    ]
    assert stack_set["PermissionModel"] == "SERVICE_MANAGED"

    # A second run updates the StackSet and adds an OU.
    ou2 = org.create_organizational_unit(ParentId=root, Name="staging")["OrganizationalUnit"]["Id"]
    staging = account("staging", ou2)
    again = deploy(
        cfn_moto,
        "stackset",
        "--stack-set-name",
        "elevated-role",
        "--ou",
        ou,
        "--ou",
        ou2,
        "--param",
        f"TrustedAccountId={DEFAULT_ACCOUNT}",
        "--param",
        "RoleName=OrgElevated",
        "--param",
        "MaxMfaAgeSeconds=900",
    )
    assert again.returncode == 0, again.stderr
    assert "updating StackSet elevated-role and all its stack instances" in again.stderr
    assert {line.split("\t")[0] for line in again.stdout.splitlines()} == members | {staging}
    moto_client(cfn_moto, "iam", staging).get_role(RoleName="OrgElevated")
    parameters = moto_client(cfn_moto, "cloudformation").describe_stack_set(StackSetName="elevated-role")[
        "StackSet"
    ]["Parameters"]
    assert {"ParameterKey": "MaxMfaAgeSeconds", "ParameterValue": "900"} in [
        {k: p[k] for k in ("ParameterKey", "ParameterValue")} for p in parameters
    ]


def test_stackset_refuses_more_than_one_region(cfn_moto: str) -> None:
    result = deploy(
        cfn_moto,
        "stackset",
        "--ou",
        "ou-abcd-12345678",
        "--deployment-region",
        "us-east-1",
        "--deployment-region",
        "eu-west-1",
    )
    assert result.returncode == 1
    assert "exactly one --deployment-region" in result.stderr


def stack_set_parameters(url: str, name: str) -> dict[str, str]:
    described = moto_client(url, "cloudformation").describe_stack_set(StackSetName=name)["StackSet"]
    return {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}


def test_stackset_rerun_keeps_the_parameters_it_is_not_given(cfn_moto: str) -> None:
    """Issue 9: a rerun to change one parameter (or add an OU) must not reset TrustedAccountId
    and ManagedPolicyArns to their defaults in every account."""
    _, root = organization(cfn_moto)
    policies = "arn:aws:iam::aws:policy/PowerUserAccess"
    first = deploy(
        cfn_moto,
        "stackset",
        "--stack-set-name",
        "keeps",
        "--ou",
        root,
        "--param",
        "TrustedAccountId=111122223333",
        "--param",
        f"ManagedPolicyArns={policies}",
        "--param",
        "RoleName=KeepsElevated",
    )
    assert first.returncode == 0, first.stderr
    again = deploy(
        cfn_moto, "stackset", "--stack-set-name", "keeps", "--ou", root, "--param", "MaxMfaAgeSeconds=900"
    )
    assert again.returncode == 0, again.stderr
    parameters = stack_set_parameters(cfn_moto, "keeps")
    assert parameters.get("TrustedAccountId") == "111122223333", parameters
    assert parameters.get("ManagedPolicyArns") == policies
    assert parameters.get("RoleName") == "KeepsElevated"
    assert parameters["MaxMfaAgeSeconds"] == "900"
    assert "keeping the StackSet's values of ManagedPolicyArns, RoleName, TrustedAccountId" in again.stderr


def test_stackset_create_requires_the_trusted_account(cfn_moto: str) -> None:
    _, root = organization(cfn_moto)
    result = deploy(cfn_moto, "stackset", "--stack-set-name", "untrusting", "--ou", root)
    assert result.returncode == 1
    assert "needs --param TrustedAccountId" in result.stderr
    stack_sets = moto_client(cfn_moto, "cloudformation").list_stack_sets()["Summaries"]
    assert "untrusting" not in {s["StackSetName"] for s in stack_sets}


def test_stackset_refuses_a_second_region_on_a_later_run(cfn_moto: str) -> None:
    org, root = organization(cfn_moto)
    ou = org.create_organizational_unit(ParentId=root, Name="regions")["OrganizationalUnit"]["Id"]
    status = org.create_account(Email="regions@example.com", AccountName="regions")
    account = status["CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
    first = deploy(
        cfn_moto,
        "stackset",
        "--stack-set-name",
        "one-region",
        "--ou",
        ou,
        "--param",
        "TrustedAccountId=111122223333",
    )
    assert first.returncode == 0, first.stderr
    ou2 = org.create_organizational_unit(ParentId=root, Name="regions-2")["OrganizationalUnit"]["Id"]
    second = deploy(
        cfn_moto,
        "stackset",
        "--stack-set-name",
        "one-region",
        "--ou",
        ou,
        "--ou",
        ou2,
        "--deployment-region",
        "eu-west-1",
    )
    assert second.returncode == 1
    assert "already has stack instances in us-east-1" in second.stderr
    instances = moto_client(cfn_moto, "cloudformation").list_stack_instances(StackSetName="one-region")[
        "Summaries"
    ]
    assert {i["Region"] for i in instances} == {"us-east-1"}
