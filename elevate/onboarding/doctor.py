"""`elevate doctor`: check each part of a set-up and say how to fix what is wrong.

Every check runs even when an earlier one failed, as far as it can, so one run names
every fault; a check that depends on a failed one is reported as skipped.
"""

from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Optional

from .. import aws, keystore
from .. import cache as cache_mod
from ..aws import mfa_devices
from ..config import NAME, chosen_name, load_config, resolve_region, select_profile
from ..errors import AwsError, CacheError, ConfigError, ElevateError, KeyringError
from ..invocation import Invocation
from ..models import Profile, SourceKeys
from ..store import check_private_dir
from . import awsfiles

OK, FAIL, WARN, SKIP = "ok", "fail", "warn", "skip"
CLOCK_WARN_SECONDS = 30
CLOCK_FAIL_SECONDS = 300  # SigV4 refuses requests more than five minutes off


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, how it went, and on failure the fix."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class _State:
    """What the checks learn and later checks use."""

    profile: Optional[Profile] = None
    keys: Optional[SourceKeys] = None
    user_name: Optional[str] = None


def _client(keys: SourceKeys, region: str, service: str = "sts", *, environ: Mapping[str, str]) -> Any:
    """doctor's STS and IAM (ListMFADevices) calls over elevate.stsquery's transport: building a
    botocore client for each was most of doctor's time when the keyring is open."""
    if service == "iam":
        return aws.iam_query_client(keys, region, environ)
    return aws.sts_client(keys, region, environ)


@dataclass
class Doctor:
    """The checks, with their collaborators as parameters (real defaults)."""

    invocation: Invocation
    client_factory: Callable[..., Any] = _client
    clock: Callable[[], datetime] = cache_mod.utcnow

    def __post_init__(self) -> None:
        if self.client_factory is _client:  # the real default: the calls see this invocation
            self.client_factory = functools.partial(_client, environ=self.environ)

    @property
    def environ(self) -> Mapping[str, str]:
        """The invocation's environment (as the run found it)."""
        return self.invocation.environ

    def run(self, config_path: Path, requested: Optional[str] = None) -> list[Check]:
        """Every check, in order, for the chosen profile."""
        state = _State()
        checks = [self._config(config_path, requested, state)]
        checks.append(self._keyring())
        checks.append(self._keys(state, keyring_ok=checks[-1].status == OK))
        checks.append(self._key_age(state))
        identity, clock = self._identity_and_clock(state)
        checks += [identity, self._mfa_device(state), self._role_arn(state), clock]
        checks.append(self._aws_config(state))
        checks.append(self._cache_dir())
        return checks

    # Each check below returns one Check; none raises.

    def _config(self, path: Path, requested: Optional[str], state: _State) -> Check:
        # The one reader and the one selection rule every command uses: doctor checks the
        # profile `elevate export` would use, and a profile the reader refuses is not checked.
        try:
            config = load_config(path)
        except ElevateError as exc:  # ConfigError, or an unreadable path (a directory, say)
            fix = (
                f"run `elevate configure {requested or 'dev'}`"
                if not path.exists()
                else "correct the file at the place named (the README lists every key)"
            )
            return Check("config", FAIL, exc.message, fix)
        try:
            state.profile = select_profile(config, requested, self.environ)
        except ConfigError as exc:
            name = chosen_name(requested, self.environ, config.default_profile)
            fix = (
                f"run `elevate configure {name}`"
                if name and NAME.fullmatch(name)
                else "name one (`elevate doctor PROFILE`) or set default_profile"
            )
            return Check("config", FAIL, exc.message, fix)
        return Check("config", OK, f"{path} parses; checking profile {state.profile.name!r}")

    def _keyring(self) -> Check:
        try:
            backend = keystore.backend_name()
            keystore.get_secret("__index__")
            keystore.check_backend()
        except KeyringError as exc:
            return Check("keyring", FAIL, exc.message, "make a keyring backend usable (see the message)")
        return Check("keyring", OK, f"usable ({backend})")

    def _keys(self, state: _State, keyring_ok: bool) -> Check:
        if state.profile is None or not keyring_ok:
            return Check("keys", SKIP, "needs a profile and a usable keyring")
        key_set = state.profile.key_set
        try:
            state.keys = keystore.get_keys(key_set)
        except KeyringError as exc:
            return Check(
                "keys",
                FAIL,
                exc.message,
                f"store the key: `elevate keys add {key_set}` or `elevate keys import {key_set} "
                "--from-aws-profile P`",
            )
        return Check("keys", OK, f"{key_set!r} holds {keystore.mask(state.keys.access_key_id)}")

    def _key_age(self, state: _State) -> Check:
        if state.keys is None or state.profile is None:
            return Check("key age", SKIP, "needs the stored keys")
        key_set = state.profile.key_set
        limit = state.profile.max_key_age_days
        if state.keys.created is None:
            return Check(
                "key age", WARN, "unknown (stored without a date)", f"rotate it: `elevate rotate {key_set}`"
            )
        age = (self.clock() - state.keys.created).days
        if age > limit:
            return Check(
                "key age", FAIL, f"{age} days old (limit {limit})", f"rotate it: `elevate rotate {key_set}`"
            )
        return Check("key age", OK, f"{age} days old (limit {limit})")

    def _region(self, profile: Profile) -> str:
        return resolve_region(profile.region, self.environ)

    def _identity_and_clock(self, state: _State) -> tuple[Check, Check]:
        if state.keys is None or state.profile is None:
            return Check("identity", SKIP, "needs the stored keys"), Check(
                "clock", SKIP, "needs an answer from STS"
            )
        try:
            client = self.client_factory(state.keys, self._region(state.profile))
        except ElevateError as exc:  # a region botocore refuses (AWS_REGION is not checked before)
            return Check("identity", FAIL, exc.message, "set a valid region name, such as eu-west-1"), Check(
                "clock", SKIP, "needs an answer from STS"
            )
        before = self.clock()
        headers: Mapping[str, Any] = {}
        try:
            who, headers = aws.caller_identity(client)
        except AwsError as exc:
            headers = aws.response_headers(exc)
            identity = Check("identity", FAIL, "GetCallerIdentity failed", exc.message)
        else:
            if who.is_user:
                state.user_name = who.user_name
                identity = Check("identity", OK, who.arn)
            else:
                identity = Check(
                    "identity",
                    FAIL,
                    f"the keys belong to {who.arn}, not an IAM user",
                    "store your IAM user's key",
                )
        after = self.clock()
        return identity, self._clock(headers, before + (after - before) / 2)

    def _clock(self, headers: Mapping[str, Any], local: datetime) -> Check:
        date = headers.get("date")
        if not isinstance(date, str):
            return Check("clock", SKIP, "STS sent no Date header")
        try:
            remote = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return Check("clock", SKIP, f"STS sent an unreadable Date header ({date!r})")
        if remote.tzinfo is None:  # "-0000": RFC 5322's UTC of unknown origin
            remote = remote.replace(tzinfo=timezone.utc)
        skew = (local - remote).total_seconds()
        text = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} STS"
        fix = "set this computer to take its time from the network (NTP)"
        if abs(skew) > CLOCK_FAIL_SECONDS:
            return Check("clock", FAIL, text, fix)
        if abs(skew) > CLOCK_WARN_SECONDS:
            return Check("clock", WARN, text, fix)
        return Check("clock", OK, text if abs(skew) >= 1 else "in step with STS")

    def _mfa_device(self, state: _State) -> Check:
        if state.keys is None or state.user_name is None or state.profile is None:
            return Check("MFA device", SKIP, "needs a working identity")
        profile, serial = state.profile.name, state.profile.mfa_serial
        region = self._region(state.profile)
        try:
            devices = mfa_devices(state.keys, region, state.user_name, self.client_factory)
        except ElevateError as exc:
            return Check("MFA device", FAIL, "ListMFADevices failed", exc.message)
        if serial in devices:
            return Check("MFA device", OK, f"{serial} is registered to {state.user_name}")
        if not devices:
            return Check(
                "MFA device",
                FAIL,
                f"user {state.user_name} has no MFA device",
                f"enroll one: `elevate mfa enroll {profile}`",
            )
        return Check(
            "MFA device",
            FAIL,
            f"mfa_serial {serial} is not registered to {state.user_name} (registered: {', '.join(devices)})",
            f"set mfa_serial to the right one: `elevate configure {profile} --stored-keys`",
        )

    def _role_arn(self, state: _State) -> Check:
        # The reader refuses a missing or malformed role_arn (the config check names it, file and line).
        if state.profile is None:
            return Check("role ARN", SKIP, "needs a profile")
        return Check("role ARN", OK, state.profile.role_arn)

    def _aws_config(self, state: _State) -> Check:
        name = "AWS CLI profile"
        if state.profile is None:
            return Check(name, SKIP, "needs a profile")
        profile = state.profile.name
        path = awsfiles.config_path(self.environ)
        add = f"`elevate configure {profile} --stored-keys --aws-config` writes it"
        try:
            command = awsfiles.credential_process(awsfiles.read_bytes(path), profile, path)
        except ElevateError as exc:
            return Check(name, FAIL, exc.message, "fix the file so the AWS CLI can read it")
        header = awsfiles.section_header(profile)
        if command is None:
            return Check(name, WARN, f"{path} has no {header} with credential_process (optional)", add)
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            return Check(name, FAIL, f"{header} credential_process cannot be split: {exc}", add)
        if not argv:
            return Check(name, FAIL, f"{header} has an empty credential_process", add)
        program = argv[0]
        if not (os.path.isabs(program) and os.path.isfile(program) and os.access(program, os.X_OK)):
            return Check(name, FAIL, f"{header} runs {program}, which is not an executable file", add)
        if "-m" in argv and not {"-I", "-P"} & set(argv[: argv.index("-m")]):
            return Check(
                name,
                FAIL,
                f"{header} runs `{program} -m ...` without -I: the AWS CLI runs it in the caller's "
                "working directory, where a planted elevate/ or json.py would be imported first",
                add,
            )
        if "credential-process" not in argv or argv[-1] != profile:
            return Check(
                name,
                WARN,
                f"{header} runs {command!r}, not `elevate credential-process {profile}`",
                add,
            )
        return Check(name, OK, f"{header} in {path} runs {program}")

    def _cache_dir(self) -> Check:
        directory = self.invocation.cache_dir
        if not os.path.lexists(directory):
            return Check("cache directory", OK, f"{directory} will be created (mode 700)")
        try:
            check_private_dir(directory)
        except CacheError as exc:
            if os.path.islink(directory) or not os.path.isdir(directory):
                fix = f"remove {directory}, or point ELEVATE_CACHE_DIR at a private directory"
            else:
                fix = f"chmod 700 {directory}"
            return Check("cache directory", FAIL, exc.message, fix)
        return Check("cache directory", OK, f"{directory} is private")


MARKS = {OK: "[ ok ]", FAIL: "[FAIL]", WARN: "[warn]", SKIP: "[skip]"}


def render(checks: list[Check]) -> str:
    """One line per check, and the fix under each failure or warning."""
    lines = []
    for check in checks:
        lines.append(f"{MARKS[check.status]} {check.name}: {check.detail}")
        if check.fix and check.status in (FAIL, WARN):
            lines.append(f"       fix: {check.fix}")
    return "\n".join(lines) + "\n"


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]
