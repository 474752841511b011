"""Helpers for the onboarding tests: golden files, the sealed ~/.aws and config paths, and
CliRunner with exceptions kept.

Golden files in tests/golden hold ~/.aws files and a config with comments, odd spacing and
other profiles; every edit must leave every byte outside the edited section as it was.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any, Optional

import botocore.configloader
import pytest
from click.testing import CliRunner, Result

from elevate.cli import cli
from support.provision import Provisioned, provision

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def golden(name: str, **subst: str) -> bytes:
    text = (GOLDEN / name).read_text(encoding="utf-8")
    for key, value in subst.items():
        text = text.replace(f"@{key}@", value)
    return text.encode("utf-8")


def invoke(*args: str, stdin: Optional[str] = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, standalone_mode=False)


def aws_config_file() -> Path:
    return Path(os.environ["AWS_CONFIG_FILE"])


def credentials_file() -> Path:
    return Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])


def elevate_config() -> Path:
    return Path(os.environ["ELEVATE_CONFIG"])


def put(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def botocore_sections(path: Path) -> dict[str, Any]:
    """The file as the AWS CLI reads it."""
    return dict(botocore.configloader.raw_config_parse(str(path)))


def user_name(request: pytest.FixtureRequest, prefix: str) -> str:
    """An IAM user name unique to this test (moto is shared by the whole session)."""
    return f"{prefix}-{zlib.crc32(request.node.nodeid.encode()):08x}"


def onboarding_user(endpoint: str, request: pytest.FixtureRequest) -> Provisioned:
    """A moto user with an MFA device and a role to assume, named after this test."""
    return provision(endpoint, user_name=user_name(request, "onb"))
