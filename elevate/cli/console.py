"""`elevate login`: open the AWS console as the elevated role."""

from __future__ import annotations

from typing import Optional

import click

from .. import console
from .app import App, elevating, log


@click.command("login")
@elevating
@click.option(
    "--stdout",
    "to_stdout",
    is_flag=True,
    help="Print the sign-in URL on stdout instead of opening a browser.",
)
@click.option(
    "--destination",
    metavar="URL",
    help="The console page to open (default: the console home of the profile's region).",
)
@click.pass_obj
def login_cmd(
    app: App,
    profile: Optional[str],
    token: Optional[str],
    no_cache: bool,
    scope: Optional[str],
    to_stdout: bool,
    destination: Optional[str],
) -> None:
    """Open the AWS console as the elevated role (the sign-in URL is a credential for 15 min)."""
    chosen = app.profile(profile, scope)
    creds = app.elevate(chosen, token, no_cache)
    url = console.sign_in_url(
        creds,
        chosen.role_arn,
        app.region(chosen),
        app.environ,
        destination,
        chosen.duration_seconds,
    )
    if to_stdout:
        click.echo(url)
        return
    log.debug("opening the console sign-in URL in the system browser, through a private file")
    console.open_in_browser(url, app.invocation.cache_dir)
