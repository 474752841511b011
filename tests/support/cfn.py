"""Helpers for the CloudFormation tests: templates, the real tools, clients into moto.

A real part (cfn-lint, checkov, principalmapper) that is missing skips its tests on a developer's
machine, but fails them when CI=true, where it must be present.
"""

from __future__ import annotations

import ast
import collections
import collections.abc
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "cloudformation"
DEVELOPER_ACCESS = TEMPLATES / "developer-access.yaml"
ELEVATED_ROLE = TEMPLATES / "elevated-role.yaml"
DEPLOY_STACK = REPO / "scripts" / "deploy-stack"
REGION = "us-east-1"
# AWS's documentation example key pair: moto accepts any credentials.
FAKE_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(present: bool, reason: str) -> None:
    """Skip when a real part is missing; under CI=true fail instead, since CI must have it."""
    if present:
        return
    if in_ci():
        pytest.fail(f"missing under CI: {reason}")
    pytest.skip(reason)


# scripts/test installs checkov into a venv of its own (it pins boto3 exactly) and names it here.
# Read at import, before each test's sealed environment drops ELEVATE_* variables.
CHECKOV_FROM_ENV = os.environ.get("ELEVATE_CHECKOV", "")


def checkov_tool() -> str:
    """checkov: $ELEVATE_CHECKOV, else beside this interpreter, else in the sibling
    `<venv>-checkov` venv that scripts/test creates."""
    candidates = [
        Path(CHECKOV_FROM_ENV) if CHECKOV_FROM_ENV else None,
        Path(sys.executable).parent / "checkov",
        Path(sys.prefix + "-checkov") / "bin" / "checkov",
    ]
    found = next((c for c in candidates if c is not None and c.exists()), None)
    need(found is not None, "checkov is not installed ($ELEVATE_CHECKOV, the venv, or <venv>-checkov)")
    return str(found)


def venv_tool(name: str) -> str:
    """The executable `name` installed beside this interpreter (the project venv's bin/)."""
    path = Path(sys.executable).parent / name
    need(path.exists(), f"{name} is not installed beside {sys.executable}")
    return str(path)


def import_pmapper() -> Any:
    """Import principalmapper's query interface (PMapper 1.1.5 still imports ABCs from
    `collections`, which Python 3.10 removed: alias them back, in test code only)."""
    for name in ("Mapping", "MutableMapping", "Sequence", "Iterable", "Callable"):
        if name not in vars(collections):
            setattr(collections, name, getattr(collections.abc, name))
    try:
        from principalmapper.querying import query_interface
    except ImportError as exc:
        need(False, f"principalmapper is not importable: {exc}")
        raise
    return query_interface


def load_template(path: Path) -> dict[str, Any]:
    """Parse a template with cfn-lint's own CloudFormation YAML loader (short-form tags)."""
    try:
        from cfnlint.decode import cfn_yaml
    except ImportError as exc:
        need(False, f"cfn-lint is not importable: {exc}")
        raise
    parsed: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(path))))
    return parsed


def moto_client(url: str, service: str, account: str | None = None) -> Any:
    """A boto3 client for the moto server at `url`, acting in `account` when given."""
    client = boto3.client(
        service,  # type: ignore[call-overload]  # any service name: boto3-stubs want literals
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )
    if account is not None:
        # moto picks the account from this header before looking at the access key.
        def add_account(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account

        client.meta.events.register("before-sign", add_account)
    return client


def aws_env(url: str) -> dict[str, str]:
    """Environment for a subprocess talking to moto (on top of the sealed test environment)."""
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID=FAKE_KEY_ID,
        AWS_SECRET_ACCESS_KEY=FAKE_SECRET,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def run_deploy_stack(args: list[str], env: dict[str, str], timeout: float = 120) -> Any:
    """Run scripts/deploy-stack with this interpreter (so it finds the venv's cfn-lint)."""
    return subprocess.run(
        [sys.executable, str(DEPLOY_STACK), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# --- policies as IAM holds them, prepared for principalmapper (see test_policy_semantics.py) ---


def with_resource_account(context: dict[str, Any], resource: str) -> dict[str, Any]:
    """Add aws:ResourceAccount as IAM sets it: the account field of the resource ARN."""
    parts = resource.split(":")
    if len(parts) >= 6 and parts[4] and "aws:ResourceAccount" not in context:
        return {**context, "aws:ResourceAccount": parts[4]}
    return context


def inline_policy(url: str, account: str, role: str, name: str) -> dict[str, Any]:
    """A role's inline policy as IAM holds it (moto returns Python's repr of it, not JSON)."""
    raw = moto_client(url, "iam", account).get_role_policy(RoleName=role, PolicyName=name)
    document = raw["PolicyDocument"]
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            document = ast.literal_eval(document)
    return dict(as_iam_stores(document))


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


def managed_policy(url: str, account: str, policy_arn: str) -> dict[str, Any]:
    """The default version of a managed policy as IAM holds it."""
    iam = moto_client(url, "iam", account)
    policy = iam.get_policy(PolicyArn=policy_arn)["Policy"]
    version = iam.get_policy_version(PolicyArn=policy_arn, VersionId=policy["DefaultVersionId"])
    document = version["PolicyVersion"]["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    return dict(as_iam_stores(document))


def deploy_in_moto(url: str, account: str, template: Path, name: str, **params: str) -> dict[str, str]:
    """Create a stack in moto; its outputs. Parameters the template does not declare are left
    out, so that a test can also be run against an older template (the before/after record)."""
    cfn = moto_client(url, "cloudformation", account)
    known = set(load_template(template).get("Parameters") or {})
    cfn.create_stack(
        StackName=name,
        TemplateBody=template.read_text(),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items() if k in known],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


class Judge:
    """principalmapper's verdicts on principals built from documents IAM rendered."""

    def __init__(self) -> None:
        self.qi = import_pmapper()
        from principalmapper.common import Group, Node, Policy

        self._group, self._node, self._policy = Group, Node, Policy

    def policy(self, policy_arn: str, name: str, document: dict[str, Any]) -> Any:
        """A policy object as PMapper takes it (for a service control policy, say)."""
        return self._policy(policy_arn, name, document)

    def user(
        self,
        user_arn: str,
        group_policies: tuple[dict[str, Any], ...] = (),
        tags: dict[str, str] | None = None,
    ) -> Any:
        """An IAM user in a group holding `group_policies` (${aws:username} resolved for it)."""
        account = user_arn.split(":")[4]
        policies = [
            self._policy(f"arn:aws:iam::{account}:policy/group{i}", f"group{i}", for_requester(p, user_arn))
            for i, p in enumerate(group_policies)
        ]
        groups = [self._group(f"arn:aws:iam::{account}:group/Developers", policies)] if policies else []
        name = user_arn.rsplit("/", 1)[1]
        return self._node(
            user_arn,
            "AIDA" + name.upper(),
            [],
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

    def role(
        self, role_arn: str, policies: tuple[dict[str, Any], ...], boundary: dict[str, Any] | None = None
    ) -> Any:
        """A role (its session) with these identity policies and this permissions boundary."""
        inline = [self._policy(role_arn, f"inline{i}", p) for i, p in enumerate(policies)]
        bound = None if boundary is None else self._policy(f"{role_arn}-boundary", "boundary", boundary)
        trust = {"Version": "2012-10-17", "Statement": []}
        name = role_arn.rsplit("/", 1)[1]
        return self._node(
            role_arn, "AROA" + name.upper(), inline, [], trust, None, 0, False, False, bound, False, None
        )

    def allowed(self, principal: Any, action: str, resource: str, context: dict[str, Any]) -> bool:
        """Identity-based decision, aws:ResourceAccount added as IAM sets it."""
        context = with_resource_account(context, resource)
        return bool(self.qi.local_check_authorization_full(principal, action, resource, context))

    def can_assume(
        self, principal: Any, role_arn: str, trust: dict[str, Any], context: dict[str, Any], action: str
    ) -> bool:
        """`action` (sts:AssumeRole, sts:TagSession, ...) on a role: the caller's policies and the
        role's trust policy together, as IAM decides within and across accounts."""
        owner = role_arn.split(":")[4]
        context = with_resource_account(context, role_arn)
        return bool(
            self.qi.local_check_authorization_full(
                principal,
                action,
                role_arn,
                context,
                resource_policy=for_requester(trust, principal.arn),
                resource_owner=owner,
            )
        )
