"""Entry point of `elevate` and `python -m elevate`.

A cache hit for credential-process or export is answered by the fast path, which
imports neither click, boto3, botocore nor keyring; everything else goes to the CLI.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def main() -> NoReturn:
    from .errors import EXIT_INTERRUPTED, Terminated
    from .hardening import disable_core_dumps, raise_on_signals

    disable_core_dumps()
    raise_on_signals()
    from .fastpath import try_fast_path

    try:
        if try_fast_path(sys.argv[1:]):
            sys.exit(0)
    except KeyboardInterrupt:
        sys.stderr.write("\nelevate: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except Terminated as exc:
        sys.stderr.write(f"elevate: terminated by signal {exc.signum}\n")
        sys.exit(128 + exc.signum)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
