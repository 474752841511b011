"""`--debug` explains each step on stderr and never prints a secret (issue 12, item 6)."""

from __future__ import annotations

from pathlib import Path

from support.cli import run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.fakests import FakeSts

from elevate import keystore
from elevate.models import SourceKeys

CODE = "402917"


def test_debug_explains_each_step_and_prints_no_secret(fake_sts: FakeSts, tmp_path: Path) -> None:
    keystore.put_keys("work", SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET))
    config = write_config(
        {
            "dev": {
                "role_arn": "arn:aws:iam::123456789012:role/Dev",
                "mfa_serial": "arn:aws:iam::123456789012:mfa/dev",
                "region": "eu-west-1",
                "keys": "work",
            }
        }
    )
    miss = run_elevate("--debug", "credential-process", "dev", "--token", CODE)
    assert miss.returncode == 0, miss.stderr
    again = run_elevate("--debug", "export", "dev", "--token", CODE)
    assert again.returncode == 0, again.stderr
    fake_sts.behave("AssumeRole", error=(403, "AccessDenied", "not allowed"))
    failed = run_elevate("--debug", "credential-process", "dev", "--token", "118833", "--no-cache")
    assert failed.returncode == 1

    log = miss.stderr
    for step in (
        f"config file: {config}",
        "profile dev: role arn:aws:iam::123456789012:role/Dev, key set work",
        f"session cache: file in {tmp_path / 'cache'}",
        "session cache: miss",
        "lock taken after",
        "keyring backend for 'work': elevate_testkeyring.FileKeyring",
        "key set 'work': access key AKIA************MPLE",
        f"region eu-west-1; STS endpoint {fake_sts.url} (AWS_ENDPOINT_URL)",
        "MFA code for arn:aws:iam::123456789012:mfa/dev from --token",
        f"STS GetCallerIdentity: endpoint {fake_sts.url}",
        "STS GetCallerIdentity: ok in",
        "STS AssumeRole: ok in",
        "session cache: stored; elevation took",
    ):
        assert step in log, f"{step!r} not in:\n{log}"
    assert "session cache: hit" in again.stderr
    assert "STS AssumeRole failed after" in failed.stderr and "AccessDenied" in failed.stderr
    assert "session cache: off (--no-cache)" in failed.stderr

    issued = fake_sts.requests
    secrets = {EXAMPLE_SECRET, EXAMPLE_ID, CODE, "118833"}
    for line in miss.stdout.split('"'):
        if len(line) > 30:  # the session token and secret access key elevate printed on stdout
            secrets.add(line)
    assert any(len(s) > 100 for s in secrets), "the session token was collected"
    assert issued
    for text in (miss.stderr, again.stderr, failed.stderr):
        for secret in secrets:
            assert secret not in text, "a secret reached the debug log"
