"""What every command shares: the root group, the App object, shared options and helpers.

The CLI only translates: options -> a core call -> formatted output. Errors from the core
arrive as ElevateError and go up to elevate.__main__, the one place that reports them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TypeVar

import click
from click.shell_completion import CompletionItem

from .. import __version__, credprocess, ui
from ..config import Config, load_config
from ..errors import ElevateError, UsageError
from ..invocation import Invocation
from ..models import Profile, SessionCredentials

log = logging.getLogger("elevate")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """What every command shares: the invocation (config, environment, cache, STS, clock),
    resolved once from the process environment here and handed down."""

    config_option: Optional[str]
    debug: bool
    # When this process began waiting in the hit queue behind a filler of the same entry.
    queued_since: Optional[float] = None
    invocation: Invocation = field(init=False)

    def __post_init__(self) -> None:
        self.invocation = Invocation.from_environ(os.environ, self.config_option)

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment as this run found it (a read-only copy)."""
        return self.invocation.environ

    @property
    def config_path(self) -> Path:
        """The config file this run uses (--config, ELEVATE_CONFIG or the default)."""
        return self.invocation.config_path

    def config(self) -> Config:
        path = self.config_path
        log.debug("config file: %s", path)
        return load_config(path)

    def profile(self, name: Optional[str], scope: Optional[str] = None) -> Profile:
        """The chosen profile; with `scope` (--scope), narrowed to that scope instead of its own."""
        return credprocess.choose_profile(self.invocation, name, scope)

    def elevate(self, profile: Profile, token: Optional[str], no_cache: bool) -> SessionCredentials:
        """Role credentials for `profile`."""
        elevator = credprocess.elevator(self.invocation, self.queued_since)
        return elevator.elevate(profile, token=token, use_cache=not no_cache)

    def region(self, profile: Profile) -> str:
        return self.invocation.region(profile.region)


def elevating(func: F) -> F:
    """The options every elevating command takes."""
    func = click.option(
        "--scope",
        metavar="NAME",
        help="Narrow the credentials to a scope: read-only, none, or a [scopes.NAME] of the config.",
    )(func)
    func = click.option("--no-cache", is_flag=True, help="Neither read nor write the session cache.")(func)
    func = click.option(
        "-t",
        "--token",
        metavar="CODE",
        help="The current six-digit MFA code (else mfa_process, else a prompt).",
    )(func)
    return click.argument("profile", required=False, shell_complete=complete_profiles)(func)


class WholeHelpGroup(click.Group):
    """A group whose command list shows each command's whole first help line (click would cut
    it to fit one terminal line, ending in "...")."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=WholeHelpGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="New here? Start with `elevate configure` (the README's quickstart), then `elevate doctor`.",
)
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
    queued = ctx.obj if isinstance(ctx.obj, float) else None  # from run(): the hit queue's wait
    ctx.obj = App(config_option, debug, queued)
    if debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(ui.prefix("debug") + "%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        # botocore's own debug log prints request and response bodies: keep it quiet.
        logging.getLogger("botocore").setLevel(logging.WARNING)


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


def interactive(no_input: bool) -> bool:
    return not no_input and sys.stdin.isatty()


def complete_profiles(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Profile names from the config file, for shell completion; none when it cannot be read."""
    try:
        option = ctx.find_root().params.get("config_option")
        profiles = load_config(Invocation.from_environ(os.environ, option).config_path).profiles
    except ElevateError:
        return []
    return [CompletionItem(name) for name in sorted(profiles) if name.startswith(incomplete)]
