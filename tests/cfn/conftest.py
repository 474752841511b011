"""Fixtures for the CloudFormation tests (helpers live in support/cfn.py and support/policies.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.cfn import importable, need
from support.policies import Evaluator, Rendered, render
from support.servers import moto_server


@pytest.fixture(scope="module")
def cfn_moto() -> Iterator[str]:
    """A moto server (127.0.0.1, free port) of this test module's own; stopped afterwards."""
    need(importable("moto.server"), "moto[server] is not installed")
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def rendered(cfn_moto: str) -> Rendered:
    """The templates' policies as CloudFormation renders them (deployed into this module's moto)."""
    return render(cfn_moto)


@pytest.fixture(scope="module")
def ev(rendered: Rendered) -> Evaluator:
    """principalmapper's verdicts over the rendered policies."""
    return Evaluator(rendered)
