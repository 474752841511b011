"""Which program a bare name runs: one found in PATH's trusted directories only.

elevate runs programs as the user with the MFA code passing through them (the dialog,
`mfa_process`). A relative PATH entry ("", ".", "bin", a common dotfile mistake) would find
one planted in the working directory, a cloned repository; a program, or a directory on its
way, writable by group or others may have been swapped by someone else.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Optional

from . import hostos


def trusted_program(directory: str, name: str) -> Optional[str]:
    """`directory/name` if it is an executable only root or we could have put there. Where
    that cannot be told (Windows: its ACLs are not read, hostos.modes_enforced) no directory is
    trusted: a program is then run only by its absolute path."""
    if not os.path.isabs(directory) or not hostos.modes_enforced():
        return None
    found = shutil.which(name, path=directory)
    if found is None:
        return None
    real = os.path.realpath(found)
    try:
        checks = [os.stat(real), os.stat(os.path.dirname(real)), os.stat(directory)]
    except OSError:
        return None
    for info in checks:
        if hostos.open_to_others(info, 0o022) or hostos.foreign_owner(info, also=(0,)):
            return None
    return found


def find_trusted(name: str, environ: Mapping[str, str]) -> Optional[str]:
    """The first `name` in PATH's trusted directories (see trusted_program), or None."""
    for directory in environ.get("PATH", os.defpath).split(os.pathsep):
        found = trusted_program(directory, name)
        if found:
            return found
    return None


def untrusted_match(name: str, environ: Mapping[str, str]) -> Optional[str]:
    """Where a plain PATH lookup would find `name` (relative entries included), for a refusal
    that says what was passed over."""
    return shutil.which(name, path=environ.get("PATH", os.defpath))
