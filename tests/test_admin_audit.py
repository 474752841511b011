"""`elevate admin audit`: the credential report read by AWS's documented columns, each finding,
the table, the JSON, the exit statuses and a refused permission, against moto in server mode
(one whose IAM clock runs behind, so keys can be old) and a captured report."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
from elevate.errors import AuditError

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
HEADER = ",".join(auditing.REPORT_COLUMNS)


def report_line(user: str, **values: str) -> str:
    """One row of a credential report as AWS writes it: every column, N/A where nothing is."""
    row = {column: "N/A" for column in auditing.REPORT_COLUMNS}
    row.update(
        user=user,
        arn=f"arn:aws:iam::123456789012:user/developers/{user}",
        user_creation_time="2025-01-10T09:00:00+00:00",
        password_enabled="false",
        password_last_used="no_information",
        password_next_rotation="N/A",
        mfa_active="true",
        access_key_1_active="false",
        access_key_2_active="false",
        cert_1_active="false",
        cert_2_active="false",
    )
    row.update(values)
    return ",".join(row[c] for c in auditing.REPORT_COLUMNS)


# --- the report, parsed ------------------------------------------------------------------------


def test_a_captured_report_is_read_by_the_documented_columns() -> None:
    content = "\n".join(
        [
            HEADER,
            # The root user's row, as AWS writes it (not_supported password, no keys).
            "<root_account>,arn:aws:iam::123456789012:root,2024-01-01T00:00:00+00:00,not_supported,"
            "2026-11-01T10:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,"
            "false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
            report_line(
                "alice",
                access_key_1_active="true",
                access_key_1_last_rotated="2026-08-01T08:30:00+00:00",
                access_key_1_last_used_date="2026-11-30T17:45:00+00:00",
                access_key_1_last_used_region="eu-west-1",
                access_key_1_last_used_service="sts",
                access_key_2_active="false",
                access_key_2_last_rotated="2026-11-20T08:30:00+00:00",
                access_key_2_last_used_date="N/A",
            ),
        ]
    ).encode()
    report = auditing.parse_credential_report(content, NOW)
    alice = report.rows["alice"]
    assert alice.mfa_active and alice.created == datetime(2025, 1, 10, 9, tzinfo=timezone.utc)
    first, second = alice.keys
    assert (first.slot, first.active, first.last_region, first.last_service) == (1, True, "eu-west-1", "sts")
    assert first.created == datetime(2026, 8, 1, 8, 30, tzinfo=timezone.utc)
    assert first.last_used == datetime(2026, 11, 30, 17, 45, tzinfo=timezone.utc)
    assert (second.active, second.last_used, second.last_region) == (False, None, "")
    assert report.rows["<root_account>"].keys == ()


def test_a_report_without_a_documented_column_is_refused() -> None:
    content = (HEADER.replace(",mfa_active", "") + "\n").encode()
    with pytest.raises(AuditError, match=r"lacks the column.s. mfa_active") as caught:
        auditing.parse_credential_report(content)
    assert caught.value.exit_code == 2


def test_a_report_the_csv_reader_cannot_read_is_refused_in_one_line() -> None:
    """A field over the csv module's limit (an endpoint's hostile report) is an AuditError
    (one line, exit 2), not a traceback."""
    content = "\n".join([HEADER, report_line("mallory", arn="x" * 200_000)]).encode()
    with pytest.raises(AuditError, match="cannot be read as CSV") as caught:
        auditing.parse_credential_report(content)
    assert caught.value.exit_code == 2


def test_text_from_the_report_cannot_write_to_the_terminal() -> None:
    content = "\n".join(
        [
            HEADER,
            report_line(
                "mallory",
                access_key_1_active="true",
                access_key_1_last_rotated="2026-11-01T00:00:00+00:00",
                access_key_1_last_used_date="2026-11-02T00:00:00+00:00",
                access_key_1_last_used_region='"eu-west-1\x1b[2J\u202e"',
            ),
        ]
    ).encode()
    (key,) = auditing.parse_credential_report(content).rows["mallory"].keys
    assert "\x1b" not in key.last_region and "\u202e" not in key.last_region
    assert key.last_region.startswith("eu-west-1\\x1b")


# --- the rules ---------------------------------------------------------------------------------


def key(
    days_old: float, used_days_ago: float | None = None, active: bool = True, key_id: str = "K1"
) -> auditing.AccessKey:
    return auditing.AccessKey(
        key_id=key_id,
        active=active,
        created=NOW - timedelta(days=days_old),
        last_used=None if used_days_ago is None else NOW - timedelta(days=used_days_ago),
        last_region="eu-west-1" if used_days_ago is not None else "",
        last_service="sts" if used_days_ago is not None else "",
    )


def kinds(
    *keys: auditing.AccessKey, in_group: bool = True, mfa_active: bool = True, window_open: bool = False
) -> list[str]:
    found = auditing.judge(
        "alice",
        keys,
        created=NOW - timedelta(days=200),
        in_group=in_group,
        mfa_active=mfa_active,
        window_open=window_open,
        group="Developers",
        thresholds=auditing.Thresholds(),
        now=NOW,
    )
    return [f.kind for f in found]


def test_each_rule_and_its_threshold() -> None:
    assert kinds(key(89, used_days_ago=1)) == []
    assert kinds(key(91, used_days_ago=1)) == [auditing.KEY_TOO_OLD]
    assert kinds(key(30, used_days_ago=44)) == []
    assert kinds(key(60, used_days_ago=46)) == [auditing.KEY_UNUSED]
    assert kinds(key(46)) == [auditing.KEY_UNUSED]  # never used since it was made 46 days ago
    assert kinds(key(44)) == []
    assert kinds(key(120, active=False)) == []  # an inactive key signs nothing
    two = (key(10, 1, key_id="K1"), key(1, key_id="K2"))
    assert kinds(*two) == [auditing.SECOND_ACTIVE_KEY]
    assert kinds(key(10, 1, key_id="K1"), key(1, active=False, key_id="K2")) == []  # rotated, kept inactive
    assert kinds(key(10, 1), mfa_active=False) == [auditing.NO_MFA]
    assert kinds(key(10, 1), window_open=True) == [auditing.WINDOW_OPEN]
    assert kinds(key(10, 1), in_group=False) == [auditing.OUTSIDE_GROUP]


def test_the_thresholds_are_parameters() -> None:
    found = auditing.judge(
        "alice",
        (key(31, used_days_ago=11),),
        created=None,
        in_group=True,
        mfa_active=True,
        window_open=False,
        group="Developers",
        thresholds=auditing.Thresholds(max_key_age_days=30, max_unused_days=10),
        now=NOW,
    )
    assert [f.kind for f in found] == [auditing.KEY_TOO_OLD, auditing.KEY_UNUSED]
    assert "31 days old" in found[0].message and "limit 30" in found[0].message
    assert "last used 2026-11-21 (11 days ago)" in found[1].message


# --- waiting for the report, without sleeping --------------------------------------------------


class ReportingIam:
    """An IAM double whose report takes `starts` GenerateCredentialReport calls to be ready."""

    def __init__(self, starts: int) -> None:
        self.starts = starts
        self.generate_calls = 0

    def generate_credential_report(self) -> dict[str, str]:
        self.generate_calls += 1
        return {"State": "COMPLETE" if self.generate_calls > self.starts else "STARTED"}

    def get_credential_report(self) -> dict[str, Any]:
        return {"Content": (HEADER + "\n" + report_line("alice") + "\n").encode(), "GeneratedTime": NOW}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def test_the_report_is_polled_until_ready() -> None:
    iam, clock = ReportingIam(starts=3), FakeTime()
    report = auditing.fetch_credential_report(
        iam, wait_seconds=60, sleep=clock.sleep, monotonic=clock.monotonic
    )
    assert list(report.rows) == ["alice"] and report.generated == NOW
    assert iam.generate_calls == 4 and clock.sleeps == [auditing.POLL_SECONDS] * 3


def test_the_wait_for_the_report_is_bounded() -> None:
    iam, clock = ReportingIam(starts=10**6), FakeTime()
    with pytest.raises(AuditError, match=r"not ready after 5 s .state STARTED.") as caught:
        auditing.fetch_credential_report(iam, wait_seconds=5, sleep=clock.sleep, monotonic=clock.monotonic)
    assert caught.value.exit_code == 2
    assert sum(clock.sleeps) == 5 and iam.generate_calls == 4


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


# --- how the report and the live lists are joined (an in-memory IAM boundary) -----------------


class MemoryIam:
    """IAM's read calls over a fixed account, paginating ListUsers one user per page."""

    def __init__(
        self, report: str, users: list[dict[str, Any]], live: dict[str, list[dict[str, Any]]]
    ) -> None:
        self.report, self.users, self.live = report, users, live
        self.asked: list[str] = []

    def generate_credential_report(self) -> dict[str, str]:
        return {"State": "COMPLETE"}

    def get_credential_report(self) -> dict[str, Any]:
        return {"Content": self.report.encode(), "GeneratedTime": NOW - timedelta(hours=3)}

    def get_group(self, GroupName: str) -> dict[str, Any]:
        return {"Users": [{"UserName": "alice"}, {"UserName": "bob"}], "IsTruncated": False}

    def list_users(self, PathPrefix: str, Marker: str = "0") -> dict[str, Any]:
        index = int(Marker)
        more = index + 1 < len(self.users)
        return {
            "Users": [self.users[index]],
            "IsTruncated": more,
            **({"Marker": str(index + 1)} if more else {}),
        }

    def list_user_tags(self, UserName: str) -> dict[str, Any]:
        return {"Tags": [{"Key": "elevate-onboarding", "Value": "TRUE"}]}  # not "true": closed

    def list_access_keys(self, UserName: str) -> dict[str, Any]:
        return {"AccessKeyMetadata": self.live[UserName]}

    def get_access_key_last_used(self, AccessKeyId: str) -> dict[str, Any]:
        self.asked.append(f"GetAccessKeyLastUsed {AccessKeyId}")
        used = {"LastUsedDate": NOW - timedelta(hours=1), "Region": "us-east-1", "ServiceName": "iam"}
        return {"UserName": "alice", "AccessKeyLastUsed": used}

    def list_mfa_devices(self, UserName: str) -> dict[str, Any]:
        self.asked.append(f"ListMFADevices {UserName}")
        return {"MFADevices": [{"SerialNumber": f"arn:aws:iam::123456789012:mfa/{UserName}"}]}


def test_live_keys_take_their_last_use_from_the_report_or_iam() -> None:
    made = datetime(2026, 11, 1, 8, 0, 0, tzinfo=timezone.utc)
    report = "\n".join(
        [
            HEADER,
            report_line(
                "alice",
                mfa_active="false",
                access_key_1_active="false",  # the report is older than the key's reactivation
                access_key_1_last_rotated="2026-11-01T08:00:00+00:00",
                access_key_1_last_used_date="2026-11-30T17:45:00+00:00",
                access_key_1_last_used_region="eu-west-1",
                access_key_1_last_used_service="sts",
            ),
        ]
    )
    live = {
        "alice": [
            {
                "AccessKeyId": "AKIAOLDKEY",
                "Status": "Active",
                "CreateDate": made + timedelta(microseconds=400),
            },
            {"AccessKeyId": "AKIANEWKEY", "Status": "Active", "CreateDate": NOW - timedelta(hours=2)},
        ],
        "bob": [],
    }
    users = [
        {"UserName": "alice", "Arn": "arn:aws:iam::123456789012:user/developers/alice", "CreateDate": made},
        {"UserName": "bob", "Arn": "arn:aws:iam::123456789012:user/developers/bob", "CreateDate": made},
    ]
    iam = MemoryIam(report, users, live)
    result = auditing.audit(iam, clock=lambda: NOW)
    alice, bob = result.developers
    old, new = alice.keys
    assert (old.last_used, old.last_region, old.last_service) == (
        datetime(2026, 11, 30, 17, 45, tzinfo=timezone.utc),
        "eu-west-1",
        "sts",
    )
    assert (new.last_region, new.last_service) == ("us-east-1", "iam")
    # Asked of IAM only what the report could not say: the new key, and bob (not in the report).
    assert iam.asked == ["GetAccessKeyLastUsed AKIANEWKEY", "ListMFADevices bob"]
    assert bob.mfa_active and not bob.findings
    assert [f.kind for f in alice.findings] == [auditing.SECOND_ACTIVE_KEY, auditing.NO_MFA]
    assert not alice.window_open
    table = auditing.render_table(result)
    assert "AKIAOLDKEY  active  31d  2026-11-30 eu-west-1 sts" in table
    assert "AKIANEWKEY  active  0d   2026-12-02 us-east-1 iam" in table
    assert "credential report of 2026-12-02 09:00 UTC" in table
    document = json.loads(auditing.to_json(result))
    assert document["developers"][0]["access_keys"][0]["last_used_region"] == "eu-west-1"
    assert document["developers"][1]["access_keys"] == [] and document["finding_count"] == 2


def test_no_admin_credentials_could_not_audit() -> None:
    unknown = run_elevate("admin", "audit", "--profile", "nosuch")
    assert "The config profile (nosuch) could not be found" in one_error_line(unknown, exit_code=2)
    none = run_elevate("admin", "audit")
    assert "could not audit: GenerateCredentialReport failed: Unable to locate credentials" in one_error_line(
        none, exit_code=2
    )


# --- a hostile endpoint --------------------------------------------------------------------------


def test_an_endless_answer_is_not_read_into_memory() -> None:
    """An endpoint (AWS_ENDPOINT_URL) that answers with more than any credential report of
    MAX_REPORT_ROWS users: the admin's client stops reading at its cap, one error line, exit 2."""
    import http.server
    import os
    import threading

    from elevate import aws

    total = aws.MAX_ADMIN_RESPONSE_BYTES + (8 << 20)
    sent: list[int] = []

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            chunk, done = b" " * (1 << 20), 0
            try:
                while done < total:
                    self.wfile.write(chunk)
                    done += len(chunk)
            except OSError:
                pass
            sent.append(done)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
            "AWS_ACCESS_KEY_ID": EXAMPLE_ID,
            "AWS_SECRET_ACCESS_KEY": EXAMPLE_SECRET,
        }
        done = run_elevate("admin", "audit", env=env, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    line = one_error_line(done, exit_code=2)
    assert "KiB" in line or "MiB" in line, line
    assert sent and max(sent) < total, f"the client read the whole {total} bytes ({sent})"
