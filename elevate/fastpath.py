"""Answer a cache hit of `credential-process` or `export` without loading the heavy parts.

The AWS CLI runs credential_process on every command, so a hit must cost little more
than starting Python: this path imports only the standard library and elevate's config,
cache and output modules. Anything unusual (other options, a miss, most errors) returns
False and the full CLI takes over and reports it properly; a lock wait that timed out is
raised, since the CLI would only wait as long again.
"""

from __future__ import annotations

import os
import sys
from typing import Optional


def _parse(
    args: list[str],
) -> Optional[tuple[Optional[str], str, Optional[str], Optional[str], Optional[str]]]:
    """(config, command, profile, format, scope) for the plain forms we serve, else None."""
    rest = list(args)
    config: Optional[str] = None
    if rest and rest[0].startswith("--config="):
        config = rest.pop(0).split("=", 1)[1]
    elif len(rest) >= 2 and rest[0] == "--config":
        config = rest[1]
        rest = rest[2:]
    if not rest or rest[0] not in ("credential-process", "export"):
        return None
    command = rest.pop(0)
    profile: Optional[str] = None
    fmt: Optional[str] = None
    scope: Optional[str] = None
    while rest:
        item = rest.pop(0)
        if item.startswith("--scope=") and scope is None:
            scope = item.split("=", 1)[1]
        elif item == "--scope" and rest and scope is None:
            scope = rest.pop(0)
        elif command == "export" and item.startswith("--format="):
            fmt = item.split("=", 1)[1]
        elif command == "export" and item == "--format" and rest:
            fmt = rest.pop(0)
        elif not item.startswith("-") and profile is None:
            profile = item
        else:
            return None
    return config, command, profile, fmt, scope


def try_fast_path(args: list[str]) -> bool:
    """Serve a fresh file-cache entry and return True, or return False to fall through."""
    parsed = _parse(args)
    if parsed is None:
        return False
    config_option, command, profile_name, fmt, scope_option = parsed
    from . import cache, hitindex, output, scopes
    from .config import config_path, load_config, resolve_region, select_profile
    from .errors import ElevateError, LockTimeout

    environ = os.environ
    if fmt is not None and fmt not in output.FORMATS:
        return False
    try:
        config = load_config(config_path(config_option, environ))
        profile = scopes.narrowed(select_profile(config, profile_name, environ), scope_option, config.scopes)
        sessions = cache.for_profile(profile, environ) if profile.cache == "file" else None
        if sessions is None:
            return False
        key = cache.entry_key(profile, environ)
        life = profile.duration_seconds
        creds = sessions.get(key, profile.refresh_before_seconds, life)
        if creds is None:
            # Another process may be filling it: wait for it here, before the heavy imports.
            creds = sessions.wait_for_fill(key, profile.refresh_before_seconds, _say_waiting, lifetime=life)
        if creds is None:
            return False
        if scopes.indexable(profile, scope_option):
            hitindex.record(
                environ,
                config_option,
                profile_name,
                key,
                profile.refresh_before_seconds,
                profile.duration_seconds,
            )
        if command == "credential-process":
            text = output.credential_process_json(creds)
        else:
            env = output.variables(creds, resolve_region(profile.region, environ), profile.name)
            text = output.render(fmt or output.default_format(environ.get("SHELL")), env)
    except LockTimeout:
        raise  # the CLI would only wait as long again
    except ElevateError:
        return False
    sys.stdout.write(text)
    sys.stdout.flush()
    return True


def _say_waiting() -> None:
    from .ui import tell

    tell("waiting for the MFA prompt in another elevate process...")
