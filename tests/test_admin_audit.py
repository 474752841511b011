"""`elevate admin audit` without a live IAM: the credential report read by AWS's documented
columns, each rule and its threshold, the bounded wait for the report, how the report and the live
lists are joined (an in-memory IAM boundary), and a hostile endpoint. The runs against moto (every
finding in one run, exit statuses, a refused permission) are in test_admin_audit_moto.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from support.cli import one_error_line, run_elevate
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET

from elevate.admin import audit as auditing
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
