"""`elevate admin audit`: what the stack cannot stop, read from IAM with read permissions only.

The credential report (GenerateCredentialReport until ready, bounded in time, then
GetCredentialReport) gives each user's MFA state and when their keys were created and last
used. ListUsers under the stack's UserPath, each user's tags (the onboarding window), the
developers' group's members (GetGroup) and each user's live access keys (ListAccessKeys,
since the report may be up to four hours old and a thief's second key may be younger)
complete it. The result is a value; `render_table` and `to_json` are pure functions of it.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from ..aws import ONBOARDING_TAG, call, error_code
from ..errors import AuditError, AwsError
from ..ui import printable

DEFAULT_USER_PATH = "/developers/"  # developer-access.yaml's UserPath default
DEFAULT_GROUP = "Developers"  # and its GroupName default
DEFAULT_MAX_KEY_AGE_DAYS = 90
DEFAULT_MAX_UNUSED_DAYS = 45
DEFAULT_REPORT_WAIT_SECONDS = 120.0
POLL_SECONDS = 2.0

# The credential report's columns as AWS documents them (IAM User Guide, "Getting credential
# reports for your AWS account"), in order. The audit reads them by name.
REPORT_COLUMNS = (
    "user",
    "arn",
    "user_creation_time",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "password_next_rotation",
    "mfa_active",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_1_last_used_region",
    "access_key_1_last_used_service",
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "access_key_2_last_used_region",
    "access_key_2_last_used_service",
    "cert_1_active",
    "cert_1_last_rotated",
    "cert_2_active",
    "cert_2_last_rotated",
)
_NEEDED = tuple(c for c in REPORT_COLUMNS if not c.startswith(("password", "cert")))
# What the report writes where there is no value: "N/A" (no key, never used),
# "no_information", "not_supported"; anything else that is not a date counts the same.
_NO_VALUE = frozenset({"", "n/a", "no_information", "not_supported"})
MAX_REPORT_ROWS = 100_000  # IAM's quota is 5,000 users per account; more is not a report

# Finding kinds: stable names for scripts (the JSON's "kind").
KEY_TOO_OLD = "key-too-old"
KEY_UNUSED = "key-unused"
SECOND_ACTIVE_KEY = "second-active-key"
NO_MFA = "no-mfa"
WINDOW_OPEN = "onboarding-window-open"
OUTSIDE_GROUP = "outside-group"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --- the credential report ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReportKey:
    """One access-key slot (1 or 2) of a report row."""

    slot: int
    active: bool
    created: Optional[datetime]  # access_key_N_last_rotated: created or last changed
    last_used: Optional[datetime]
    last_region: str  # "" when the report has none
    last_service: str


@dataclass(frozen=True)
class ReportRow:
    user: str
    arn: str
    created: Optional[datetime]
    mfa_active: bool
    keys: tuple[ReportKey, ...]  # only slots that hold a key


@dataclass(frozen=True)
class CredentialReport:
    generated: Optional[datetime]
    rows: Mapping[str, ReportRow]  # by user name


def _date(text: str) -> Optional[datetime]:
    """An ISO 8601 date-time from the report, as UTC; None for N/A and the like."""
    text = text.strip()
    if text.lower() in _NO_VALUE:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _text(text: str) -> str:
    return "" if text.strip().lower() in _NO_VALUE else printable(text.strip(), 64)


def parse_credential_report(content: bytes, generated: Optional[datetime] = None) -> CredentialReport:
    """The report's CSV read by AWS's documented column names; AuditError if it is not one."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AuditError("the credential report is not UTF-8 text: not auditing from it") from exc
    try:
        return _parse_rows(csv.DictReader(io.StringIO(text)), generated)
    except csv.Error as exc:  # a field over the csv module's limit, and the like
        reason = printable(str(exc), 120)
        raise AuditError(
            f"the credential report cannot be read as CSV ({reason}): not auditing from it"
        ) from exc


def _parse_rows(reader: csv.DictReader[str], generated: Optional[datetime]) -> CredentialReport:
    missing = [c for c in _NEEDED if c not in (reader.fieldnames or ())]
    if missing:
        raise AuditError(
            f"the credential report lacks the column(s) {', '.join(missing)}: not auditing from it"
        )
    rows: dict[str, ReportRow] = {}
    for number, raw in enumerate(reader):
        if number >= MAX_REPORT_ROWS:
            raise AuditError(f"the credential report has more than {MAX_REPORT_ROWS} rows: not auditing")
        keys = []
        for slot in (1, 2):
            prefix = f"access_key_{slot}_"
            created = _date(raw[prefix + "last_rotated"] or "")
            if created is None:
                continue
            keys.append(
                ReportKey(
                    slot=slot,
                    active=(raw[prefix + "active"] or "").strip().lower() == "true",
                    created=created,
                    last_used=_date(raw[prefix + "last_used_date"] or ""),
                    last_region=_text(raw[prefix + "last_used_region"] or ""),
                    last_service=_text(raw[prefix + "last_used_service"] or ""),
                )
            )
        user = printable(raw["user"] or "", 128)
        rows[user] = ReportRow(
            user=user,
            arn=printable(raw["arn"] or "", 2048),
            created=_date(raw["user_creation_time"] or ""),
            mfa_active=(raw["mfa_active"] or "").strip().lower() == "true",
            keys=tuple(keys),
        )
    return CredentialReport(generated=generated, rows=rows)


# --- the audit's result ------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    max_key_age_days: int = DEFAULT_MAX_KEY_AGE_DAYS
    max_unused_days: int = DEFAULT_MAX_UNUSED_DAYS


@dataclass(frozen=True)
class AccessKey:
    """One of a developer's access keys as IAM lists it now, with its last use."""

    key_id: str
    active: bool
    created: Optional[datetime]
    last_used: Optional[datetime]
    last_region: str
    last_service: str


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str
    fix: str


@dataclass(frozen=True)
class Developer:
    user: str
    arn: str
    created: Optional[datetime]
    in_group: bool
    mfa_active: bool
    window_open: bool
    keys: tuple[AccessKey, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Audit:
    audited_at: datetime
    report_generated: Optional[datetime]
    user_path: str
    group: str
    thresholds: Thresholds
    developers: tuple[Developer, ...]

    @property
    def finding_count(self) -> int:
        return sum(len(d.findings) for d in self.developers)


def _days(delta: timedelta) -> int:
    return max(0, delta.days)


def _day(value: Optional[datetime]) -> str:
    return value.strftime("%Y-%m-%d") if value else "unknown"


def judge(
    user: str,
    keys: tuple[AccessKey, ...],
    *,
    created: Optional[datetime],
    in_group: bool,
    mfa_active: bool,
    window_open: bool,
    group: str,
    thresholds: Thresholds,
    now: datetime,
) -> tuple[Finding, ...]:
    """The findings for one developer: pure, so every rule is tested without AWS."""
    findings = []
    active = [k for k in keys if k.active]
    deactivate = "aws iam update-access-key --user-name {user} --access-key-id {key} --status Inactive"
    for key in active:
        if key.created is not None and now - key.created > timedelta(days=thresholds.max_key_age_days):
            findings.append(
                Finding(
                    KEY_TOO_OLD,
                    f"key {key.key_id} is {_days(now - key.created)} days old (created "
                    f"{_day(key.created)}; limit {thresholds.max_key_age_days})",
                    "the developer runs `elevate rotate KEYS` (a new key, the old one deleted)",
                )
            )
        since = key.last_used or key.created
        if since is not None and now - since > timedelta(days=thresholds.max_unused_days):
            use = (
                f"last used {_day(key.last_used)} ({_days(now - key.last_used)} days ago)"
                if key.last_used
                else f"never used since it was created {_day(key.created)}"
            )
            findings.append(
                Finding(
                    KEY_UNUSED,
                    f"key {key.key_id} {use}; limit {thresholds.max_unused_days} days unused",
                    deactivate.format(user=user, key=key.key_id) + ", then delete-access-key",
                )
            )
    if len(active) > 1:
        findings.append(
            Finding(
                SECOND_ACTIVE_KEY,
                f"{len(active)} active keys: {', '.join(k.key_id for k in active)}",
                "mid-rotation: the developer runs `elevate rotate KEYS` again; else deactivate "
                "the key they do not hold: " + deactivate.format(user=user, key="KEY"),
            )
        )
    if not mfa_active:
        enroll = "the developer runs `elevate mfa enroll PROFILE`"
        if not window_open:
            enroll = (
                f"open the window (aws iam tag-user --user-name {user} --tags "
                f"Key={ONBOARDING_TAG},Value=true), then {enroll}"
            )
        findings.append(
            Finding(
                NO_MFA,
                "no MFA device: the user cannot elevate, and while the onboarding window is open "
                "the key alone can enrol one",
                enroll,
            )
        )
    if window_open:
        # IAM keeps no date for a tag (CloudTrail's TagUser event has it): the user's creation
        # is the earliest the window can have opened.
        opened = f"{_day(created)} ({_days(now - created)} days ago)" if created else "unknown"
        findings.append(
            Finding(
                WINDOW_OPEN,
                f"onboarding window open (tag {ONBOARDING_TAG}=true), at the earliest since the "
                f"user was created {opened}; the key alone can enrol an MFA device",
                "`elevate mfa enroll` closes it; once the device works: "
                f"aws iam untag-user --user-name {user} --tag-keys {ONBOARDING_TAG}",
            )
        )
    if not in_group:
        findings.append(
            Finding(
                OUTSIDE_GROUP,
                f"not in the group {group}: the stack's policy does not govern this user, whom "
                "the role still trusts for being under the path",
                f"aws iam add-user-to-group --group-name {group} --user-name {user}, or move or "
                "delete the user",
            )
        )
    return tuple(findings)


# --- reading IAM -------------------------------------------------------------------------------


def _call(iam: Any, method: str, operation: str, **params: Any) -> Any:
    """One IAM read; a refusal becomes an AuditError naming the action (exit 2)."""
    try:
        return call(iam, method, operation, **params)
    except AwsError as exc:
        if error_code(exc) in ("AccessDenied", "AccessDeniedException"):
            raise AuditError(
                f"iam:{operation} was refused (AccessDenied): the audit needs the read-only "
                "policy in docs/admin.md, Keeping watch"
            ) from exc
        raise AuditError(f"could not audit: {exc.message}") from exc


def _pages(iam: Any, method: str, operation: str, result: str, **params: Any) -> Iterator[Any]:
    """Every item of a paginated IAM list (Marker / IsTruncated)."""
    marker: Optional[str] = None
    while True:
        answer = _call(iam, method, operation, **params, **({"Marker": marker} if marker else {}))
        yield from answer.get(result) or []
        marker = answer.get("Marker")
        if not answer.get("IsTruncated") or not marker:
            return


def fetch_credential_report(
    iam: Any,
    *,
    wait_seconds: float = DEFAULT_REPORT_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> CredentialReport:
    """GenerateCredentialReport until COMPLETE (at most `wait_seconds`), then GetCredentialReport."""
    deadline = monotonic() + wait_seconds
    while True:
        state = str(_call(iam, "generate_credential_report", "GenerateCredentialReport").get("State", ""))
        if state == "COMPLETE":
            break
        left = deadline - monotonic()
        if left <= 0:
            raise AuditError(
                f"IAM's credential report was not ready after {wait_seconds:.0f} s (state "
                f"{printable(state, 40) or 'unknown'}): run the audit again in a minute"
            )
        sleep(min(POLL_SECONDS, left))
    answer = _call(iam, "get_credential_report", "GetCredentialReport")
    content = answer.get("Content") or b""
    if isinstance(content, str):
        content = content.encode()
    return parse_credential_report(content, _aware(answer.get("GeneratedTime")))


def _aware(value: Any) -> Optional[datetime]:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _live_keys(iam: Any, user: str, row: Optional[ReportRow]) -> tuple[AccessKey, ...]:
    """The user's keys as IAM lists them now; last use from the report when it holds the key
    (matched by creation time), else GetAccessKeyLastUsed (a key younger than the report)."""
    keys = []
    for meta in _pages(iam, "list_access_keys", "ListAccessKeys", "AccessKeyMetadata", UserName=user):
        key_id = printable(str(meta.get("AccessKeyId", "")), 128)
        created = _aware(meta.get("CreateDate"))
        reported = next(
            (
                k
                for k in (row.keys if row else ())
                if created and k.created and abs((k.created - created).total_seconds()) < 1
            ),
            None,
        )
        if reported is not None:
            last_used, region, service = reported.last_used, reported.last_region, reported.last_service
        else:
            used = _call(iam, "get_access_key_last_used", "GetAccessKeyLastUsed", AccessKeyId=key_id)
            block = used.get("AccessKeyLastUsed") or {}
            last_used = _aware(block.get("LastUsedDate"))
            region, service = _text(str(block.get("Region", ""))), _text(str(block.get("ServiceName", "")))
        keys.append(
            AccessKey(
                key_id=key_id,
                active=meta.get("Status") == "Active",
                created=created,
                last_used=last_used,
                last_region=region,
                last_service=service,
            )
        )
    return tuple(sorted(keys, key=lambda k: k.created or datetime.min.replace(tzinfo=timezone.utc)))


def audit(
    iam: Any,
    *,
    user_path: str = DEFAULT_USER_PATH,
    group: str = DEFAULT_GROUP,
    thresholds: Thresholds = Thresholds(),
    clock: Clock = utc_now,
    report_wait_seconds: float = DEFAULT_REPORT_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> Audit:
    """Audit every user under `user_path` with the IAM client `iam` (read calls only)."""
    report = fetch_credential_report(iam, wait_seconds=report_wait_seconds, sleep=sleep, monotonic=monotonic)
    try:
        members = {
            str(u.get("UserName")) for u in _pages(iam, "get_group", "GetGroup", "Users", GroupName=group)
        }
    except AuditError as exc:
        if error_code(exc.__cause__ or exc) == "NoSuchEntity":
            raise AuditError(
                f"the group {printable(group, 128)} does not exist: pass the stack's GroupName with --group"
            ) from exc
        raise
    now = clock()
    developers = []
    for user in _pages(iam, "list_users", "ListUsers", "Users", PathPrefix=user_path):
        name = str(user.get("UserName", ""))
        row = report.rows.get(printable(name, 128))
        tags = {
            str(t.get("Key")): str(t.get("Value"))
            for t in _pages(iam, "list_user_tags", "ListUserTags", "Tags", UserName=name)
        }
        if row is not None:
            mfa_active = row.mfa_active
        else:  # created after the report: ask IAM directly
            answer = _call(iam, "list_mfa_devices", "ListMFADevices", UserName=name)
            mfa_active = bool(answer.get("MFADevices"))
        keys = _live_keys(iam, name, row)
        created = _aware(user.get("CreateDate")) or (row.created if row else None)
        # The policy opens the window on exactly this value (StringNotEqualsIfExists "true").
        window_open = tags.get(ONBOARDING_TAG) == "true"
        in_group = name in members
        developers.append(
            Developer(
                user=printable(name, 128),
                arn=printable(str(user.get("Arn", "")), 2048),
                created=created,
                in_group=in_group,
                mfa_active=mfa_active,
                window_open=window_open,
                keys=keys,
                findings=judge(
                    printable(name, 128),
                    keys,
                    created=created,
                    in_group=in_group,
                    mfa_active=mfa_active,
                    window_open=window_open,
                    group=printable(group, 128),
                    thresholds=thresholds,
                    now=now,
                ),
            )
        )
    return Audit(
        audited_at=now,
        report_generated=report.generated,
        user_path=user_path,
        group=group,
        thresholds=thresholds,
        developers=tuple(sorted(developers, key=lambda d: d.user)),
    )


# --- rendering ---------------------------------------------------------------------------------


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def to_json(result: Audit) -> str:
    """The audit as one JSON document (for scripts)."""
    now = result.audited_at
    document = {
        "audited_at": _iso(now),
        "credential_report_generated": _iso(result.report_generated),
        "user_path": result.user_path,
        "group": result.group,
        "thresholds": {
            "max_key_age_days": result.thresholds.max_key_age_days,
            "max_unused_days": result.thresholds.max_unused_days,
        },
        "finding_count": result.finding_count,
        "developers": [
            {
                "user": d.user,
                "arn": d.arn,
                "created": _iso(d.created),
                "in_group": d.in_group,
                "mfa_active": d.mfa_active,
                "onboarding_window_open": d.window_open,
                "access_keys": [
                    {
                        "access_key_id": k.key_id,
                        "active": k.active,
                        "created": _iso(k.created),
                        "age_days": _days(now - k.created) if k.created else None,
                        "last_used": _iso(k.last_used),
                        "last_used_region": k.last_region or None,
                        "last_used_service": k.last_service or None,
                    }
                    for k in d.keys
                ],
                "findings": [{"kind": f.kind, "message": f.message, "fix": f.fix} for f in d.findings],
            }
            for d in result.developers
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def render_table(result: Audit) -> str:
    """The audit as text for a person: one line per key, then the findings with their fixes."""
    now = result.audited_at
    report = result.report_generated.strftime("%Y-%m-%d %H:%M UTC") if result.report_generated else "unknown"
    lines = [
        f"users under {result.user_path} (group {result.group}), audited "
        f"{now.strftime('%Y-%m-%d %H:%M UTC')}; credential report of {report}",
        f"limits: key age {result.thresholds.max_key_age_days} days, unused "
        f"{result.thresholds.max_unused_days} days",
        "",
    ]
    rows = [["USER", "GROUP", "MFA", "WINDOW", "ACCESS KEY", "STATUS", "AGE", "LAST USED"]]
    for d in result.developers:
        head = [d.user, "yes" if d.in_group else "NO", "yes" if d.mfa_active else "NO"]
        head.append("OPEN" if d.window_open else "closed")
        if not d.keys:
            rows.append([*head, "-", "-", "-", "-"])
        for i, k in enumerate(d.keys):
            used = "never"
            if k.last_used:
                used = " ".join(x for x in (_day(k.last_used), k.last_region, k.last_service) if x)
            age = f"{_days(now - k.created)}d" if k.created else "?"
            cells = head if i == 0 else ["", "", "", ""]
            rows.append([*cells, k.key_id, "active" if k.active else "inactive", age, used])
    lines += _columns(rows) if result.developers else [f"no users under {result.user_path}"]
    lines.append("")
    if not result.finding_count:
        lines.append("no findings")
        return "\n".join(lines) + "\n"
    lines.append(f"{result.finding_count} finding(s):")
    for d in result.developers:
        for f in d.findings:
            lines.append(f"{d.user}: {f.kind}: {f.message}")
            lines.append(f"    fix: {f.fix}")
    return "\n".join(lines) + "\n"
