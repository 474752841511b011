"""Enroll a virtual MFA device for the caller: create it, show its QR code, check two codes, enable it.

The two codes are checked here against the seed with pyotp before EnableMFADevice, so a
mistyped code, codes that are not consecutive, or a phone whose clock is off get a clear
message instead of an AWS error. There is deliberately no command that prints codes:
the second factor stays on the second device.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import pyotp

from .. import aws, keystore, mfa, ui
from .. import cache as cache_mod
from ..aws import Identity, identify, mfa_devices
from ..config import resolve_region
from ..errors import ElevateError, IamError, MfaError, UsageError
from ..invocation import Invocation
from ..models import SourceKeys
from . import configfile
from .configure import existing_profile

ISSUER = "Amazon Web Services"
SEARCH_STEPS = 20  # look for the codes up to 10 minutes either side, to name a clock error
# EnableMFADevice wants the codes about now: the second one may be a little old (typing)
# or one step ahead, no more.
ACCEPTED_OFFSETS = range(-2, 2)
ATTEMPTS = 3


@dataclass(frozen=True)
class NewDevice:
    """A virtual MFA device created but not yet enabled."""

    serial: str
    user_name: str
    seed: str = field(repr=False)
    uri: str = field(repr=False)


def check_codes(seed: str, first: str, second: str, now: datetime) -> None:
    """Raise MfaError unless `first` and `second` are consecutive codes of `seed`, about now."""
    codes = [mfa.normalize_code(first), mfa.normalize_code(second)]
    if None in codes:
        raise MfaError("an MFA code is six digits")
    one, two = str(codes[0]), str(codes[1])
    if one == two:
        raise MfaError(
            "the two codes are the same: enter the code shown, wait until the app shows the next "
            "one (up to 30 s), then enter that"
        )
    totp = pyotp.TOTP(seed)
    base = int(now.timestamp()) // mfa.TOTP_STEP

    def code_at(step: int) -> str:
        return str(totp.at((base + step) * mfa.TOTP_STEP))

    window = range(-SEARCH_STEPS, SEARCH_STEPS + 1)
    pairs = [k for k in window if code_at(k) == one and code_at(k + 1) == two]
    if not pairs:
        if any(code_at(k) == two and code_at(k + 1) == one for k in window):
            raise MfaError("the codes were entered in the wrong order: enter the older one first")
        if any(code_at(k) in (one, two) for k in window):
            raise MfaError(
                "the codes are not consecutive: enter the code shown, wait until the app shows the "
                "next one, then enter that one (not a later one)"
            )
        raise MfaError(
            "neither code belongs to this device: scan the QR code shown here (an older entry for "
            "this account in the app will not work), and check that the phone sets its time "
            "automatically"
        )
    step = min(pairs, key=lambda k: abs(k + 1))
    offset = step + 1  # where the second (the newest) code falls, in steps from now
    if offset not in ACCEPTED_OFFSETS:
        seconds = abs(offset) * mfa.TOTP_STEP
        direction = "ahead of" if offset > 0 else "behind"
        raise MfaError(
            f"the codes are right, but the phone's clock is about {_duration(seconds)} {direction} this "
            "computer's, and AWS would reject them: set the phone (and this computer) to take the "
            "time from the network, then enroll again (`elevate doctor` checks this computer's clock)"
        )


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"


def render_qr(uri: str) -> str:
    """The QR code of `uri` drawn with text blocks, for a terminal."""
    import segno

    buffer = io.StringIO()
    segno.make(uri, error="m", micro=False).terminal(out=buffer, compact=True)
    return buffer.getvalue()


@dataclass
class Enroller:
    """The enrollment with its collaborators; defaults are the real ones."""

    invocation: Invocation
    client_factory: Callable[..., Any] = aws.make_client
    clock: Callable[[], datetime] = cache_mod.utcnow
    notify: Callable[[str], None] = ui.tell
    attempts: int = ATTEMPTS

    @property
    def environ(self) -> Mapping[str, str]:
        """The invocation's environment (a read-only copy)."""
        return self.invocation.environ

    def enroll(
        self,
        keys: SourceKeys,
        region: str,
        show: Callable[[NewDevice], None],
        read_codes: Callable[[], tuple[str, str]],
        identity: Optional[Identity] = None,
    ) -> str:
        """Create, show, check and enable a virtual MFA device for the keys' user; its serial."""
        identity = identity or identify(keys, region, self.client_factory)
        registered = mfa_devices(keys, region, identity.user_name, self.client_factory)
        if registered:
            raise UsageError(
                f"user {identity.user_name} already has an MFA device ({', '.join(registered)}): "
                "`elevate configure` uses it. To replace it, deactivate it first "
                f"(`aws iam deactivate-mfa-device --user-name {identity.user_name} --serial-number "
                f"{registered[0]}`, in an MFA session)"
            )
        iam = self.client_factory(keys, region, service="iam")
        device = self._create(iam, identity)
        try:
            show(device)
            first, second = self._codes(device, read_codes)
            aws.enable_mfa_device(iam, identity.user_name, device.serial, first, second)
        except BaseException:
            # Leave no half-made device behind: the next enroll would find its name taken.
            self._delete(iam, device.serial)
            raise
        self.notify(f"enabled MFA device {device.serial} for {identity.user_name}")
        self._close_window(iam, identity, device.serial)
        return device.serial

    def _close_window(self, iam: aws.IamClient, identity: Identity, serial: str) -> None:
        """Close the onboarding window at once: with the device enabled, the key alone must no
        longer be able to enrol another one. The device works either way, so a failure here is
        a message for the admin, not an error."""
        try:
            aws.close_onboarding_window(iam, identity.user_name)
        except ElevateError as exc:
            self.notify(
                f"enabled MFA device {serial}, but could not close your onboarding window ({exc.message}): "
                f"ask your admin to run `aws iam untag-user --user-name {identity.user_name} "
                f"--tag-keys {aws.ONBOARDING_TAG}`"
            )
            return
        self.notify(f"closed the onboarding window of {identity.user_name} ({aws.ONBOARDING_TAG} removed)")

    def enroll_profile(
        self,
        name: str,
        config_path: Path,
        show: Callable[[NewDevice], None],
        read_codes: Callable[[], tuple[str, str]],
        key_set: Optional[str] = None,
        region: Optional[str] = None,
    ) -> tuple[str, bool]:
        """Enroll for profile (or key set) NAME and write mfa_serial into the profile if it exists.

        Returns the serial and whether the profile was updated.
        """
        existing = existing_profile(config_path, name)
        key_set = keystore.check_name(key_set or str(existing.get("keys") or name))
        keys = keystore.get_keys(key_set)
        api_region = resolve_region(region or existing.get("region"), self.environ)
        serial = self.enroll(keys, api_region, show, read_codes)
        if not existing:
            self.notify(
                f"no profile {name!r} in {config_path} yet: run `elevate configure {name} --stored-keys`"
            )
            return serial, False
        configfile.update_profile(config_path, name, {"mfa_serial": serial}, make_default=False)
        self.notify(f"wrote mfa_serial of profile {name!r} in {config_path}")
        return serial, True

    def _create(self, iam: aws.IamClient, identity: Identity) -> NewDevice:
        # The developer policy allows a virtual device only under the user's own name.
        try:
            raw = aws.create_virtual_mfa_device(iam, identity.user_name)
        except IamError as exc:
            if aws.error_code(exc) in ("AccessDenied", "AccessDeniedException"):
                raise IamError(
                    f"{exc.message}. Enrolling needs your onboarding window open: ask your admin to tag "
                    f'your user {aws.ONBOARDING_TAG}=true (docs/admin.md, "The onboarding window")'
                ) from exc
            if "already exists" not in exc.message.lower() and "EntityAlreadyExists" not in exc.message:
                raise
            # Left by an enrollment that never finished (it is not registered to the user).
            self._delete(iam, f"arn:{identity.partition}:iam::{identity.account}:mfa/{identity.user_name}")
            raw = aws.create_virtual_mfa_device(iam, identity.user_name)
        seed = raw["Base32StringSeed"]
        seed = seed.decode("ascii") if isinstance(seed, bytes) else str(seed)
        uri = pyotp.TOTP(seed).provisioning_uri(
            name=f"{identity.user_name}@{identity.account}", issuer_name=ISSUER
        )
        return NewDevice(serial=str(raw["SerialNumber"]), user_name=identity.user_name, seed=seed, uri=uri)

    def _codes(self, device: NewDevice, read_codes: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        for attempt in range(1, self.attempts + 1):
            first, second = read_codes()
            try:
                check_codes(device.seed, first, second, self.clock())
            except MfaError as exc:
                if attempt == self.attempts:
                    raise MfaError(f"{exc.message} (device {device.serial} not enabled)") from exc
                self.notify(f"{exc.message}. Try again.")
                continue
            return str(mfa.normalize_code(first)), str(mfa.normalize_code(second))
        raise MfaError("no MFA codes entered")  # pragma: no cover - attempts >= 1

    def _delete(self, iam: aws.IamClient, serial: str) -> None:
        try:
            aws.delete_virtual_mfa_device(iam, serial)
        except ElevateError as exc:
            self.notify(f"could not delete the unfinished MFA device {serial}: {exc.message}")
