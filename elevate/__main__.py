"""Entry point of `elevate` and `python -m elevate`.

A cache hit for credential-process or export is answered by the fast path, which
imports neither click, boto3, botocore nor keyring; everything else goes to the CLI.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def main() -> NoReturn:
    from .hardening import disable_core_dumps

    disable_core_dumps()
    from .fastpath import try_fast_path

    if try_fast_path(sys.argv[1:]):
        sys.exit(0)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
