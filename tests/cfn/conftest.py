"""Fixtures for the CloudFormation tests (helpers live in cfn/cfn_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.servers import moto_server

from cfn.cfn_support import importable, need


@pytest.fixture(scope="module")
def cfn_moto() -> Iterator[str]:
    """A moto server (127.0.0.1, free port) of this test module's own; stopped afterwards."""
    need(importable("moto.server"), "moto[server] is not installed")
    with moto_server() as url:
        yield url
