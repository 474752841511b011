"""Helpers for the CloudFormation tests: templates, the real tools, clients into moto.

A real part (cfn-lint, checkov, principalmapper) that is missing skips its tests on a developer's
machine, but fails them when CI=true, where it must be present.
"""

from __future__ import annotations

import collections
import collections.abc
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
