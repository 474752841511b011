"""elevate(): source keys + MFA code -> role credentials, through the session cache.

The flow, and nothing else: cache hit? -> lock -> re-check -> keys -> identity -> MFA
code (or a cached MFA session) -> STS -> cache. Every dependency is a parameter with a
real default, so tests hand in fakes instead of patching.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Optional

from . import aws, disk, keystore, mfa, notices, scopes, sts, ui
from . import cache as cache_mod
from .errors import CacheError, ConfigError, ElevateError, KeyringError, MfaCodeRejected, StsError
from .invocation import Invocation
from .locks import LOCK_WAIT_SECONDS
from .mfagate import MfaGate
from .models import Profile, Scope, SessionCredentials, SourceKeys

log = logging.getLogger("elevate")

# Under credential_process a failure this recent is answered again (see Elevator.failure_memory).
SDK_FAILURE_MEMORY_SECONDS = 3.0
# A failed refresh falls back to cached credentials with at least this long left.
STALE_BUT_USABLE_SECONDS = 60
# Credentials shorter than this spend most of their life inside botocore's refresh window.
SHORTEST_USEFUL_DURATION = 1800
# AssumeRole's documented answers to a session policy it cannot apply (too large once packed,
# not a policy); other errors (a ValidationError about the duration, say) are not the scope's.
SCOPE_REFUSALS = ("PackedPolicyTooLarge", "MalformedPolicyDocument")


@dataclass
class Elevator:
    """The elevation flow with its collaborators; defaults are the real ones."""

    invocation: Invocation
    clock: Callable[[], datetime] = cache_mod.utcnow
    load_keys: Callable[[str], SourceKeys] = keystore.get_keys
    # Called as (keys, region); the real default is bound to the invocation's environment below.
    client_factory: Callable[..., aws.StsClient] = aws.sts_client
    code_source: Callable[..., str] = mfa.obtain_code
    notify: Callable[[str], None] = ui.tell
    warn: Callable[[str], None] = ui.warn
    sleep: Callable[[float], None] = time.sleep
    lock_timeout: float = LOCK_WAIT_SECONDS
    queued_since: Optional[float] = None  # when this process began waiting in the hit queue
    # A failure recorded this recently is answered again without asking STS or the person: an
    # SDK's default chain runs credential_process twice for one resolution (the JS SDK, each
    # time through a shell of its own, so the runs share no parent to tell them by).
    failure_memory: float = 0.0

    def __post_init__(self) -> None:
        if self.clock is cache_mod.utcnow:  # the real default: the invocation's clock
            self.clock = self.invocation.clock
        if self.warn is ui.warn:  # the real default: warnings reach the terminal under credential_process
            directory, clock = self.invocation.cache_dir, self.clock
            self.warn = lambda message: notices.warn(message, directory, clock=clock)
        if self.client_factory is aws.sts_client:  # the real default: the request sees this invocation
            self.client_factory = functools.partial(aws.sts_client, environ=self.invocation.environ)
        if self.code_source is mfa.obtain_code:
            self.code_source = functools.partial(mfa.obtain_code, environ=self.invocation.environ)

    def session_cache(self, profile: Profile) -> Optional[cache_mod.SessionCache]:
        return cache_mod.for_profile(profile, self.invocation, self.clock)

    def cached(self, profile: Profile) -> Optional[SessionCredentials]:
        """Fresh credentials for `profile` from the session cache alone, or None (no STS call)."""
        cache = self.session_cache(profile)
        if cache is None:
            return None
        key = cache_mod.entry_key(profile, self.invocation)
        return cache.get(key, profile.refresh_before_seconds, profile.duration_seconds)

    def elevate(
        self, profile: Profile, token: Optional[str] = None, use_cache: bool = True, fall_back: bool = True
    ) -> SessionCredentials:
        """Role credentials for `profile`: from the cache when fresh, else from STS.

        When STS cannot be asked (no code, an error) and `fall_back`, cached credentials that
        are still valid are returned with a warning; without it the error is raised (the
        credential server keeps what it holds itself, and pauses).
        """
        if token is not None:
            token = mfa.check_token(token)
        started_at = time.monotonic()
        cache = self.session_cache(profile) if use_cache else None
        if cache is None:
            log.debug("session cache: off (%s)", "--no-cache" if not use_cache else "cache = off")
            return self._elevate_uncached(profile, token)
        key = cache_mod.entry_key(profile, self.invocation)
        life = profile.duration_seconds
        log.debug("session cache: %s in %s", profile.cache, self.invocation.cache_dir)
        hit = cache.get(key, profile.refresh_before_seconds, life)
        if hit is not None:
            log.debug("session cache: hit, %d s left", hit.seconds_left(self.clock()))
            return hit
        log.debug("session cache: miss; taking the entry's lock")

        def waiting() -> None:
            log.debug("session cache: another elevate process holds the lock; waiting")
            self.notify("waiting for the MFA prompt in another elevate process...")

        with cache.locked(key, waiting, self.lock_timeout, self.queued_since) as started:
            log.debug("session cache: lock taken after %.2f s", time.monotonic() - started_at)
            hit = cache.get(key, profile.refresh_before_seconds, life)
            if hit is not None:
                log.debug("session cache: filled by another process meanwhile (hit)")
                return hit
            # A --token is a new attempt; otherwise a failure of the last few seconds is answered again.
            memory = self.failure_memory if token is None else 0.0
            earlier = cache.failure_since(key, started - memory)
            previous = cache.entry(key)
            refreshing = previous is not None and previous[0].seconds_left(self.clock()) > 0
            try:
                if earlier is not None:
                    raise earlier
                creds = self._elevate_uncached(profile, token, cache)
            except ElevateError as exc:
                if earlier is None:
                    cache.record_failure(key, exc)
                if not fall_back:
                    raise
                return self._fall_back(cache, key, exc, life)
            label = f"{profile.name} {profile.role_arn}"
            labelled = f"{label} scope {profile.scope.name}" if profile.scope else label
            self._store(cache, key, creds, labelled, self._serve_until(profile, creds, refreshing))
            log.debug("session cache: stored; elevation took %.2f s", time.monotonic() - started_at)
            if profile.duration_seconds < SHORTEST_USEFUL_DURATION:
                self.warn(
                    f"profile {profile.name!r}: duration_seconds {profile.duration_seconds} leaves "
                    "little time outside the SDKs' 15-minute refresh window, so they will run "
                    f"elevate again on almost every call: set at least {SHORTEST_USEFUL_DURATION}"
                )
            return creds

    def _fall_back(
        self, cache: cache_mod.SessionCache, key: str, error: ElevateError, lifetime: int
    ) -> SessionCredentials:
        """After a failed refresh, credentials that are still valid beat no credentials."""
        previous = cache.get(key, STALE_BUT_USABLE_SECONDS, lifetime)
        if previous is None:
            raise error
        left = int(previous.seconds_left(self.clock()))
        self.warn(f"could not refresh ({error.message}); using the cached credentials, valid {left} s more")
        return previous

    def _serve_until(self, profile: Profile, creds: SessionCredentials, refreshing: bool) -> int:
        """The serve-until time of credentials shorter than the refresh window (elevate.disk), and a
        warning. Only when they replace live credentials: short ones from a first elevation may be
        a one-off (a clock step), so the next call tries once more at once; when a refresh gives
        short ones again they are served, with a refresh at most every SHORT_RETRY_SECONDS."""
        if not refreshing:
            return 0
        now = self.clock().timestamp()
        serve_until = disk.serve_until_for(creds.expiration.timestamp(), now, profile.refresh_before_seconds)
        if serve_until:
            self.warn(
                f"profile {profile.name!r}: STS returned credentials that expire within "
                f"refresh_before_seconds ({profile.refresh_before_seconds} s); they are served while they "
                f"last, with a refresh tried at most every {disk.SHORT_RETRY_SECONDS} s: lower "
                "refresh_before_seconds, or check the role's maximum session duration"
            )
        return serve_until

    def _store(
        self,
        cache: cache_mod.SessionCache,
        key: str,
        creds: SessionCredentials,
        label: str,
        serve_until: int = 0,
    ) -> None:
        """Cache `creds`; a cache that cannot be written must not lose credentials STS gave us."""
        try:
            cache.put(key, creds, label, serve_until)
        except CacheError as exc:
            self.warn(f"the credentials were not cached: {exc.message}")

    def _elevate_uncached(
        self, profile: Profile, token: Optional[str], cache: Optional[cache_mod.SessionCache] = None
    ) -> SessionCredentials:
        try:
            return self._assume(profile, token, cache)
        except StsError as exc:
            code = aws.error_code(exc)
            if profile.scope is not None and code in SCOPE_REFUSALS:
                raise self._explain_scope(exc, profile, profile.scope) from exc
            if code != "AccessDenied" or isinstance(exc, MfaCodeRejected):
                raise
            raise self._explain_denial(exc, profile) from exc

    def _explain_scope(self, exc: StsError, profile: Profile, scope: Scope) -> StsError:
        """A session policy STS refuses: one line naming the scope, and what to change."""
        where = f"[scopes.{scope.name}] in {profile.origin.path if profile.origin else 'the config file'}"
        fix = "use fewer or smaller policies" if "PackedPolicyTooLarge" in exc.message else "fix its policy"
        if scope.name in scopes.BUILT_INS:
            where, fix = "a built-in scope", "the role's account or partition may lack its managed policy"
        return type(exc)(f"scope {scope.name!r} ({where}) cannot be applied: {exc.message}; {fix}")

    def _explain_denial(self, exc: StsError, profile: Profile) -> StsError:
        """AccessDenied on AssumeRole: point at the role_arn line, since a typo there looks the same."""
        where = profile.origin.at("role_arn") if profile.origin else "the config file"
        return type(exc)(
            f"{exc.message} If the role ARN is mistyped, fix role_arn = {profile.role_arn!r} of "
            f"profile {profile.name!r} at {where} (or rerun `elevate configure {profile.name}`)."
        )

    def _assume(
        self, profile: Profile, token: Optional[str], cache: Optional[cache_mod.SessionCache]
    ) -> SessionCredentials:
        keys = self.load_keys(profile.key_set)
        log.debug("key set %r: access key %s", profile.key_set, keystore.mask(keys.access_key_id))
        if cache is not None:  # --no-cache and cache = "off" write nothing
            cache_mod.note_key(profile.key_set, keys.access_key_id, self.invocation)
        self._warn_key_age(profile, keys)
        target = self.invocation.sts(profile.region)
        region = target.region
        log.debug("region %s; STS endpoint %s (%s)", region, target.endpoint_url or "default", target.source)
        log.debug("session policy: %s", scopes.describe(profile.scope))
        if profile.mfa_session_seconds:
            sessions = cache_mod.for_mfa_session(profile, self.invocation, self.clock) if cache else None
            session = self._mfa_session(profile, keys, region, token, sessions)
            client = self.client_factory(session, region)
            name = self._user_name(profile, client)
            request = self._request(profile, name)
            return sts.assume_role(client, request, self.clock())
        client = self.client_factory(keys, region)
        name = self._user_name(profile, client)
        return self._gate().send(
            profile,
            token,
            lambda code: sts.assume_role(client, self._request(profile, name, code), self.clock()),
        )

    def _mfa_session(
        self,
        profile: Profile,
        keys: SourceKeys,
        region: str,
        token: Optional[str],
        cache: Optional[cache_mod.SessionCache],
    ) -> SessionCredentials:
        """A cached MFA session (GetSessionToken), or a new one for one MFA code."""
        length = profile.mfa_session_seconds or 0
        key = cache_mod.mfa_session_key(
            profile, self.invocation, cache_mod.key_fingerprint(keys.access_key_id)
        )
        # An MFA session must outlive the role credentials minted from it.
        margin = min(profile.duration_seconds, length // 2)
        if cache is not None:
            try:
                hit = cache.get(key, margin, length, role=False)
            except ElevateError as exc:  # e.g. the keyring that holds MFA sessions is unusable
                self.warn(f"the MFA session cache cannot be read ({exc.message}); asking for a code")
                hit = None
            if hit is not None:
                return hit
        client = self.client_factory(keys, region)
        session = self._gate().send(
            profile,
            token,
            lambda code: sts.get_session_token(client, length, profile.mfa_serial, code, self.clock()),
        )
        if cache is not None:
            try:
                self._store(cache, key, session, f"{profile.key_set} MFA session")
            except ElevateError as exc:
                self.warn(f"the MFA session lives for this process only: {exc.message}")
        return session

    def _user_name(self, profile: Profile, client: aws.StsClient) -> str:
        if profile.role_session_name and profile.source_identity:
            return profile.role_session_name
        name = sts.caller_user_name(client)
        if profile.role_session_name and profile.role_session_name != name:
            # The stack's trust policy binds sts:RoleSessionName to ${aws:username}.
            raise ConfigError(
                f"profile {profile.name!r}: role_session_name {profile.role_session_name!r} is not your IAM "
                f"user name {name!r}, and the role's trust requires them to match: remove role_session_name"
            )
        return name

    def _request(self, profile: Profile, user_name: str, code: Optional[str] = None) -> sts.AssumeRoleRequest:
        return sts.AssumeRoleRequest(
            role_arn=profile.role_arn,
            role_session_name=profile.role_session_name or sts.sanitize_name(user_name),
            source_identity=profile.source_identity or sts.sanitize_name(user_name),
            duration_seconds=profile.duration_seconds,
            serial_number=profile.mfa_serial if code else None,
            token_code=code,
            policy_arns=profile.scope.policy_arns if profile.scope else (),
            policy=profile.scope.policy if profile.scope else None,
        )

    def _gate(self) -> MfaGate:
        """The MFA code gate for this elevation: its code source, this invocation's used codes."""
        used = cache_mod.used_codes(self.invocation, self.clock)
        return MfaGate(used, self.clock, self.code_source, self.notify, self.sleep)

    def _warn_key_age(self, profile: Profile, keys: SourceKeys) -> None:
        if keys.created is None:
            return
        age = (self.clock() - keys.created).days
        if age > profile.max_key_age_days:
            self.warn(
                f"the stored access key for {profile.key_set!r} is {age} days old (limit "
                f"{profile.max_key_age_days}): rotate it with `elevate rotate {profile.key_set}`"
            )


def status_of(
    profile: Profile,
    invocation: Invocation,
    now: Optional[datetime] = None,
    defined: Optional[Mapping[str, Scope]] = None,
) -> dict[str, Any]:
    """What the cache holds for `profile` (its own scope's entry, then any other scope's of
    `defined` and the built-ins that holds something): never a secret."""
    now = now or datetime.now(timezone.utc)
    cache = cache_mod.for_profile(profile, invocation, lambda: now)
    result: dict[str, Any] = {"profile": profile.name, "role_arn": profile.role_arn, "cache": profile.cache}
    if profile.scope is not None:
        result["scope"] = profile.scope.name
    if cache is None:
        result["credentials"] = None
        return result
    found = cache.entry(cache_mod.entry_key(profile, invocation))
    result["credentials"] = None if found is None else _summary(found[0], now)
    if found is not None:
        expires = int(found[0].expiration.timestamp())
        life = profile.duration_seconds
        served = disk.fresh(expires, found[1], now.timestamp(), profile.refresh_before_seconds, life)
        result["credentials"]["served"] = served
        if found[1]:
            result["credentials"]["serve_until"] = found[1]
    others = {}
    for name, variant in scope_variants(profile, defined or {}).items():
        summary = _summary(
            cache.get(cache_mod.entry_key(variant, invocation), 0, variant.duration_seconds), now
        )
        if summary is not None:
            others[name] = summary
    if others:
        result["other_scopes"] = others
    if profile.mfa_session_seconds:
        sessions = cache_mod.for_mfa_session(profile, invocation, lambda: now)
        session = None
        if sessions is not None:
            with contextlib.suppress(ElevateError):
                key = cache_mod.mfa_session_key(profile, invocation)
                session = sessions.get(key, 0, profile.mfa_session_seconds, role=False)
        result["mfa_session"] = _summary(session, now)
    return result


def scope_variants(profile: Profile, defined: Mapping[str, Scope]) -> dict[str, Profile]:
    """`profile` under every other scope it can take (built-ins and `defined`), by scope name."""
    own = profile.scope.name if profile.scope else scopes.NONE
    variants = {}
    for name in [*scopes.BUILT_INS, *sorted(defined)]:
        if name == own:
            continue
        try:
            variants[name] = replace(profile, scope=scopes.resolve(name, defined, profile.role_arn))
        except ConfigError:  # e.g. a scope whose ARNs are of another partition: never used here
            continue
    return variants


def _summary(creds: Optional[SessionCredentials], now: datetime) -> Optional[dict[str, Any]]:
    if creds is None:
        return None
    return {"expiration": creds.expiration_iso(), "seconds_left": int(creds.seconds_left(now))}


def clear(profile: Profile, invocation: Invocation, defined: Optional[Mapping[str, Scope]] = None) -> bool:
    """Remove the cached credentials of `profile` under every scope (and its MFA session)."""
    cache = cache_mod.for_profile(profile, invocation)
    if cache is None:
        return False
    removed = cache.delete(cache_mod.entry_key(profile, invocation))
    for variant in scope_variants(profile, defined or {}).values():
        removed = cache.delete(cache_mod.entry_key(variant, invocation)) or removed
    sessions = cache_mod.for_mfa_session(profile, invocation)
    if profile.mfa_session_seconds and sessions is not None:
        with contextlib.suppress(KeyringError):  # no keyring: nothing was kept there
            removed = sessions.delete(cache_mod.mfa_session_key(profile, invocation)) or removed
    return removed
