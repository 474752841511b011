"""The CLI through CliRunner and real subprocesses: keys, exec, contract, errors (help: test_docs.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from support.cli import run_elevate
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.provision import Provisioned, provision

from elevate import keystore

run = run_elevate


@pytest.fixture
def alice(moto_env: str, request: pytest.FixtureRequest) -> Provisioned:
    """A provisioned user whose keys are stored as key set 'dev' and a config naming it."""
    name = "cli-" + request.node.name.replace("[", "-").replace("]", "")[:40]
    p = provision(moto_env, user_name=name)
    keystore.put_keys("dev", keystore.check_keys(p.access_key_id, p.secret_access_key))
    write_config({"dev": {"role_arn": p.role_arn, "mfa_serial": p.mfa_serial, "region": "eu-west-1"}})
    return p


def test_keys_add_from_stdin_list_masks_remove() -> None:
    done = run("keys", "add", "work", stdin=f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "AKIA************MPLE" in done.stderr and EXAMPLE_SECRET not in done.stderr
    listed = run("keys", "list")
    assert listed.stdout.startswith("work\tAKIA************MPLE\tadded ")
    assert EXAMPLE_ID not in listed.stdout and EXAMPLE_SECRET not in listed.stdout
    assert keystore.get_keys("work").secret_access_key == EXAMPLE_SECRET
    assert run("keys", "remove", "work", "--yes").returncode == 0
    assert run("keys", "list").stdout == ""
    gone = run("keys", "remove", "work", "--yes")
    assert gone.returncode == 1 and "no keys stored as 'work'" in gone.stderr


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (f"ASIAIOSFODNN7EXAMPLE\n{EXAMPLE_SECRET}\n", "ASIA... keys are temporary"),
        (f"akiaiosfodnn7example\n{EXAMPLE_SECRET}\n", "is not a long-term key ID"),
        (f"{EXAMPLE_ID}\nshort\n", "not 40 characters"),
        (f"{EXAMPLE_ID}\n", "expected 2 lines on stdin"),
        ("", "expected 2 lines on stdin"),
    ],
)
def test_keys_add_rejects_bad_shapes(stdin: str, message: str) -> None:
    done = run("keys", "add", "work", stdin=stdin)
    assert done.returncode == 2
    assert message in done.stderr
    assert "short" not in done.stderr and EXAMPLE_SECRET not in done.stderr
    assert "Traceback" not in done.stderr


def test_keys_add_rejects_bad_name() -> None:
    done = run("keys", "add", "../x", stdin=f"{EXAMPLE_ID}\n{EXAMPLE_SECRET}\n")
    assert done.returncode == 2 and "key set name '../x'" in done.stderr


def test_credential_process_contract(alice: Provisioned) -> None:
    done = run("credential-process", "dev", "--token", alice.totp().now())
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    assert data["Version"] == 1
    assert data["AccessKeyId"].startswith("ASIA")
    assert data["Expiration"].endswith("Z")
    assert done.stdout.count("\n") == 1 and done.stderr == ""


def test_debug_never_prints_a_secret(alice: Provisioned) -> None:
    done = run("--debug", "credential-process", "dev", "--no-cache", "--token", "975310")
    assert done.returncode == 0, done.stderr
    creds = json.loads(done.stdout)
    assert "debug:" in done.stderr
    for secret in (alice.secret_access_key, creds["SecretAccessKey"], creds["SessionToken"], "975310"):
        assert secret not in done.stderr


def test_exec_passes_credentials_strips_profile_and_returns_status(alice: Provisioned) -> None:
    env = dict(os.environ, AWS_PROFILE="somewhere-else", AWS_SECURITY_TOKEN="stale")
    script = (
        "import os, sys, json; "
        "print(json.dumps({k: os.environ.get(k) for k in "
        "['AWS_ACCESS_KEY_ID', 'AWS_PROFILE', 'AWS_SECURITY_TOKEN', 'ELEVATE_PROFILE', 'AWS_REGION']})); "
        "sys.exit(7)"
    )
    done = run("exec", "dev", "-t", "123456", "--", sys.executable, "-c", script, env=env)
    assert done.returncode == 7, done.stderr
    seen = json.loads(done.stdout)
    assert seen["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert seen["AWS_PROFILE"] is None and seen["AWS_SECURITY_TOKEN"] is None
    assert seen["ELEVATE_PROFILE"] == "dev" and seen["AWS_REGION"] == "eu-west-1"


def test_exec_refuses_inside_elevated_environment(alice: Provisioned) -> None:
    env = dict(os.environ, ELEVATE_PROFILE="dev")
    done = run("exec", "dev", "-t", "123456", "--", "true", env=env)
    assert done.returncode == 2 and "already inside an elevated environment" in done.stderr
    forced = run("exec", "dev", "--force", "-t", "123456", "--", "true", env=env)
    assert forced.returncode == 0, forced.stderr


def test_exec_command_not_found(alice: Provisioned) -> None:
    done = run("exec", "dev", "-t", "123456", "--", "no-such-command-xyz")
    assert done.returncode == 127 and "command not found: no-such-command-xyz" in done.stderr


def test_exec_default_command_is_shell(alice: Provisioned, tmp_path: Path) -> None:
    shell = tmp_path / "fake-shell"
    shell.write_text('#!/bin/sh\necho "shell got $ELEVATE_PROFILE"\n')
    shell.chmod(0o755)
    done = run("exec", "dev", "-t", "123456", env=dict(os.environ, SHELL=str(shell)))
    assert done.returncode == 0 and done.stdout == "shell got dev\n"


@pytest.mark.parametrize("token", ["12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_token_refused_before_any_aws_call(token: str) -> None:
    role, serial = "arn:aws:iam::123456789012:role/R", "arn:aws:iam::123456789012:mfa/a"
    write_config({"dev": {"role_arn": role, "mfa_serial": serial}})
    # No keys are stored: reaching the keyring or STS would give a different error.
    done = run(
        "credential-process",
        "dev",
        "--token",
        token,
        env=dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9"),
    )
    assert done.returncode == 2
    assert "--token must be six digits" in done.stderr and done.stdout == ""


def test_token_spaces_are_ignored(alice: Provisioned) -> None:
    done = run("credential-process", "dev", "--token", "123 456")
    assert done.returncode == 0, done.stderr


def test_unreachable_endpoint_is_one_line(alice: Provisioned) -> None:
    from support.servers import free_port

    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    done = run("credential-process", "dev", "--no-cache", "-t", "123456", env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("elevate: error: cannot reach STS at http://127.0.0.1:")
    assert done.stderr.count("\n") == 1


def test_missing_keys_names_keys_add(alice: Provisioned) -> None:
    keystore.delete_keys("dev")
    done = run("credential-process", "dev", "-t", "123456")
    assert done.returncode == 1
    assert "no keys stored as 'dev': run `elevate keys add dev`" in done.stderr


def test_no_profile_lists_known(alice: Provisioned) -> None:
    done = run("credential-process", "-t", "123456")
    assert done.returncode == 2 and "known profiles: dev" in done.stderr
    done = run("export", "nope", "-t", "123456")
    assert done.returncode == 2 and "unknown profile 'nope'" in done.stderr


def test_aws_profile_pointing_at_missing_profile_does_not_break(alice: Provisioned) -> None:
    done = run(
        "credential-process", "dev", "-t", "123456", env=dict(os.environ, AWS_PROFILE="not-in-any-file")
    )
    assert done.returncode == 0, done.stderr


def test_session_name_and_source_identity_default_to_user_name(alice: Provisioned) -> None:
    script = (
        "import boto3, json; print(boto3.client('sts', region_name='eu-west-1').get_caller_identity()['Arn'])"
    )
    done = run("exec", "dev", "-t", "123456", "--", sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f":assumed-role/DeveloperElevated/{alice.user_name}")


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and "elevate" in done.stdout
