"""The `elevate` command line: options -> core call -> formatted result.

Only translation happens here. Errors from the core arrive as ElevateError and become
one line on stderr in `main`, the single place that decides exit codes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Optional, TypeVar

import click

from . import __version__, core, keystore, launch, output
from .config import Config, config_path, load_config, resolve_region, select_profile
from .errors import EXIT_INTERRUPTED, ElevateError, Terminated, UsageError
from .hardening import raise_on_signals
from .models import Profile

log = logging.getLogger("elevate")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """What every command shares: where the config is, and the environment."""

    config_option: Optional[str]
    debug: bool

    @property
    def environ(self) -> dict[str, str]:
        return dict(os.environ)

    def config(self) -> Config:
        path = config_path(self.config_option, self.environ)
        log.debug("config file: %s", path)
        return load_config(path)

    def profile(self, name: Optional[str]) -> Profile:
        profile = select_profile(self.config(), name, self.environ)
        log.debug(
            "profile %s: role %s, key set %s, cache %s",
            profile.name,
            profile.role_arn,
            profile.key_set,
            profile.cache,
        )
        return profile

    def elevate(self, profile: Profile, token: Optional[str], no_cache: bool) -> Any:
        return core.Elevator(environ=self.environ).elevate(profile, token=token, use_cache=not no_cache)


def elevating(func: F) -> F:
    """The options every elevating command takes."""
    func = click.option("--no-cache", is_flag=True, help="Neither read nor write the session cache.")(func)
    func = click.option(
        "-t",
        "--token",
        metavar="CODE",
        help="The current six-digit MFA code (else mfa_process, else a prompt).",
    )(func)
    return click.argument("profile", required=False)(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_option",
    metavar="PATH",
    help="Config file (default: $ELEVATE_CONFIG, else $XDG_CONFIG_HOME/elevate/config.toml).",
)
@click.option(
    "--debug", is_flag=True, help="Explain each step on stderr, with tracebacks; never prints a secret."
)
@click.version_option(__version__, prog_name="elevate")
@click.pass_context
def cli(ctx: click.Context, config_option: Optional[str], debug: bool) -> None:
    """Turn keyring-held IAM keys and an MFA code into one-hour role credentials."""
    ctx.obj = App(config_option, debug)
    if debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("elevate: debug: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        # botocore's own debug log prints request and response bodies: keep it quiet.
        logging.getLogger("botocore").setLevel(logging.WARNING)


@cli.command("export")
@elevating
@click.option(
    "--format", "fmt", type=click.Choice(output.FORMATS), help="Output syntax (default: follows $SHELL)."
)
@click.pass_obj
def export_cmd(
    app: App, profile: Optional[str], token: Optional[str], no_cache: bool, fmt: Optional[str]
) -> None:
    """Print shell code that exports the credentials: eval "$(elevate export dev)"."""
    chosen = app.profile(profile)
    creds = app.elevate(chosen, token, no_cache)
    env = output.variables(creds, _region(app, chosen), chosen.name)
    click.echo(output.render(fmt or output.default_format(app.environ.get("SHELL")), env), nl=False)


class _ExecCommand(click.Command):
    """Everything after the first `--` is the command to run, never the PROFILE."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            args, ctx.meta["elevate.command"] = args[:cut], args[cut + 1 :]
        return super().parse_args(ctx, args)


@cli.command("exec", cls=_ExecCommand)
@elevating
@click.option("--force", is_flag=True, help="Run even inside an elevated environment.")
@click.pass_context
def exec_cmd(
    ctx: click.Context,
    profile: Optional[str],
    token: Optional[str],
    no_cache: bool,
    force: bool,
) -> None:
    """Run a command (default: $SHELL) with the credentials: elevate exec dev -- aws s3 ls."""
    app: App = ctx.obj
    command: list[str] = ctx.meta.get("elevate.command", [])
    environ = app.environ
    if environ.get("ELEVATE_PROFILE") and not force:
        raise UsageError(
            f"already inside an elevated environment (ELEVATE_PROFILE={environ['ELEVATE_PROFILE']}); "
            "exit it first, or pass --force"
        )
    chosen = app.profile(profile)
    creds = app.elevate(chosen, token, no_cache)
    env = launch.child_environment(environ, output.variables(creds, _region(app, chosen), chosen.name))
    argv = list(command) or [environ.get("SHELL") or "/bin/sh"]
    log.debug("running %s", argv[0])
    launch.run(argv, env)


@cli.command("credential-process")
@elevating
@click.pass_obj
def credential_process_cmd(app: App, profile: Optional[str], token: Optional[str], no_cache: bool) -> None:
    """Print credentials as the AWS CLI's and SDKs' credential_process expects."""
    creds = app.elevate(app.profile(profile), token, no_cache)
    click.echo(output.credential_process_json(creds), nl=False)


@cli.command("status")
@click.argument("profile", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.pass_obj
def status_cmd(app: App, profile: Optional[str], as_json: bool) -> None:
    """Show what is cached for each profile, and for how long. Never a secret."""
    config = app.config()
    profiles = [select_profile(config, profile, {})] if profile else list(config.profiles.values())
    report = [core.status_of(p, app.environ) for p in profiles]
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for item in report:
        click.echo(f"{item['profile']}: {_describe(item.get('credentials'), item['cache'])}")
        if "mfa_session" in item:
            click.echo(f"  MFA session: {_describe(item['mfa_session'], item['cache'])}")


def _describe(entry: Optional[dict[str, Any]], mode: str) -> str:
    if mode == "off":
        return "cache off"
    if entry is None:
        return "nothing cached"
    left = entry["seconds_left"]
    if left <= 0:
        return f"expired at {entry['expiration']}"
    return f"cached, {left // 60} min {left % 60} s left (until {entry['expiration']})"


@cli.command("clear")
@click.argument("profile", required=False)
@click.option("--all", "clear_all", is_flag=True, help="Clear every profile.")
@click.pass_obj
def clear_cmd(app: App, profile: Optional[str], clear_all: bool) -> None:
    """Remove cached credentials of PROFILE (or of every profile with --all)."""
    if not profile and not clear_all:
        raise UsageError("name a PROFILE, or pass --all")
    config = app.config()
    profiles = list(config.profiles.values()) if clear_all else [select_profile(config, profile, {})]
    for item in profiles:
        removed = core.clear(item, app.environ)
        click.echo(f"{item.name}: {'cleared' if removed else 'nothing cached'}", err=True)


@cli.group("keys")
def keys_group() -> None:
    """Manage the long-term IAM keys held in the OS keyring."""


@keys_group.command("add")
@click.argument("name")
def keys_add(name: str) -> None:
    """Store a key pair as NAME: prompted on a terminal, else two lines on stdin."""
    keystore.check_name(name)
    if sys.stdin.isatty():
        key_id = click.prompt("Access key ID", err=True)
        secret = click.prompt("Secret access key", hide_input=True, err=True)
    else:
        key_id, secret = stdin_lines(2, "the access key ID, then the secret access key")
    keys = keystore.check_keys(key_id, secret)
    keystore.put_keys(name, keys)
    click.echo(
        f"stored {keystore.mask(keys.access_key_id)} as {name!r} in {keystore.backend_name()}", err=True
    )


@keys_group.command("list")
def keys_list() -> None:
    """List stored key sets with masked key IDs."""
    for name, keys in keystore.list_key_sets():
        created = keys.created.strftime("%Y-%m-%d") if keys.created else "unknown"
        click.echo(f"{name}\t{keystore.mask(keys.access_key_id)}\tadded {created}")


@keys_group.command("remove")
@click.argument("name")
def keys_remove(name: str) -> None:
    """Delete the key set NAME from the keyring."""
    keystore.delete_keys(name)
    click.echo(f"removed {name!r}", err=True)


def stdin_lines(count: int, what: str) -> list[str]:
    """`count` lines from a piped stdin, read line by line so an open pipe is not waited out."""
    lines = []
    for _ in range(count):
        line = sys.stdin.readline(4096)
        if not line:
            break
        lines.append(line.rstrip("\r\n"))
    if len(lines) < count:
        raise UsageError(f"expected {count} lines on stdin: {what}")
    return lines


def _region(app: App, profile: Profile) -> str:
    return resolve_region(profile.region, app.environ)


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Run the CLI; the one place where errors become a message and an exit code."""
    raise_on_signals()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args
    try:
        cli.main(args=args, prog_name="elevate", standalone_mode=False)
    except ElevateError as exc:
        if debug:
            log.exception("failure")
        click.echo(f"elevate: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("elevate: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("\nelevate: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Terminated as exc:
        click.echo(f"elevate: terminated by signal {exc.signum}", err=True)
        sys.exit(128 + exc.signum)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(0)


from . import cli_onboarding  # noqa: E402,F401  (registers the onboarding commands)
