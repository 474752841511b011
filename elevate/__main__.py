"""Entry point of `elevate` and `python -m elevate`, and the one place that decides exit codes.

A cache hit for credential-process or export is answered by the fast path, which
imports neither click, boto3, botocore nor keyring; everything else goes to the CLI.
Both run under the one handler below: an error becomes one line on stderr and its
exit code, an interrupt 130, a terminating signal 128+N.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn


def run(argv: Sequence[str]) -> int:
    """Run elevate with `argv` (without the program name); the exit status."""
    from . import ui
    from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, CommandLineError, ElevateError, Terminated
    from .hardening import disable_core_dumps, raise_on_signals

    disable_core_dumps()
    raise_on_signals()
    try:
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


def main() -> NoReturn:
    """The console script."""
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
