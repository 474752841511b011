"""`elevate admin`: the admin tools for the IAM stack, passed through to elevate.admin."""

from __future__ import annotations

import click

# Everything after the first argument is the admin tool's own (argparse parses it, options and
# --help included); `--help` right after the command name is click's.
PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "allow_interspersed_args": False}


@click.group("admin")
def admin_group() -> None:
    """Admin tools for the IAM stack: deploy, drift, audit."""


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
