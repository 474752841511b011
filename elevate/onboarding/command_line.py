"""The command line that runs this elevate, for the credential_process lines configure writes.

The AWS CLI and the SDKs run that line themselves, without our environment and in the
caller's working directory: it must name an absolute program, and never let Python import
from that directory.
"""

from __future__ import annotations

import os
import sys
from typing import Optional


def elevate_command(argv0: Optional[str] = None, executable: Optional[str] = None) -> list[str]:
    """The absolute command that runs this elevate (for credential_process lines)."""
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    executable = executable or sys.executable
    if argv0 and os.path.basename(argv0) not in ("__main__.py", "-c", "-m", ""):
        candidate = os.path.abspath(argv0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [candidate]
    beside = os.path.join(os.path.dirname(os.path.abspath(executable)), "elevate")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return [beside]
    # -I: the AWS CLI runs this line in the caller's working directory, where an `elevate/`
    # or `json.py` would otherwise be imported before ours (and -I also ignores PYTHON* vars).
    return [os.path.abspath(executable), "-I", "-m", "elevate"]
