"""`elevate admin`: the admin tools for the IAM stack, passed through to elevate.admin."""

from __future__ import annotations

import click

# Options and --help belong to the admin tool itself (argparse), which parses them all.
PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.group("admin")
def admin_group() -> None:
    """Admin tools for the IAM stack: deploy, drift, audit."""


@admin_group.command("deploy", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def deploy_cmd(args: tuple[str, ...]) -> int:
    """Validate, lint and deploy the stack or StackSet (`elevate admin deploy --help`)."""
    from ..admin import deploy

    return deploy.main(list(args))


@admin_group.command("drift", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def drift_cmd(args: tuple[str, ...]) -> int:
    """Compare the gate role in each StackSet account with the template (`elevate admin drift --help`)."""
    from ..admin import deploy

    return deploy.main(["drift", *args])
