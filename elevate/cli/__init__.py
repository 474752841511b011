"""The `elevate` command line: the root group with every command registered on it, and `run`.

Commands live in modules by topic (elevation, keys, setup) and are added here, so no
module of this package imports another's commands and there is no import cycle.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import click

from .. import ui
from ..errors import EXIT_INTERRUPTED, CommandLineError, ElevateError
from . import admin, console, elevation, keys, setup
from .app import cli, log

for command in (
    elevation.export_cmd,
    elevation.exec_cmd,
    elevation.credential_process_cmd,
    elevation.status_cmd,
    elevation.clear_cmd,
    console.login_cmd,
    keys.keys_group,
    keys.rotate_cmd,
    setup.configure_cmd,
    setup.mfa_group,
    setup.doctor_cmd,
    setup.completion_cmd,
    admin.admin_group,
    setup.uninstall_cmd,
):
    cli.add_command(command)

__all__ = ["cli", "run"]


def run(argv: Sequence[str], queued_since: float | None = None) -> int:
    """Parse `argv` and run the command; its exit status. Errors are raised to the caller.

    `queued_since`: when this process began waiting in the hit queue, if it did."""
    args = list(argv)
    debug = "--debug" in (args[: args.index("--")] if "--" in args else args)
    try:
        result = cli.main(args=args, prog_name="elevate", standalone_mode=False, obj=queued_since)
    except ElevateError:
        if debug:
            log.exception("failure")
        raise
    except click.exceptions.Abort:
        raise CommandLineError(ui.line("interrupted"), EXIT_INTERRUPTED) from None
    except click.ClickException as exc:
        text = io.StringIO()
        exc.show(file=text)
        raise CommandLineError(text.getvalue(), exc.exit_code) from exc
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    return result if isinstance(result, int) else 0
