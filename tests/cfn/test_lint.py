"""cfn-lint (with informational rules) and checkov (offline) on both templates, for real.

Each linter is also shown a deliberately bad template, so a clean result means something.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.cfn import DEVELOPER_ACCESS, ELEVATED_ROLE, checkov_tool, load_template, venv_tool

TEMPLATES = [DEVELOPER_ACCESS, ELEVATED_ROLE]
IDS = [t.name for t in TEMPLATES]

BAD_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Everything:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {AWS: "*"}
            Action: "sts:AssumeRole"
      Policies:
        - PolicyName: all
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: "*"
                Resource: "*"
      MaxSessionDuration: 10
"""


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_tool("cfn-lint"), "-c", "I", "--", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def checkov(path: Path) -> dict[str, Any]:
    """Run checkov offline on one CloudFormation template; return its JSON report."""
    result = subprocess.run(
        [checkov_tool(), "--skip-download", "--framework", "cloudformation", "-o", "json", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # checkov exits 1 when a check fails; anything else non-zero is the tool itself failing.
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one entry per framework; we asked for one
        (report,) = report
    assert isinstance(report, dict), report
    return report


@pytest.fixture(scope="session")
def checkov_reports() -> dict[str, dict[str, Any]]:
    """checkov is slow: run it once per template per session."""
    return {t.name: checkov(t) for t in TEMPLATES}


@pytest.mark.parametrize("template", TEMPLATES, ids=IDS)
def test_cfn_lint_with_informational_rules_reports_nothing(template: Path) -> None:
    result = cfn_lint(template)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_cfn_lint_does_report_a_bad_template(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_TEMPLATE)
    result = cfn_lint(bad)
    assert result.returncode != 0
    assert "E3034" in result.stdout  # MaxSessionDuration below its minimum


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES, ids=IDS)
def test_checkov_reports_no_failed_check(template: Path, checkov_reports: dict[str, dict[str, Any]]) -> None:
    report = checkov_reports[template.name]
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"], c.get("check_name")) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert summary["failed"] == 0
    assert summary["parsing_errors"] == 0
    # It really looked at the IAM resources.
    assert summary["passed"] > 0
    checked = {c["resource"].split(".")[0] for c in report["results"]["passed_checks"]}
    expected = {"AWS::IAM::Role"} | (
        {"AWS::IAM::ManagedPolicy", "AWS::IAM::Group"} if template == DEVELOPER_ACCESS else set()
    )
    assert expected <= checked


@pytest.mark.slow
def test_checkov_does_fail_a_bad_template(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_TEMPLATE)
    report = checkov(bad)
    assert report["summary"]["failed"] > 0


@pytest.mark.parametrize("template", TEMPLATES, ids=IDS)
def test_every_suppression_gives_a_reason(template: Path) -> None:
    """A checkov skip or a cfn-lint ignore may only sit in Metadata, with a written reason."""
    loaded = load_template(template)
    holders = [("template", loaded.get("Metadata") or {})] + [
        (name, resource.get("Metadata") or {}) for name, resource in (loaded.get("Resources") or {}).items()
    ]
    for where, metadata in holders:
        for skip in (metadata.get("checkov") or {}).get("skip", []):
            assert str(skip.get("comment", "")).strip(), f"{where}: checkov skip {skip} has no reason"
        lint_config = (metadata.get("cfn-lint") or {}).get("config") or {}
        if lint_config.get("ignore_checks"):
            assert str(metadata.get("cfn-lint", {}).get("reason", "")).strip(), (
                f"{where}: cfn-lint ignore_checks without a 'reason' beside it"
            )
    # No inline suppression comments anywhere else either.
    text = template.read_text()
    assert "checkov:skip" not in text
    assert "cfn-lint: disable" not in text
