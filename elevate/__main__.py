"""Entry point of `elevate` and `python -m elevate`, and the one place that decides exit codes.

A cache hit of `credential-process` found in the hit index (elevate.hitindex) is
answered first, before anything but os, sys, stat and json is imported; it never raises
an ElevateError (anything unusual falls through). Other hits of credential-process or
export are answered by the fast path, which imports neither click, boto3, botocore nor
keyring; everything else goes to the CLI. Before either, a credential-process that
missed the index queues behind whoever is filling the same entry (elevate.hitwait), so
concurrent callers sleep instead of each parsing the config. Those run under the one
handler below:
an error becomes one line on stderr and its exit code, an interrupt 130, a terminating
signal 128+N.
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
    from . import ui
    from .errors import CommandLineError, ElevateError, Terminated
    from .hardening import disable_core_dumps, raise_on_signals

    raise_on_signals()
    try:
        # On an index miss, queue behind whoever fills the same entry before parsing anything
        # (and before ctypes, for non-dumpable: a waiter holds no secret until it answers).
        from .hitwait import wait_for_filler

        answer = wait_for_filler(argv, os.environ, _say_waiting)
        if answer is not None:
            sys.stdout.write(answer)
            sys.stdout.flush()
            return EXIT_OK
        disable_core_dumps(_user_core_limit)
        from .fastpath import try_fast_path

        if try_fast_path(argv):
            return 0
        from .cli import run as run_cli

        return run_cli(argv)
    except CommandLineError as exc:
        ui.stderr(exc.message)
        return exc.exit_code
    except ElevateError as exc:
        ui.error(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        ui.stderr("\nelevate: interrupted")
        return EXIT_INTERRUPTED
    except Terminated as exc:
        ui.stderr(f"elevate: terminated by signal {exc.signum}")
        return 128 + exc.signum
    except BrokenPipeError:
        return EXIT_FAILURE
    finally:
        from .hitwait import release

        release()


def _say_waiting() -> None:
    from .ui import tell

    tell("waiting for the MFA prompt in another elevate process...")


def indexed_hit(argv: list[str]) -> int | None:
    """The exit status of an indexed cache hit it answered, or None to run the rest."""
    global _user_core_limit
    try:
        import resource  # no core file with secrets in it, on the hit as everywhere

        _user_core_limit = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, _user_core_limit[1]))
    except (ImportError, ValueError, OSError):
        pass
    from .hitindex import main_hit

    try:
        return EXIT_OK if main_hit(argv) else None
    except KeyboardInterrupt:
        sys.stderr.write("\nelevate: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILURE


def main() -> None:
    """The console script."""
    argv = sys.argv[1:]
    status = indexed_hit(argv)
    sys.exit(run(argv) if status is None else status)


if __name__ == "__main__":
    main()
