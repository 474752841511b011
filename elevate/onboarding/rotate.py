"""Rotate a stored access key: create, prove, store, then delete the old one.

The developer policy denies key management without MFA, so the IAM calls go through an
MFA-authenticated session (GetSessionToken) made here. The order is chosen so that the
keyring holds a working key after an interruption at any step, and whatever is left
over (an unused new key, the old key still active) is named in the message.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from .. import aws, keystore, mfa, sts, ui
from .. import cache as cache_mod
from ..aws import Identity, identify, mfa_devices
from ..config import resolve_region
from ..errors import ElevateError, StsError, UsageError
from ..invocation import Invocation
from ..mfagate import MfaGate
from ..models import Profile, SessionCredentials, SourceKeys

# Where a rotation can be interrupted; the fault hook is called after each one.
STEPS = ("session", "created", "verified", "stored", "deleted")
SESSION_SECONDS = 900  # the shortest MFA session STS gives: rotation takes seconds
VERIFY_ATTEMPTS = 10
VERIFY_FIRST_DELAY = 1.0
VERIFY_MAX_DELAY = 5.0


@dataclass(frozen=True)
class RotateResult:
    key_set: str
    user_name: str
    old_key_id: str
    new_key_id: str


def _no_fault(step: str) -> None:
    """The production fault hook: nothing happens between steps."""


@dataclass
class Rotator:
    """The rotation with its collaborators; defaults are the real ones."""

    invocation: Invocation
    client_factory: Callable[..., Any] = aws.make_client
    code_source: Callable[..., str] = mfa.obtain_code
    clock: Callable[[], datetime] = cache_mod.utcnow
    sleep: Callable[[float], None] = time.sleep
    notify: Callable[[str], None] = ui.tell
    fault: Callable[[str], None] = _no_fault
    verify_attempts: int = VERIFY_ATTEMPTS

    def __post_init__(self) -> None:
        if self.code_source is mfa.obtain_code:  # the real default: the invocation's environment
            self.code_source = functools.partial(mfa.obtain_code, environ=self.invocation.environ)

    @property
    def environ(self) -> Mapping[str, str]:
        """The invocation's environment (a read-only copy)."""
        return self.invocation.environ

    def rotate(
        self,
        name: str,
        profile: Optional[Profile] = None,
        token: Optional[str] = None,
        mfa_serial: Optional[str] = None,
    ) -> RotateResult:
        """Replace the key set `name` with a new key of the same IAM user."""
        keystore.check_name(name)
        if token is not None:
            token = mfa.check_token(token)
        old = keystore.get_keys(name)
        region = resolve_region(profile.region if profile else None, self.environ)
        identity = identify(old, region, self.client_factory)
        serial = mfa_serial or (profile.mfa_serial if profile else None)
        if not serial:
            serial = self._only_device(old, region, identity, name)
        try:
            session = self._mfa_session(name, profile, serial, old, region, token)
            self.fault("session")
            iam = self.client_factory(session, region, service="iam")
            self._check_free_slot(iam, identity, old, name)
            created = aws.create_access_key(iam, identity.user_name)
        except BaseException as exc:
            unchanged = (
                f"nothing was changed: the keyring still holds {keystore.mask(old.access_key_id)} as "
                f"{name!r}, which works"
            )
            if isinstance(exc, ElevateError) and "nothing was changed" not in exc.message:
                raise type(exc)(f"{exc.message}; {unchanged}") from exc
            if isinstance(exc, KeyboardInterrupt):
                self.notify(unchanged)
            raise
        new = SourceKeys(
            access_key_id=str(created["AccessKeyId"]),
            secret_access_key=str(created["SecretAccessKey"]),
            created=_utc(created.get("CreateDate"), self.clock()),
        )
        self.notify(f"created {keystore.mask(new.access_key_id)} for {identity.user_name}")
        deleted = False
        try:
            self.fault("created")
            self._verify(new, identity, region)
            self.fault("verified")
            keystore.put_keys(name, new)
            self.fault("stored")
            aws.delete_access_key(iam, identity.user_name, old.access_key_id)
            deleted = True
            self.fault("deleted")
        except BaseException as exc:
            # What is left to do is read from the keyring and IAM, not from how far we got.
            if deleted:
                self.notify(f"rotation of {name!r} finished before the interruption: nothing to clean up")
                raise
            advice = self._left_over(
                name, identity, old, new, iam, rollback=not isinstance(exc, KeyboardInterrupt)
            )
            if isinstance(exc, ElevateError):
                raise type(exc)(f"{exc.message}; {advice}") from exc
            if isinstance(exc, Exception):
                raise ElevateError(f"rotation failed ({type(exc).__name__}: {exc}); {advice}") from exc
            self.notify(advice)
            raise
        self.notify(
            f"rotated {name!r}: {keystore.mask(new.access_key_id)} stored and working, "
            f"{keystore.mask(old.access_key_id)} deleted"
        )
        return RotateResult(name, identity.user_name, old.access_key_id, new.access_key_id)

    def _only_device(self, keys: SourceKeys, region: str, identity: Identity, name: str) -> str:
        devices = mfa_devices(keys, region, identity.user_name, self.client_factory)
        if len(devices) == 1:
            return devices[0]
        if not devices:
            raise UsageError(
                f"user {identity.user_name} has no MFA device, and key management needs MFA: "
                f"enroll one with `elevate mfa enroll {name}`"
            )
        raise UsageError(
            f"user {identity.user_name} has {len(devices)} MFA devices ({', '.join(devices)}): "
            "pass --mfa-serial SERIAL or --profile PROFILE"
        )

    def _mfa_session(
        self,
        name: str,
        profile: Optional[Profile],
        serial: str,
        keys: SourceKeys,
        region: str,
        token: Optional[str],
    ) -> SessionCredentials:
        """GetSessionToken through the MFA code gate: the policy denies key changes without MFA."""
        code_profile = (
            dataclasses.replace(profile, mfa_serial=serial)
            if profile
            else Profile(name=name, role_arn="", mfa_serial=serial)
        )
        client = self.client_factory(keys, region)
        gate = MfaGate(
            cache_mod.used_codes(self.invocation, self.clock),
            self.clock,
            self.code_source,
            self.notify,
            self.sleep,
        )
        return gate.send(
            code_profile,
            token,
            lambda code: sts.get_session_token(client, SESSION_SECONDS, serial, code, self.clock()),
        )

    def _check_free_slot(self, iam: aws.IamClient, identity: Identity, old: SourceKeys, name: str) -> None:
        others = [k for k in aws.access_key_ids(iam, identity.user_name) if k != old.access_key_id]
        if others:
            raise UsageError(
                f"user {identity.user_name} already has another access key ({', '.join(others)}) besides "
                f"the one stored as {name!r}; IAM allows two and rotation needs a free slot. If it is "
                "unused (for example left by an interrupted rotation), delete it: "
                f"`aws iam delete-access-key --user-name {identity.user_name} --access-key-id {others[0]}` "
                "(in an MFA session); nothing was changed"
            )

    def _verify(self, new: SourceKeys, identity: Identity, region: str) -> None:
        """GetCallerIdentity with the new key until it answers as our user (IAM is eventually consistent)."""
        delay = VERIFY_FIRST_DELAY
        last = ""
        for attempt in range(self.verify_attempts):
            if attempt:
                self.sleep(delay)
                delay = min(delay * 1.5, VERIFY_MAX_DELAY)
            try:
                got = identify(new, region, self.client_factory)
            except StsError as exc:
                last = exc.message
                continue
            if got.arn == identity.arn:
                return
            last = f"it answers as {got.arn}"
        raise StsError(
            f"the new key {keystore.mask(new.access_key_id)} did not work after "
            f"{self.verify_attempts} tries ({last})"
        )

    def _left_over(
        self,
        name: str,
        identity: Identity,
        old: SourceKeys,
        new: SourceKeys,
        iam: aws.IamClient,
        rollback: bool,
    ) -> str:
        """What the keyring holds now and what is left to clean up, after a failed step."""
        try:
            stored = keystore.get_keys(name).access_key_id
        except ElevateError:
            stored = ""
        delete = "`aws iam delete-access-key --user-name {user} --access-key-id {key}` (in an MFA session)"
        if stored == new.access_key_id:
            return (
                f"the keyring holds the new key {keystore.mask(new.access_key_id)} as {name!r} and it "
                f"works; the old key {old.access_key_id} is still active: delete it with "
                + delete.format(user=identity.user_name, key=old.access_key_id)
            )
        if stored != old.access_key_id:
            # We cannot tell what the keyring holds: delete nothing, name both keys.
            return (
                f"the keyring could not be read back; both keys are active in IAM: the old "
                f"{old.access_key_id} and the new {new.access_key_id}. Check `elevate keys list`, "
                "store the one you keep with `elevate keys add`, and delete the other with "
                + delete.format(user=identity.user_name, key="<the other key>")
            )
        holds = (
            f"the keyring still holds the old key {keystore.mask(old.access_key_id)} as {name!r}, "
            "which still works"
        )
        if rollback:
            try:
                aws.delete_access_key(iam, identity.user_name, new.access_key_id)
            except ElevateError:
                pass
            else:
                gone = keystore.mask(new.access_key_id)
                return f"{holds}; the new key {gone} was deleted again: nothing to clean up"
        return (
            f"{holds}; the unused new key {new.access_key_id} is left over: delete it with "
            + delete.format(user=identity.user_name, key=new.access_key_id)
        )


def _utc(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc)
    return fallback
