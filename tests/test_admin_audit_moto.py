"""`elevate admin audit` run as a command against moto in server mode: every finding in one run
(one moto whose IAM clock runs behind, so keys can be old), the exit statuses, usage errors and
help, and a refused permission (a moto enforcing IAM policies, auditors missing one action each).
The report's parsing, the rules and the joins are in test_admin_audit.py."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pyotp
import pytest
from click.testing import CliRunner
from support.cli import one_error_line, run_elevate
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.servers import moto_server

from elevate.admin import audit as auditing
from elevate.cli import cli

# --- against moto ------------------------------------------------------------------------------


@dataclass
class AgedMoto:
    url: str
    days_ago: Path

    def client(self, **keys: str) -> Any:
        return boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=keys.get("key_id", EXAMPLE_ID),
            aws_secret_access_key=keys.get("secret", EXAMPLE_SECRET),
        )

    def set_days_ago(self, days: float) -> None:
        self.days_ago.write_text(str(days))


@pytest.fixture(scope="module")
def aged_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgedMoto]:
    """A moto server of its own whose IAM clock the test sets back (support.servers)."""
    days_ago = tmp_path_factory.mktemp("moto") / "iam-days-ago"
    days_ago.write_text("0")
    with moto_server(iam_days_ago=days_ago) as url:
        yield AgedMoto(url, days_ago)


def enable_mfa(iam: Any, user: str) -> None:
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{user}-mfa")["VirtualMFADevice"]
    seed = device["Base32StringSeed"]
    totp = pyotp.TOTP(seed.decode() if isinstance(seed, bytes) else seed)
    iam.enable_mfa_device(
        UserName=user,
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=totp.at(time.time() - 30),
        AuthenticationCode2=totp.now(),
    )


@dataclass
class Team:
    path: str
    group: str
    keys: dict[str, list[str]]


def developers(moto: AgedMoto) -> Team:
    """One user per finding, plus one with none, under a path and group of their own."""
    iam = moto.client()
    tag = uuid.uuid4().hex[:8]
    path, group = f"/audit-{tag}/", f"Developers-{tag}"
    iam.create_group(GroupName=group)
    keys: dict[str, list[str]] = {}

    def user(name: str, *, group_member: bool = True, mfa: bool = True, window: bool = False) -> None:
        tags = [{"Key": "elevate-onboarding", "Value": "true"}] if window else []
        iam.create_user(UserName=f"{name}-{tag}", Path=path, Tags=tags)
        if group_member:
            iam.add_user_to_group(GroupName=group, UserName=f"{name}-{tag}")
        if mfa:
            enable_mfa(iam, f"{name}-{tag}")
        keys[name] = [iam.create_access_key(UserName=f"{name}-{tag}")["AccessKey"]["AccessKeyId"]]

    moto.set_days_ago(120)
    user("old")  # its key is 120 days old and was never used
    moto.set_days_ago(0)
    user("fine")
    user("nomfa", mfa=False)
    user("twokeys")
    keys["twokeys"].append(iam.create_access_key(UserName=f"twokeys-{tag}")["AccessKey"]["AccessKeyId"])
    moto.set_days_ago(10)
    user("window", mfa=False, window=True)  # created, window opened, 10 days ago
    moto.set_days_ago(0)
    user("outsider", group_member=False)
    # Someone outside the path, in the group: not audited.
    iam.create_user(UserName=f"elsewhere-{tag}", Path="/other/")
    iam.add_user_to_group(GroupName=group, UserName=f"elsewhere-{tag}")
    return Team(path, group, keys)


def moto_env(moto: AgedMoto, key_id: str = EXAMPLE_ID, secret: str = EXAMPLE_SECRET) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
    }


@pytest.mark.slow
def test_every_finding_in_one_run_table_and_json(aged_moto: AgedMoto) -> None:
    team = developers(aged_moto)
    args = ["admin", "audit", "--user-path", team.path, "--group", team.group]
    table = run_elevate(*args, env=moto_env(aged_moto))
    print(table.stdout)  # the run quoted in the closing note (pytest -s shows it)
    assert table.returncode == 1, table.stderr
    assert table.stderr == ""
    out = table.stdout
    for kind in (
        auditing.KEY_TOO_OLD,
        auditing.KEY_UNUSED,
        auditing.SECOND_ACTIVE_KEY,
        auditing.NO_MFA,
        auditing.WINDOW_OPEN,
        auditing.OUTSIDE_GROUP,
    ):
        assert f": {kind}: " in out, kind
    assert "elsewhere" not in out
    old_key = team.keys["old"][0]
    assert f"key {old_key} is 120 days old" in out
    assert f"key {old_key} never used since it was created" in out
    assert "at the earliest since the user was created " in out and " (10 days ago)" in out

    done = run_elevate(*args, "--json", env=moto_env(aged_moto))
    assert done.returncode == 1 and done.stderr == ""
    document = json.loads(done.stdout)
    found = {
        d["user"].rsplit("-", 1)[0]: sorted(f["kind"] for f in d["findings"]) for d in document["developers"]
    }
    assert found == {
        "fine": [],
        "old": [auditing.KEY_TOO_OLD, auditing.KEY_UNUSED],
        "nomfa": [auditing.NO_MFA],
        "twokeys": [auditing.SECOND_ACTIVE_KEY],
        "window": [auditing.NO_MFA, auditing.WINDOW_OPEN],
        "outsider": [auditing.OUTSIDE_GROUP],
    }
    twokeys = next(d for d in document["developers"] if d["user"].startswith("twokeys-"))
    assert [k["access_key_id"] for k in twokeys["access_keys"]] == team.keys["twokeys"]
    old = next(d for d in document["developers"] if d["user"].startswith("old-"))
    assert old["access_keys"][0]["age_days"] == 120 and old["access_keys"][0]["last_used"] is None
    assert document["finding_count"] == 7


@pytest.mark.slow
def test_a_clean_team_exits_0_and_thresholds_come_from_flags(aged_moto: AgedMoto) -> None:
    iam = aged_moto.client()
    tag = uuid.uuid4().hex[:8]
    path, group = f"/clean-{tag}/", f"Clean-{tag}"
    iam.create_group(GroupName=group)
    aged_moto.set_days_ago(60)
    iam.create_user(UserName=f"carol-{tag}", Path=path)
    aged_moto.set_days_ago(0)
    iam.add_user_to_group(GroupName=group, UserName=f"carol-{tag}")
    enable_mfa(iam, f"carol-{tag}")
    aged_moto.set_days_ago(30)
    iam.create_access_key(UserName=f"carol-{tag}")
    aged_moto.set_days_ago(0)
    args = ["admin", "audit", "--user-path", path, "--group", group]
    clean = run_elevate(*args, env=moto_env(aged_moto))
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.endswith("no findings\n") and f"carol-{tag}" in clean.stdout
    strict = run_elevate(*args, "--max-key-age-days", "20", "--unused-days", "40", env=moto_env(aged_moto))
    assert strict.returncode == 1 and ": key-too-old: " in strict.stdout and "key-unused" not in strict.stdout


@pytest.mark.slow
def test_a_missing_group_or_an_unreachable_iam_could_not_audit(aged_moto: AgedMoto) -> None:
    missing = run_elevate("admin", "audit", "--group", "NoSuchGroup-x", env=moto_env(aged_moto))
    assert "the group NoSuchGroup-x does not exist" in one_error_line(missing, exit_code=2)
    env = {**moto_env(aged_moto), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    unreachable = run_elevate("admin", "audit", "--report-wait", "1", env=env, timeout=120)
    assert "could not audit: cannot reach IAM" in one_error_line(unreachable, exit_code=2)


def test_a_bad_user_path_is_a_usage_error() -> None:
    done = run_elevate("admin", "audit", "--user-path", "developers")
    assert "--user-path 'developers': an IAM path starts and ends with '/'" in one_error_line(done, 2)


def test_admin_and_audit_have_help() -> None:
    assert "deploy, drift, audit" in CliRunner().invoke(cli, ["admin", "--help"]).output
    assert "0 nothing found, 1 findings, 2" in CliRunner().invoke(cli, ["admin", "audit", "--help"]).output


# --- a refused permission, with moto enforcing IAM policies ------------------------------------

# docs/admin.md's read policy (the docs test below checks they agree).
READ_POLICY = [
    "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
    "iam:GetGroup",
    "iam:ListUsers",
    "iam:ListUserTags",
    "iam:ListAccessKeys",
    "iam:GetAccessKeyLastUsed",
    "iam:ListMFADevices",
]


def test_the_docs_policy_is_the_tested_one() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "admin.md").read_text(encoding="utf-8")
    section = text.split("### The audit's permissions", 1)[1]
    policy = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    actions: list[str] = []
    for statement in policy["Statement"]:
        action = statement["Action"]
        actions += [action] if isinstance(action, str) else action
    assert sorted(actions) == sorted(READ_POLICY)


@dataclass
class Auditor:
    key_id: str
    secret: str


@pytest.fixture(scope="module")
def enforcing_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgedMoto, dict[str, Auditor]]]:
    """A moto server that checks every request against IAM policies once the auditors exist:
    one with docs/admin.md's read policy, and one per action that lacks just that action."""
    days_ago = tmp_path_factory.mktemp("moto-auth") / "iam-days-ago"
    days_ago.write_text("0")
    with moto_server(iam_days_ago=days_ago) as url:
        moto = AgedMoto(url, days_ago)
        iam = moto.client()
        iam.create_group(GroupName="Developers")
        iam.create_user(UserName="dana", Path="/developers/")
        iam.add_user_to_group(GroupName="Developers", UserName="dana")
        dana = iam.create_access_key(UserName="dana")["AccessKey"]
        auditors = {}
        for missing in ["", *READ_POLICY]:
            name = "auditor-" + (missing.split(":")[1] if missing else "all")
            iam.create_user(UserName=name, Path="/admins/")
            actions = [a for a in READ_POLICY if a != missing]
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
            iam.put_user_policy(UserName=name, PolicyName="audit", PolicyDocument=json.dumps(policy))
            made = iam.create_access_key(UserName=name)["AccessKey"]
            auditors[missing] = Auditor(made["AccessKeyId"], made["SecretAccessKey"])
        request = urllib.request.Request(  # noqa: S310 - the loopback moto server
            url + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - the loopback moto server
            pass
        # dana's key signs one request, which moto (checking signatures now) records as its last use.
        boto3.client(
            "sts",
            endpoint_url=url,
            region_name="eu-west-1",
            aws_access_key_id=dana["AccessKeyId"],
            aws_secret_access_key=dana["SecretAccessKey"],
        ).get_caller_identity()
        yield moto, auditors


@pytest.mark.slow
def test_the_documented_read_policy_is_enough(enforcing_moto: tuple[AgedMoto, dict[str, Auditor]]) -> None:
    moto, auditors = enforcing_moto
    done = run_elevate("admin", "audit", env=moto_env(moto, auditors[""].key_id, auditors[""].secret))
    assert done.returncode == 1, done.stderr  # dana has no MFA
    assert "dana: no-mfa:" in done.stdout and done.stderr == ""
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("dana ")]
    assert line.endswith(f"active  0d   {today}"), line  # moto's report has no region or service


@pytest.mark.slow
# Every action the audit reaches here; GetAccessKeyLastUsed and ListMFADevices are asked only for
# keys and users younger than the report, and moto's report is always current.
@pytest.mark.parametrize("missing", READ_POLICY[:6])
def test_a_missing_permission_is_one_line_naming_the_action(
    enforcing_moto: tuple[AgedMoto, dict[str, Auditor]], missing: str
) -> None:
    moto, auditors = enforcing_moto
    who = auditors[missing]
    done = run_elevate("admin", "audit", env=moto_env(moto, who.key_id, who.secret))
    line = one_error_line(done, exit_code=2)
    assert f"{missing} was refused (AccessDenied)" in line
