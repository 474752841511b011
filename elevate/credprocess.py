"""What `credential-process` does, for the click command and for __main__'s miss path without click.

The profile choice, the Elevator every elevating command builds, and the credential-process
answer (its terminal notice on failure, the hit index record on success) live here once:
elevate.cli calls them with its options, and elevate.__main__ calls `answer_miss` for the
argv the hit path parses (hit.parse_argv), so a cold `credential-process` imports neither
click nor the command modules.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Optional

from . import cache, core, hit, mfa, notices, output, scopes
from .config import load_config, select_profile
from .errors import ElevateError, FailedElsewhere
from .invocation import Invocation
from .models import Profile, SessionCredentials

log = logging.getLogger("elevate")


def choose_profile(invocation: Invocation, name: Optional[str], scope: Optional[str]) -> Profile:
    """The chosen profile (PROFILE, ELEVATE_PROFILE, default_profile) of the invocation's config;
    with `scope` (--scope), narrowed to that scope instead of its own."""
    log.debug("config file: %s", invocation.config_path)
    config = load_config(invocation.config_path)
    profile = scopes.narrowed(select_profile(config, name, invocation.environ), scope, config.scopes)
    log.debug(
        "profile %s: role %s, key set %s, cache %s",
        profile.name,
        profile.role_arn,
        profile.key_set,
        profile.cache,
    )
    log.debug("profile %s: %s", profile.name, scopes.describe(profile.scope))
    return profile


def elevator(invocation: Invocation, queued_since: Optional[float], for_sdk: bool = False) -> core.Elevator:
    """The Elevator of an elevating command; `for_sdk` under credential_process (the prompt says
    the caller may stop waiting; a failure of the last few seconds is answered again)."""
    made = core.Elevator(invocation, queued_since=queued_since)
    if for_sdk:
        made.code_source = functools.partial(mfa.obtain_code, environ=invocation.environ, for_sdk=True)
        made.failure_memory = core.SDK_FAILURE_MEMORY_SECONDS
    return made


def credentials(
    invocation: Invocation,
    config_option: Optional[str],
    profile_argument: Optional[str],
    *,
    token: Optional[str] = None,
    no_cache: bool = False,
    scope: Optional[str] = None,
    queued_since: Optional[float] = None,
) -> str:
    """The credential_process JSON for this call, the entry indexed for the next hit.

    A failure is also told on the terminal (Terraform and the JS SDK's default chain hide
    elevate's stderr), then raised for the one exit point."""
    try:
        chosen = choose_profile(invocation, profile_argument, scope)
        made = elevator(invocation, queued_since, for_sdk=True)
        creds: SessionCredentials = made.elevate(chosen, token=token, use_cache=not no_cache)
    except ElevateError as exc:
        told = exc.reason if isinstance(exc, FailedElsewhere) else exc.message
        notices.error(exc.message, invocation.cache_dir, key=told)
        raise
    if not no_cache and scopes.indexable(chosen, scope) and chosen.cache == "file":
        hit.record(
            invocation.environ,
            config_option,
            profile_argument,
            cache.entry_key(chosen, invocation),
            chosen.refresh_before_seconds,
            chosen.duration_seconds,
        )
    return output.credential_process_json(creds)


def answer_miss(argv: list[str], environ: Mapping[str, str], queued_since: Optional[float]) -> Optional[str]:
    """The answer to a plain `[--config C] credential-process [PROFILE]` (hit.parse_argv's argv)
    that the index did not answer, or None for any other argv (the CLI's)."""
    parsed = hit.parse_argv(argv)
    if parsed is None:
        return None
    return credentials(
        Invocation.from_environ(environ, parsed[0]), parsed[0], parsed[1], queued_since=queued_since
    )
