"""The MFA code gate: which code is sent to STS, and what a used or rejected code leads to.

Elevation (elevate.core) and key rotation (elevate.onboarding.rotate) both send their code
through `MfaGate.send`. The code comes from a source of elevate.mfa (--token, mfa_process, the
terminal prompt, a dialog) or `refresh_code`; one STS already accepted (elevate.usedcodes) is
not sent again but asked for again, or waited out for mfa_process; one STS rejects is explained
and, typed at the prompt, asked for again. The words of all of it are here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Optional, TypeVar

from . import mfa, ui
from .errors import ElevateError, MfaCodeRejected, MfaError, TerminalBusy
from .models import Profile
from .usedcodes import UsedCodes

log = logging.getLogger("elevate")

# A code typed at the terminal and rejected by STS is asked for again, this many times in all.
REJECTED_CODE_ATTEMPTS = 3
# A code source that keeps giving used codes (the same code retyped; mfa_process while other
# elevate runs on the same device take each new code) is tried this many times, a window apart.
USED_CODE_TRIES = 3

Answer = TypeVar("Answer")


@dataclass
class MfaGate:
    """Codes for one device's STS calls: from `code_source`, checked against `used`, retried."""

    used: UsedCodes
    clock: Callable[[], datetime]
    code_source: Callable[..., str] = mfa.obtain_code
    notify: Callable[[str], None] = ui.tell
    sleep: Callable[[float], None] = time.sleep

    def send(self, profile: Profile, token: Optional[str], attempt: Callable[[str], Answer]) -> Answer:
        """`attempt(code)`; a code typed at the prompt that STS rejects is asked for again, and
        one from mfa_process that another elevate used meanwhile waits for the next window."""
        typed = token is None and not profile.mfa_process
        for tries in range(1, REJECTED_CODE_ATTEMPTS + 1):
            code = self._code(profile, token)
            try:
                answer = attempt(code)
            except MfaCodeRejected as exc:
                explained = self._explain_rejection(exc, profile, code)
                raced = token is None and self.used.was_used(profile.mfa_serial, code)
                if tries == REJECTED_CODE_ATTEMPTS or explained is exc or not (typed or raced):
                    raise explained from exc
                if typed:
                    self.notify(f"{explained.message}. Try again.")
                else:  # mfa_process: another elevate on this device took the code first
                    self._wait_for_next_code()
                continue
            self.used.remember(profile.mfa_serial, code)
            return answer
        raise MfaError("no MFA code accepted")  # pragma: no cover - the loop returns or raises

    def _code(self, profile: Profile, token: Optional[str]) -> str:
        """An MFA code STS has not accepted yet. mfa_process is run again after the next code
        appears (a few windows at most: other elevate runs on the device may take codes too);
        at the prompt the person is told and asked again."""
        last = self.used.last_use(profile.mfa_serial)
        now = self.clock()
        if (
            token is None
            and not profile.mfa_process
            and last is not None
            and now.timestamp() - last < mfa.TOTP_STEP
        ):
            self.notify(
                f"the current code was already used; the next one appears in "
                f"{mfa.seconds_to_next_code(now)} s"
            )
        prompt = f"mfa_prompt {profile.mfa_prompt}"
        source = "--token" if token else "mfa_process" if profile.mfa_process else prompt
        log.debug("MFA code for %s from %s", profile.mfa_serial, source)
        for tries in range(1, USED_CODE_TRIES + 1):
            code = self.code_source(profile, token)
            if not self.used.was_used(profile.mfa_serial, code):
                return code
            wait = mfa.seconds_to_next_code(self.clock())
            if token is not None or tries == USED_CODE_TRIES:
                break
            if profile.mfa_process:
                self._wait_for_next_code()
            else:
                self.notify(
                    f"that code was already used (each code works once); type the next one, in {wait} s"
                )
        raise MfaError(
            f"that MFA code was already used and STS accepts each code once: wait "
            f"{mfa.seconds_to_next_code(self.clock())} s for the next code"
        )

    def _wait_for_next_code(self) -> None:
        wait = mfa.seconds_to_next_code(self.clock())
        self.notify(f"that code was already used; waiting {wait} s for the next one")
        self.sleep(wait + 1)

    def _explain_rejection(self, exc: MfaCodeRejected, profile: Profile, code: str) -> ElevateError:
        wait = mfa.seconds_to_next_code(self.clock())
        if "could not validate" in exc.message:
            return exc
        why = (
            "it was already used"
            if self.used.was_used(profile.mfa_serial, code)
            else "it is wrong, or was already used elsewhere (each code works once), "
            "or the device clock is off"
        )
        return MfaCodeRejected(f"{exc.message}: {why}; the next code appears in {wait} s")


def refresh_code(environ: Mapping[str, str], profile: Profile, token: Optional[str]) -> str:
    """The MFA code for a refresh while `exec --server`'s command runs. The terminal prompt
    works while elevate has the terminal's foreground; a shell run as the command takes it,
    and the digits typed would go to the shell."""
    try:
        return mfa.obtain_code(profile, token, environ=environ, tell_background=False)
    except TerminalBusy:
        name = profile.name
        raise MfaError(
            "a refresh needs a new MFA code and the terminal belongs to the command: set "
            f'mfa_session_seconds, mfa_process or mfa_prompt = "dialog" in profile {name!r}, or run '
            f"`elevate clear {name}` and then `elevate export {name}` in another terminal (the "
            "server takes up what that caches)"
        ) from None
