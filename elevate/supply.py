"""The credentials `elevate exec --server` hands out: held while fresh, refreshed ahead of time.

One refresh runs at a time, in a thread, and no request waits for it past a deadline: a
request inside the prefetch lead is answered at once with what is held, one after that waits
for the refresh, and anything still usable for a minute is served while a refresh fails or
hangs. A refresh that failed is not tried again on every request (SDKs retry, and the
command keeps calling): requests get its error at once, or what another elevate process
cached meanwhile, for a pause that doubles with each failure in a row.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Optional

from . import cache as cache_mod
from .errors import CredentialsUnavailable, ElevateError
from .models import Profile, SessionCredentials

# botocore refreshes with under 15 minutes left on every access: hand out more than that.
MIN_SECONDS_LEFT = 15 * 60 + 60
# Inside this lead on MIN_SECONDS_LEFT a request starts a refresh but is answered at once.
PREFETCH_SECONDS = 5 * 60
# A refresh that failed or is still running: credentials with this long left still serve.
STALE_BUT_USABLE_SECONDS = 60
# After a failed refresh, requests get its error at once (or credentials still usable) for a
# pause that doubles with each failure in a row: SDK retries are not each an AssumeRole call.
RETRY_FIRST_SECONDS = 5
RETRY_MAX_SECONDS = 300
REQUEST_DEADLINE_SECONDS = 10.0


def serving_profile(profile: Profile, min_left: int = MIN_SECONDS_LEFT) -> Profile:
    """`profile` refreshed early enough that what the server hands out has `min_left` left,
    as far as its duration allows (at least a minute of use per credential)."""
    refresh = min(max(profile.refresh_before_seconds, min_left), profile.duration_seconds - 60)
    return dataclasses.replace(profile, refresh_before_seconds=refresh)


@dataclasses.dataclass
class _Flight:
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: Optional[SessionCredentials] = None
    error: Optional[ElevateError] = None


class CredentialSupply:
    """The credentials the server hands out: held while fresh, refreshed by one thread at a time."""

    def __init__(
        self,
        fetch: Callable[[], SessionCredentials],
        min_left: int = MIN_SECONDS_LEFT,
        clock: Callable[[], datetime] = cache_mod.utcnow,
        deadline: float = REQUEST_DEADLINE_SECONDS,
        initial: Optional[SessionCredentials] = None,
        monotonic: Callable[[], float] = time.monotonic,
        on_failure: Callable[[str], None] = lambda _message: None,
        peek: Callable[[], Optional[SessionCredentials]] = lambda: None,
    ) -> None:
        self._fetch = fetch
        self._min_left = min_left
        self._clock = clock
        self._deadline = deadline
        self._monotonic = monotonic
        self._on_failure = on_failure
        self._peek = peek  # the session cache alone (no STS, no prompt), read during a pause
        self._lock = threading.Lock()
        self._current = initial
        self._flight: Optional[_Flight] = None
        self._failures = 0  # failed refreshes in a row
        self._retry_at = 0.0  # monotonic time before which no refresh starts
        self._error: Optional[ElevateError] = None  # the last failure, answered meanwhile

    def get(self) -> SessionCredentials:
        """Credentials with more than `min_left` left if at all possible; never waits past the deadline."""
        with self._lock:
            current = self._current
            left = current.seconds_left(self._clock()) if current is not None else 0.0
            if current is not None and left > self._min_left + PREFETCH_SECONDS:
                return current
            pausing = self._flight is None and self._error is not None and self._monotonic() < self._retry_at
            flight = None if pausing else self._start()
            if current is not None and left > self._min_left:
                return current
            error = self._error
        if flight is None:
            return self._taken_up() or self._usable(
                current, error or CredentialsUnavailable("the refresh gave no credentials")
            )
        if not flight.done.wait(self._deadline):
            return self._usable(
                current, CredentialsUnavailable("still waiting for the credentials (an MFA prompt?)")
            )
        if flight.result is None:
            return self._usable(
                current, flight.error or CredentialsUnavailable("the refresh gave no credentials")
            )
        return flight.result

    def drop(self) -> None:
        """Forget what is held (the command has ended); a refresh still running is discarded."""
        with self._lock:
            self._current, self._error = None, None
            self._fetch = _nothing

    def _taken_up(self) -> Optional[SessionCredentials]:
        """During a pause: fresh credentials another elevate process cached meanwhile, if any."""
        cached = self._peek()
        if cached is None or cached.seconds_left(self._clock()) <= self._min_left:
            return None
        with self._lock:
            self._current = cached
            self._failures, self._retry_at, self._error = 0, 0.0, None
        return cached

    def _usable(self, current: Optional[SessionCredentials], error: ElevateError) -> SessionCredentials:
        if current is not None and current.seconds_left(self._clock()) > STALE_BUT_USABLE_SECONDS:
            return current
        # A copy per request: raising the one stored error again and again (from many threads,
        # for a whole pause) would chain every request's frames onto it and keep them alive.
        raise _fresh(error) from None

    def _start(self) -> _Flight:
        """The refresh in flight, or a new one (caller holds the lock)."""
        if self._flight is None:
            self._flight = _Flight()
            threading.Thread(target=self._refresh, args=(self._flight,), daemon=True).start()
        return self._flight

    def _refresh(self, flight: _Flight) -> None:
        try:
            flight.result = self._fetch()
        except ElevateError as exc:
            flight.error = exc
        except Exception as exc:  # noqa: BLE001 - a refresh thread must always release its waiters
            flight.error = ElevateError(f"refreshing the credentials failed ({type(exc).__name__})")
        failed = None
        with self._lock:
            if self._fetch is _nothing:  # dropped meanwhile: keep nothing, tell nobody
                flight.result = None
                flight.error = CredentialsUnavailable("the command this server ran for has ended")
            elif flight.result is not None:
                self._current = flight.result
                self._failures, self._retry_at, self._error = 0, 0.0, None
            else:
                self._failures += 1
                pause = min(RETRY_FIRST_SECONDS * 2 ** min(self._failures - 1, 16), RETRY_MAX_SECONDS)
                self._retry_at = self._monotonic() + pause
                self._error = flight.error or CredentialsUnavailable("the refresh gave no credentials")
                failed = f"refreshing the credentials failed: {self._error.message}; next try in {pause} s"
            self._flight = None
        flight.done.set()
        if failed is not None:
            self._on_failure(failed)


def _nothing() -> SessionCredentials:
    raise CredentialsUnavailable("the command this server ran for has ended")


def _fresh(error: ElevateError) -> ElevateError:
    """A new exception of `error`'s kind with its message, and no traceback of its own yet."""
    try:
        fresh = copy.copy(error)
    except Exception:  # noqa: BLE001 - an error class that cannot be copied: keep the message
        return ElevateError(error.message)
    fresh.__traceback__ = fresh.__context__ = fresh.__cause__ = None
    return fresh
