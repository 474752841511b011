"""`elevate admin ...`: the admin's tools, with the admin's own credentials (never a developer's)."""

from __future__ import annotations

import re
from typing import Optional

import click

from ..admin import audit as auditing
from ..aws import ambient_client
from ..errors import UsageError

_USER_PATH = re.compile(r"^/([A-Za-z0-9+=,.@_-]+/)*$")  # developer-access.yaml's UserPath pattern
# Everything after the first argument is the admin tool's own (argparse parses it, options and
# --help included); `--help` right after the command name is click's.
PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "allow_interspersed_args": False}


@click.group("admin")
def admin_group() -> None:
    """Admin tools for the IAM stack: deploy, drift, audit."""


@admin_group.command("audit")
@click.option(
    "--user-path",
    default=auditing.DEFAULT_USER_PATH,
    show_default=True,
    help="The stack's UserPath: every user under it is audited.",
)
@click.option(
    "--group",
    default=auditing.DEFAULT_GROUP,
    show_default=True,
    help="The stack's GroupName: the developers' group.",
)
@click.option(
    "--max-key-age-days",
    type=click.IntRange(min=1),
    default=auditing.DEFAULT_MAX_KEY_AGE_DAYS,
    show_default=True,
    help="An active key older than this is a finding.",
)
@click.option(
    "--unused-days",
    type=click.IntRange(min=1),
    default=auditing.DEFAULT_MAX_UNUSED_DAYS,
    show_default=True,
    help="An active key unused this long (or never used since created this long ago) is a finding.",
)
@click.option(
    "--report-wait",
    type=click.FloatRange(min=0),
    default=auditing.DEFAULT_REPORT_WAIT_SECONDS,
    show_default=True,
    help="Seconds to wait for IAM to generate the credential report.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON (for scripts).")
@click.option(
    "--profile", metavar="NAME", help="AWS profile of the admin's credentials (else the default chain)."
)
@click.option("--region", metavar="REGION", help="Region of the IAM endpoint (it picks the partition).")
def audit_cmd(
    user_path: str,
    group: str,
    max_key_age_days: int,
    unused_days: int,
    report_wait: float,
    as_json: bool,
    profile: Optional[str],
    region: Optional[str],
) -> int:
    """Report old, unused and second keys, missing MFA, open onboarding windows and users
    outside the group, for every user under the stack's UserPath.

    Exit status: 0 nothing found, 1 findings, 2 could not audit. Needs read permissions only
    (docs/admin.md, Keeping watch).
    """
    if not _USER_PATH.match(user_path):
        raise UsageError(f"--user-path {user_path!r}: an IAM path starts and ends with '/'")
    result = auditing.audit(
        ambient_client("iam", profile, region),
        user_path=user_path,
        group=group,
        thresholds=auditing.Thresholds(max_key_age_days, unused_days),
        report_wait_seconds=report_wait,
    )
    click.echo(auditing.to_json(result) if as_json else auditing.render_table(result), nl=False)
    return 1 if result.finding_count else 0


@admin_group.command("deploy", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def deploy_cmd(args: tuple[str, ...]) -> int:
    """Deploy the templates: MODE is stack, stackset, drift or window (the same tool as
    scripts/deploy-stack; `elevate admin deploy MODE --help` shows a mode's options)."""
    from ..admin import deploy

    return deploy.main(list(args))


@admin_group.command("drift", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def drift_cmd(args: tuple[str, ...]) -> int:
    """Report per StackSet account whether the gate role still matches the template; exit 0 in
    sync, 1 drift, 2 could not check (options: `elevate admin deploy drift --help`)."""
    from ..admin import deploy

    return deploy.main(["drift", *args])
