"""Entry point of `elevate` and `python -m elevate`, and the one place that decides exit codes.

A cache hit of `credential-process` found in the hit index (elevate.hit) is answered
first, with sys, elevate.hit, elevate.disk and elevate.hostos imported (not os); it never
raises an ElevateError (anything unusual falls through). On an index miss, a
credential-process call queues behind whoever is filling the same entry (elevate.hit's
queue), so concurrent callers sleep instead of each parsing the config; the filler goes
straight to the core (elevate.credprocess, no click), and everything else to the CLI. Those
run under the one handler below: an error becomes one line on stderr and its exit code, an
interrupt 130, a terminating signal 128+N.

The lean launcher that scripts/install writes runs `main` under `python -I -S`: the hit and
the queue need no site-packages; `site` is set up only before the miss path or the CLI. An
answer from the index or the queue ends the process at once (`end_now`): Python's teardown
would cost a hit a fifth of its instructions, and 31 waiters of a storm all of theirs at once.
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FAILURE = 1  # elevate.errors.EXIT_FAILURE, not imported on a hit
EXIT_INTERRUPTED = 130  # elevate.errors.EXIT_INTERRUPTED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NoReturn

    from .hit import Queued


def run(argv: list[str], queued: Queued | None = None, core_limit: tuple[int, int] | None = None) -> int:
    """Run elevate's full path with `argv` (without the program name); the exit status.

    `queued`: the hit queue's lock, held when this process is the one to fill the entry;
    `core_limit`: the user's core-dump limit, when the lean start already set ours to 0 (the
    command `exec` runs gets it back)."""
    try:
        from .hardening import disable_core_dumps, raise_on_signals

        raise_on_signals()
        disable_core_dumps(core_limit)
        _enable_site()
        since = None if queued is None else queued.since
        import os

        from .credprocess import answer_miss

        # A plain credential-process goes straight to the core; anything else to the CLI.
        text = answer_miss(argv, dict(os.environ), since)
        if text is not None:
            from .hit import write

            write(text)
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
    stdout_failure = _stdout_failure() if isinstance(exc, OSError) else None
    if stdout_failure is not None:
        ui.error(f"cannot write to stdout: {stdout_failure}")
        return EXIT_FAILURE
    raise exc


def _stdout_failure() -> str | None:
    """Why stdout cannot take what it holds (a full disk behind a redirect), or None when it can.
    Then the OSError came from writing it, and is the user's to read, not a traceback; stdout's
    fd then points at the null device, so Python's last flush cannot fail again."""
    if sys.stdout is None:
        return "it is closed"
    try:
        sys.stdout.flush()
        return None
    except (OSError, ValueError) as failure:
        import os

        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
        return (failure.strerror if isinstance(failure, OSError) else None) or str(failure)


def _enable_site() -> None:
    """Under the lean launcher (-S), add site-packages (with its .pth files) for the CLI."""
    if not sys.flags.no_site:
        return
    import site

    site.main()


def _say_waiting() -> None:
    from .ui import tell

    tell("waiting for the MFA prompt in another elevate process...")


def lean_answer(argv: list[str], environ: Mapping[str, str]) -> tuple[int | None, Queued | None]:
    """The indexed hit, else the hit queue: on an index miss, queue behind whoever fills the same
    entry before parsing anything (a waiter holds no secret until it answers, and then serve()
    made it non-dumpable).

    (the exit status of the answer or failure, None), or (None, the queue held or None) for
    the full path to go on with."""
    from . import hit

    try:
        text, queued = hit.answer(argv, environ), None
        if text is None:
            text, queued = hit.wait_for_filler(argv, environ, _say_waiting)
        if text is None:
            return None, queued
        hit.write(text)
        return EXIT_OK, None
    except BaseException as exc:  # noqa: BLE001 - exit_status raises again what is not ours
        return exit_status(exc), None


def end_now(status: int) -> NoReturn:
    """End after a lean answer (a hit or a waiter's): stdout and stderr are flushed and nothing
    else is pending (no thread, atexit handler or temporary file exists on that path), so
    Python's teardown, a fifth of a hit's instructions, is skipped. Only `main` calls this."""
    try:
        if sys.stdout is not None:  # None: started with fd 1 closed (hit.write said so)
            sys.stdout.flush()
    except (OSError, ValueError):
        status = status or EXIT_FAILURE
    try:
        if sys.stderr is not None:  # None: started with fd 2 closed; the answer still counts
            sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a note nobody can read is not a failed answer
    from .hostos import native

    native._exit(status)


def main() -> None:
    """The console script, and the lean launcher's entry: the indexed hit, else the hit queue,
    else the full path."""
    from .hostos import disable_core_dumps, process_environ

    argv = sys.argv[1:]
    core_limit = disable_core_dumps()  # no core file with secrets in it, on the hit as everywhere
    status, queued = lean_answer(argv, process_environ())
    if status is None:
        sys.exit(run(argv, queued, core_limit))
    end_now(status)


if __name__ == "__main__":
    main()
