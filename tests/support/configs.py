"""Writing elevate's config file ($ELEVATE_CONFIG, which sealed_env points at tmp)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional


def write_config(profiles: Mapping[str, Mapping[str, Any]], *, default: Optional[str] = None) -> Path:
    """Write `default_profile` (when given) and one `[profiles.NAME]` table per profile to
    $ELEVATE_CONFIG; return its path. Values are written as JSON, whose strings and integers
    are valid TOML."""
    lines = [] if default is None else [f"default_profile = {json.dumps(default)}"]
    for name, values in profiles.items():
        lines.append(f"[profiles.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
