"""The elevating commands (export, exec, credential-process) and the cache's (status, clear)."""

from __future__ import annotations

import functools
import json
import os
import shlex
import time
from typing import Any, Optional

import click

from .. import core, credprocess, launch, mfagate, output, server, ui
from .. import supply as supply_mod
from ..config import chosen_name, select_profile
from ..errors import UsageError
from ..models import Profile
from .app import App, complete_profiles, elevating, log


@click.command("export")
@elevating
@click.option(
    "--format", "fmt", type=click.Choice(output.FORMATS), help="Output syntax (default: follows $SHELL)."
)
@click.pass_obj
def export_cmd(
    app: App,
    profile: Optional[str],
    token: Optional[str],
    no_cache: bool,
    scope: Optional[str],
    fmt: Optional[str],
) -> None:
    """Print shell code that exports the credentials: eval "$(elevate export dev)"."""
    # Decided first: an unsupported $SHELL must fail before anyone is asked for a code.
    syntax = fmt or output.default_format(app.environ.get("SHELL"))
    chosen = app.profile(profile, scope)
    creds = app.elevate(chosen, token, no_cache)
    env = output.variables(creds, app.region(chosen), chosen.name)
    click.echo(output.render(syntax, env), nl=False)


class _ExecCommand(click.Command):
    """Everything after the first `--` is the command to run, never the PROFILE."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            args, ctx.meta["elevate.command"] = args[:cut], args[cut + 1 :]
        words = _positional(args)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if "extra argument" not in exc.message or len(words) < 2:
                raise
            hint = f"elevate exec {words[0]} -- {shlex.join(words[1:])}"
            raise click.UsageError(f"{exc.message}. Put the command after --: {hint}", ctx) from exc


def _positional(args: list[str]) -> list[str]:
    """The words that are not options (nor an option's value), for the hint about `--`."""
    words, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-t", "--token", "--scope"):
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
    return words


@click.command("exec", cls=_ExecCommand)
@elevating
@click.option("--force", is_flag=True, help="Run even inside an elevated environment.")
@click.option(
    "--server",
    "serve",
    is_flag=True,
    help="Serve refreshing credentials to the command over loopback (no static keys in its environment).",
)
@click.pass_context
def exec_cmd(
    ctx: click.Context,
    profile: Optional[str],
    token: Optional[str],
    no_cache: bool,
    scope: Optional[str],
    force: bool,
    serve: bool,
) -> int:
    """Run a command (default: $SHELL) with the credentials: elevate exec dev -- aws s3 ls."""
    app: App = ctx.obj
    command: list[str] = ctx.meta.get("elevate.command", [])
    environ = app.environ
    if environ.get("ELEVATE_PROFILE") and not force:
        raise UsageError(
            f"already inside an elevated environment (ELEVATE_PROFILE={environ['ELEVATE_PROFILE']}); "
            "exit it first, or pass --force"
        )
    chosen = app.profile(profile, scope)
    argv = list(command) or [environ.get("SHELL") or "/bin/sh"]
    if serve:
        return _exec_with_server(app, chosen, token, no_cache, argv)
    creds = app.elevate(chosen, token, no_cache)
    env = launch.child_environment(environ, output.variables(creds, app.region(chosen), chosen.name))
    log.debug("running %s", argv[0])
    return launch.run(argv, env)


def _exec_with_server(
    app: App, chosen: Profile, token: Optional[str], no_cache: bool, argv: list[str]
) -> int:
    """elevate stays the parent: the server lives exactly as long as the command."""
    served = supply_mod.serving_profile(chosen)
    elevator = core.Elevator(app.invocation)
    first = elevator.elevate(served, token=token, use_cache=not no_cache)  # any prompt comes first
    # Refreshes run while the command does: the supply keeps what it holds and pauses after a
    # failure, so no fall-back (and its warning) on each try.
    refresher = core.Elevator(
        app.invocation, code_source=functools.partial(mfagate.refresh_code, app.environ)
    )
    supply = supply_mod.CredentialSupply(
        lambda: refresher.elevate(served, use_cache=not no_cache, fall_back=False),
        min_left=served.refresh_before_seconds,
        initial=first,
        on_failure=ui.warn,
        peek=(lambda: None) if no_cache else (lambda: elevator.cached(served)),
    )
    with launch.signals_held(), server.CredentialServer(supply) as srv:
        env = launch.child_environment(app.environ, srv.variables(app.region(chosen), chosen.name))
        log.debug("serving credentials on %s; running %s", srv.authority, argv[0])
        status = launch.supervise(argv, env)
        # What the command left behind still holds the URL and the token: keep the port (410,
        # no credentials) until it ends, so no other user can take the port and answer it.
        srv.retire()
        launch.outlast_leftovers(lambda pids: ui.warn(_leftovers_message(pids)))
        return status


def _leftovers_message(pids: list[int]) -> str:
    which = f" (PID {', '.join(map(str, pids[:8]))}{', ...' if len(pids) > 8 else ''})" if pids else ""
    return (
        f"the command has ended, but processes it started still run{which}: they know the "
        "credential server's address, so elevate keeps its port, answering with no credentials, "
        f"until they end; Ctrl-C or `kill {os.getpid()}` ends them now"
    )


@click.command("credential-process")
@elevating
@click.pass_obj
def credential_process_cmd(
    app: App, profile: Optional[str], token: Optional[str], no_cache: bool, scope: Optional[str]
) -> None:
    """Print credentials as the AWS CLI's and SDKs' credential_process expects."""
    answer = credprocess.credentials(
        app.invocation,
        app.config_option,
        profile,
        token=token,
        no_cache=no_cache,
        scope=scope,
        queued_since=app.queued_since,
    )
    click.echo(answer, nl=False)


@click.command("status")
@click.argument("profile", required=False, shell_complete=complete_profiles)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.pass_obj
def status_cmd(app: App, profile: Optional[str], as_json: bool) -> None:
    """Show what is cached for each profile, and for how long. Never a secret."""
    config = app.config()
    profiles = [select_profile(config, profile, {})] if profile else list(config.profiles.values())
    report = [core.status_of(p, app.invocation, defined=config.scopes) for p in profiles]
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for item in report:
        own = f" (scope {item['scope']})" if item.get("scope") else ""
        click.echo(f"{item['profile']}{own}: {describe_entry(item.get('credentials'), item['cache'])}")
        for name, entry in item.get("other_scopes", {}).items():
            click.echo(f"  scope {name}: {describe_entry(entry, item['cache'])}")
        if "mfa_session" in item:
            click.echo(f"  MFA session: {describe_entry(item['mfa_session'], item['cache'])}")


def describe_entry(entry: Optional[dict[str, Any]], mode: str) -> str:
    if mode == "off":
        return "cache off"
    if entry is None:
        return "nothing cached"
    left = entry["seconds_left"]
    if left <= 0:
        return f"expired at {entry['expiration']}"
    text = f"cached, {left // 60} min {left % 60} s left (until {entry['expiration']})"
    if entry.get("served") and entry.get("serve_until"):
        until = entry["serve_until"] - int(time.time())
        text += f"; shorter than the refresh window: served {until} s more, then refreshed"
    if entry.get("served") is False:
        text += "; will not be served (inside the profile's refresh_before_seconds): the next call elevates"
    return text


@click.command("clear")
@click.argument("profile", required=False, shell_complete=complete_profiles)
@click.option("--all", "clear_all", is_flag=True, help="Clear every profile.")
@click.pass_obj
def clear_cmd(app: App, profile: Optional[str], clear_all: bool) -> None:
    """Remove cached credentials of PROFILE (default: as for export), or of every profile with --all."""
    config = app.config()
    if not clear_all and not chosen_name(profile, app.environ, config.default_profile):
        raise UsageError("name a PROFILE, or pass --all")
    chosen = [] if clear_all else [select_profile(config, profile, app.environ)]
    profiles = list(config.profiles.values()) if clear_all else chosen
    for item in profiles:
        removed = core.clear(item, app.invocation, config.scopes)
        ui.stderr(f"{item.name}: {'cleared' if removed else 'nothing cached'}")
