"""Shared by the issue-11 attack tests: a profile whose mfa_process leaves a marker when it runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from support.constants import ROLE

SERIAL = "arn:aws:iam::123456789012:mfa/alice"
NOBODY = 65534


def config_path() -> Path:
    """$ELEVATE_CONFIG, as the sealed environment sets it."""
    return Path(os.environ["ELEVATE_CONFIG"])


def write_marked_config(tmp_path: Path, **values: Any) -> Path:
    """A dev profile whose mfa_process leaves a marker when it runs (and prints a code)."""
    marker = tmp_path / "mfa-ran"
    script = tmp_path / "mfa-code"
    script.write_text(f"#!/bin/sh\necho ran >> '{marker}'\necho $((100000 + $(wc -l < '{marker}')))\n")
    script.chmod(0o700)
    profile = {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev", "mfa_process": str(script), **values}
    lines = ['default_profile = "dev"', "[profiles.dev]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in profile.items()]
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def marker_ran(tmp_path: Path) -> bool:
    """Whether the profile's mfa_process ran."""
    return (tmp_path / "mfa-ran").exists()
