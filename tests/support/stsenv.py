"""What the tests of STS without a botocore client share: the example keys, a captured
GetCallerIdentity answer, a test environment with no AWS files, proxies or endpoints, and
aws.sts_client under that environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from elevate import aws
from elevate.models import SourceKeys
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET

KEYS = SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET)
IDENTITY = (
    b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
    b"<Arn>arn:aws:iam::123456789012:user/alice</Arn><UserId>AIDAX</UserId><Account>123456789012</Account>"
    b"</GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
    b"</GetCallerIdentityResponse>"
)


@pytest.fixture(autouse=True)
def no_aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Autouse in every module that imports it: AWS files under tmp, no proxy, endpoint or CA bundle."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def sts_client(keys: Any, region: str) -> Any:
    """aws.sts_client under the test's own (sealed) process environment."""
    return aws.sts_client(keys, region, os.environ)
