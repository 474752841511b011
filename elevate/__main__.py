"""Entry point of `elevate` and `python -m elevate`, and the one place that decides exit codes.

A cache hit of `credential-process` found in the hit index (elevate.hit) is answered
first, with os, sys and elevate.disk imported; it never raises an ElevateError (anything
unusual falls through). On an index miss, a credential-process call queues behind whoever
is filling the same entry (elevate.hit's queue), so concurrent callers sleep instead of
each parsing the config; the filler goes straight to the core (elevate.credprocess, no
click), and everything else to the CLI. Those run under the one handler below: an error
becomes one line on stderr and its exit code, an interrupt 130, a terminating signal 128+N.

The lean launcher that scripts/install writes runs `main` under `python -I -S`: the hit and
the queue need no site-packages; `site` is set up only before the miss path or the CLI.
"""

from __future__ import annotations

import os
import sys

EXIT_OK = 0
EXIT_FAILURE = 1  # elevate.errors.EXIT_FAILURE, not imported on a hit
EXIT_INTERRUPTED = 130  # elevate.errors.EXIT_INTERRUPTED

# The user's core-dump limit, as it was before the indexed hit set ours to 0: the command
# `exec` runs gets it back.
_user_core_limit: tuple[int, int] | None = None


def run(argv: list[str]) -> int:
    """Run elevate with `argv` (without the program name); the exit status."""
    from . import hit

    queued = None
    try:
        # On an index miss, queue behind whoever fills the same entry before parsing anything
        # (a waiter holds no secret until it answers, and then serve() made it non-dumpable).
        text, queued = hit.wait_for_filler(argv, os.environ, _say_waiting)
        if text is not None:
            hit.write(text)
            return EXIT_OK
        from .hardening import disable_core_dumps, raise_on_signals

        raise_on_signals()
        disable_core_dumps(_user_core_limit)
        _enable_site()
        since = None if queued is None else queued.since
        from .credprocess import answer_miss

        # A plain credential-process goes straight to the core; anything else to the CLI.
        text = answer_miss(argv, dict(os.environ), since)
        if text is not None:
            hit.write(text)
            return EXIT_OK
        from .cli import run as run_cli

        return run_cli(argv, queued_since=since)
    except BaseException as exc:  # noqa: BLE001 - the one handler; anything else is raised again
        return exit_status(exc)
    finally:
        if queued is not None:
            queued.release()


def exit_status(exc: BaseException) -> int:
    """The one place that turns an error into one line on stderr and its exit status; what is
    not elevate's to report is raised again. elevate.errors is imported here, not before: a
    waiter of the hit queue that answers never needs it."""
    from . import ui
    from .errors import CommandLineError, ElevateError, Terminated

    if isinstance(exc, CommandLineError):
        ui.stderr(exc.message)
        return exc.exit_code
    if isinstance(exc, ElevateError):
        ui.error(exc.message)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        ui.stderr("")  # off the line the ^C was echoed on
        ui.inform("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, Terminated):
        ui.inform(f"terminated by signal {exc.signum}")
        return 128 + exc.signum
    if isinstance(exc, BrokenPipeError):
        return EXIT_FAILURE
    raise exc


def _enable_site() -> None:
    """Under the lean launcher (-S), add site-packages (with its .pth files) for the CLI."""
    if not sys.flags.no_site:
        return
    import site

    site.main()


def _say_waiting() -> None:
    from .ui import tell

    tell("waiting for the MFA prompt in another elevate process...")


def indexed_hit(argv: list[str]) -> int | None:
    """The exit status of an indexed cache hit it answered, or None to run the rest."""
    global _user_core_limit
    from . import hit, hostos

    _user_core_limit = (
        hostos.disable_core_dumps()
    )  # no core file with secrets in it, on the hit as everywhere

    try:
        text = hit.answer(argv, os.environ)
        if text is None:
            return None
        hit.write(text)
        return EXIT_OK
    except KeyboardInterrupt:
        from . import ui

        ui.stderr("")
        ui.inform("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILURE


def main() -> None:
    """The console script, and the lean launcher's entry."""
    argv = sys.argv[1:]
    status = indexed_hit(argv)
    sys.exit(run(argv) if status is None else status)


if __name__ == "__main__":
    main()
