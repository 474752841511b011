"""From "the admin created my user" to "elevated": `configure` and `keys import`.

Questions go through a Prompter the CLI supplies; without one (non-interactive) every
missing answer is a UsageError that names the flag to pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Protocol

from .. import aws, keystore, ui
from ..aws import Identity, identify, mfa_devices, role_exists
from ..config import ROLE_ARN, check_name, config_path, read_document, resolve_region
from ..errors import AwsError, ConfigError, ElevateError, KeyringError, UsageError
from ..invocation import Invocation
from ..models import SourceKeys
from . import awsfiles, configfile
from .command_line import elevate_command

MIN_USER_NAME = 2  # STS's shortest RoleSessionName and SourceIdentity
AGAIN = "`elevate configure` again"  # what to run once a usable keyring is installed
_CONFIG_KEYS = ("role_arn", "mfa_serial", "region", "keys")


class Prompter(Protocol):
    """How the wizard talks to a person (the CLI gives a terminal-backed one)."""

    def ask(self, question: str, default: Optional[str] = None) -> str: ...
    def secret(self, question: str) -> str: ...
    def confirm(self, question: str, default: bool) -> bool: ...


# --- configure ------------------------------------------------------------------------------


@dataclass
class ConfigureAnswers:
    """Every answer the wizard asks for; each one can come from a command-line flag."""

    profile: Optional[str] = None
    role_arn: Optional[str] = None
    from_stack: Optional[str] = None
    stack_output: str = "RoleArn"
    mfa_serial: Optional[str] = None
    region: Optional[str] = None
    key_set: Optional[str] = None
    keys: Optional[tuple[str, str]] = field(default=None, repr=False)
    stored_keys: bool = False
    from_aws_profile: Optional[str] = None
    delete_plaintext: bool = False
    make_default: Optional[bool] = None
    aws_profile: Optional[str] = None
    write_aws_config: Optional[bool] = None


@dataclass(frozen=True)
class ConfigureResult:
    profile: str
    key_set: str
    role_arn: str
    mfa_serial: str
    config_changed: bool
    aws_config_written: bool


EnrollDevice = Callable[[SourceKeys, Identity, str], str]


@dataclass
class Onboarding:
    """configure and import, with their collaborators as parameters (real defaults)."""

    invocation: Invocation
    client_factory: Callable[..., Any] = aws.make_client
    notify: Callable[[str], None] = ui.inform
    warn: Callable[[str], None] = ui.warn
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    command: Sequence[str] = field(default_factory=elevate_command)

    @property
    def environ(self) -> Mapping[str, str]:
        """The invocation's environment (a read-only copy)."""
        return self.invocation.environ

    def import_keys(
        self,
        name: str,
        aws_profile: str,
        delete_plaintext: bool = False,
        verify: Optional[Callable[[SourceKeys], object]] = None,
    ) -> SourceKeys:
        """Move `[aws_profile]`'s key pair from the credentials file into the keyring as `name`."""
        keystore.check_name(name)
        path = awsfiles.credentials_path(self.environ)
        data = awsfiles.read_bytes(path)
        if data is None:
            raise ConfigError(f"{path}: no such file (AWS_SHARED_CREDENTIALS_FILE names another)")
        pair = awsfiles.read_key_pair(data, aws_profile, path)
        keys = keystore.check_keys(pair.access_key_id, pair.secret_access_key)
        if verify is not None:
            verify(keys)
        keystore.put_keys(name, keys)
        stored = keystore.get_keys(name)
        if (stored.access_key_id, stored.secret_access_key) != (keys.access_key_id, keys.secret_access_key):
            raise KeyringError(
                f"the keyring did not return the key just stored as {name!r}: {path} left unchanged"
            )
        where = f"stored {keystore.mask(keys.access_key_id)} from {path} [{aws_profile}] as {name!r}"
        self.notify(f"{where} in {keystore.backend_name()}")
        if not delete_plaintext:
            self.notify(
                f"the key is still in plaintext in {path} [{aws_profile}]: remove it with "
                f"`elevate keys import {name} --from-aws-profile {aws_profile} --delete-plaintext`"
            )
            return keys
        for problem in awsfiles.exposure(path):
            self.warn(problem)
        remaining = awsfiles.remove_section(data, aws_profile, path)
        backup = awsfiles.write_backup(path, data, self.clock())
        awsfiles.replace_file(path, remaining, expect=data)
        secrets = {"access key ID": keys.access_key_id, "secret": keys.secret_access_key}
        left = awsfiles.lines_holding(remaining, secrets)
        if left:
            raise ElevateError(
                f"removed [{aws_profile}] from {path}, but the key is still in it: {left} (another profile "
                f"or a comment); remove those lines by hand. The previous file is backed up (mode 0600) at "
                f"{backup}"
            )
        self.notify(
            f"removed [{aws_profile}] from {path}; the previous file is backed up (mode 0600) at "
            f"{backup}: it still holds the key in plaintext, so delete it once elevate works"
        )
        return keys

    def configure(
        self,
        answers: ConfigureAnswers,
        config_path: Path,
        prompter: Optional[Prompter] = None,
        enroll_device: Optional[EnrollDevice] = None,
    ) -> ConfigureResult:
        """Store keys, find the role and MFA device, write the profile, offer ~/.aws/config."""
        name = _answer(answers.profile, prompter, "Profile name", "PROFILE", "dev")
        check_name(name, "profile name")
        existing = existing_profile(config_path, name)
        key_set = keystore.check_name(answers.key_set or str(existing.get("keys") or name))
        region = answers.region
        if region is None and prompter is not None:
            region = prompter.ask("Region", str(existing.get("region") or resolve_region(None, self.environ)))
        region = region or existing.get("region")
        api_region = resolve_region(region, self.environ)

        keys, fresh = self._keys(answers, key_set, prompter)
        identity = identify(keys, api_region, self.client_factory)
        if len(identity.user_name) < MIN_USER_NAME:
            raise UsageError(
                f"IAM user {identity.user_name!r} is too short for elevate: STS needs a source identity "
                "and session name of 2 to 64 characters, and the role's trust requires both to equal "
                "your user name; ask your admin for a user name of at least two characters"
            )
        self.notify(f"the keys belong to {identity.arn}")
        if answers.from_aws_profile:
            self.import_keys(key_set, answers.from_aws_profile, answers.delete_plaintext)
        elif fresh:
            keystore.put_keys(key_set, keys)
            self.notify(
                f"stored {keystore.mask(keys.access_key_id)} as {key_set!r} in {keystore.backend_name()}"
            )

        role_arn = answers.role_arn
        if role_arn is None and answers.from_stack:
            role_arn = self.role_from_stack(keys, api_region, answers.from_stack, answers.stack_output)
        if role_arn is None:
            role_arn = _answer(
                None,
                prompter,
                "Role ARN (from the admin)",
                "--role-arn ARN or --from-stack NAME",
                existing.get("role_arn"),
            )
        if not ROLE_ARN.fullmatch(role_arn):
            raise UsageError(f"{role_arn!r} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        self._check_role(keys, identity, api_region, role_arn)

        mfa_serial = answers.mfa_serial or self._mfa_serial(
            keys, identity, api_region, name, existing, prompter, enroll_device
        )
        values: dict[str, configfile.Value] = {"role_arn": role_arn, "mfa_serial": mfa_serial}
        if region:
            values["region"] = region
        if key_set != name:
            values["keys"] = key_set
        make_default = answers.make_default
        current_default = read_document(config_path).get("default_profile")
        if make_default is None and prompter is not None and current_default not in (None, name):
            make_default = prompter.confirm(
                f"Make {name!r} the default profile (now {current_default!r})?", False
            )
        changed = configfile.update_profile(config_path, name, values, make_default)
        self.notify(f"{'wrote' if changed else 'unchanged:'} profile {name!r} in {config_path}")

        written = self._aws_config(name, answers, prompter, config_path, region, api_region)
        return ConfigureResult(name, key_set, role_arn, mfa_serial, changed, written)

    def _keys(
        self, answers: ConfigureAnswers, key_set: str, prompter: Optional[Prompter]
    ) -> tuple[SourceKeys, bool]:
        """The key pair to configure, and whether it still has to be stored."""
        if answers.from_aws_profile:
            path = awsfiles.credentials_path(self.environ)
            data = awsfiles.read_bytes(path)
            if data is None:
                raise ConfigError(f"{path}: no such file (AWS_SHARED_CREDENTIALS_FILE names another)")
            pair = awsfiles.read_key_pair(data, answers.from_aws_profile, path)
            return keystore.check_keys(pair.access_key_id, pair.secret_access_key), False
        if answers.stored_keys:
            return keystore.get_keys(key_set), False
        if answers.keys is not None:
            return keystore.check_keys(*answers.keys), True
        if prompter is None:
            raise UsageError(
                "no keys given: pass the access key ID and the secret key as two lines on stdin, "
                f"or --stored-keys (use key set {key_set!r}), or --from-aws-profile P"
            )
        stored: Optional[SourceKeys] = None
        # Before the key is typed: a keyring that cannot store it would lose it.
        if keystore.usable_has_keys(key_set, then=AGAIN):
            try:
                stored = keystore.get_keys(key_set)
            except KeyringError:
                stored = None  # damaged: replaced by the key typed now
        if stored is not None and prompter.confirm(
            f"Use the key {keystore.mask(stored.access_key_id)} already stored as {key_set!r}?", True
        ):
            return stored, False
        key_id = prompter.ask("Access key ID")
        secret = prompter.secret("Secret access key")
        return keystore.check_keys(key_id, secret), True

    def role_from_stack(self, keys: SourceKeys, region: str, stack: str, output: str) -> str:
        """The role ARN from a CloudFormation stack's outputs (DescribeStacks)."""
        client = self.client_factory(keys, region, service="cloudformation")
        try:
            outputs = aws.stack_outputs(client, stack)
        except AwsError as exc:
            raise type(exc)(
                f"cannot read stack {stack!r} in region {region} ({exc.message}): if the admin "
                "deployed it in another region, pass --region REGION (that region); else ask the "
                "admin for the role ARN and pass --role-arn"
            ) from exc
        value = outputs.get(output)
        have = ", ".join(sorted(map(str, outputs))) or "none"
        if not isinstance(value, str):
            raise UsageError(
                f"stack {stack!r} has no output {output!r} (it has: {have}): pass --stack-output KEY "
                "or --role-arn"
            )
        if "<account-id>" in value:
            raise UsageError(
                f"stack {stack!r} gives only a pattern ({value}): fill in the account ID and pass --role-arn"
            )
        self.notify(f"role ARN from stack {stack!r}: {value}")
        return value

    def _mfa_serial(
        self,
        keys: SourceKeys,
        identity: Identity,
        region: str,
        name: str,
        existing: Mapping[str, Any],
        prompter: Optional[Prompter],
        enroll_device: Optional[EnrollDevice],
    ) -> str:
        devices = mfa_devices(keys, region, identity.user_name, self.client_factory)
        if len(devices) == 1:
            self.notify(f"MFA device: {devices[0]}")
            return devices[0]
        if devices:
            if existing.get("mfa_serial") in devices:
                return str(existing["mfa_serial"])
            if prompter is None:
                raise UsageError(
                    f"user {identity.user_name} has {len(devices)} MFA devices ({', '.join(devices)}): "
                    "pass --mfa-serial SERIAL"
                )
            while True:
                chosen = prompter.ask(f"MFA device ({', '.join(devices)})", devices[0])
                if chosen in devices:
                    return chosen
        if prompter is not None and enroll_device is not None:
            if prompter.confirm(
                f"User {identity.user_name} has no MFA device. Enroll a virtual one now?", True
            ):
                return enroll_device(keys, identity, region)
        raise UsageError(
            f"user {identity.user_name} has no MFA device: run `elevate mfa enroll {name}` (the keys "
            f"are stored), then `elevate configure {name} --stored-keys` again, or pass --mfa-serial"
        )

    def _check_role(self, keys: SourceKeys, identity: Identity, region: str, role_arn: str) -> None:
        """Check the role as far as the keys allow, and say plainly what could not be checked."""
        account = role_arn.split(":")[4]
        role_name = role_arn.rsplit("/", 1)[-1]
        if account != identity.account:
            self.notify(
                f"note: the role is in account {account}, your keys in account {identity.account}: "
                "fine for a cross-account role, but check the account ID if that is not intended "
                "(elevate cannot see roles in another account)"
            )
            return
        found = role_exists(keys, region, role_name, self.client_factory)
        if found is False:
            raise UsageError(
                f"there is no role {role_name!r} in account {account} (IAM GetRole): check the "
                "role ARN with the admin"
            )
        if found is None:
            self.notify(
                f"note: could not check that role {role_name!r} exists (your keys may not call "
                "iam:GetRole); a wrong role ARN shows up as AccessDenied on the first elevation"
            )
        else:
            self.notify(f"role {role_name!r} exists in account {account}")

    def _aws_config(
        self,
        name: str,
        answers: ConfigureAnswers,
        prompter: Optional[Prompter],
        elevate_config: Path,
        region: Optional[str] = None,
        fallback_region: Optional[str] = None,
    ) -> bool:
        aws_name = answers.aws_profile or name
        check_name(aws_name, "--aws-profile")
        path = awsfiles.config_path(self.environ)
        command = list(self.command)
        # The AWS CLI runs this line without our environment: name a config that is not the
        # default explicitly (from --config or ELEVATE_CONFIG), or the profile is not found.
        chosen = elevate_config.expanduser().absolute()
        default = config_path(None, {k: v for k, v in self.environ.items() if k != "ELEVATE_CONFIG"})
        if chosen != default.expanduser().absolute():
            command += ["--config", str(chosen)]
        command += ["credential-process", name]
        old = awsfiles.read_bytes(path)
        if answers.write_aws_config is False:
            return False
        # The AWS CLI needs a region of its own: without one `aws --profile NAME ...` fails.
        # A region the user chose replaces the profile's; else one is added only when missing.
        extra = {"region": region} if region else None
        defaults = {"region": fallback_region} if fallback_region and not region else None
        new = awsfiles.set_credential_process(old, aws_name, command, path, extra, defaults)
        if new == old:
            self.notify(f"{path}: {awsfiles.section_header(aws_name)} already runs elevate")
            return False
        write: Optional[bool] = answers.write_aws_config
        self.notify(
            f"the AWS CLI and SDKs can use profile {aws_name!r} through elevate; the change:\n"
            + awsfiles.show_change(old, new, path).rstrip("\n")
        )
        if write is None and prompter is not None:
            write = prompter.confirm(f"Write this to {path}?", True)
        if not write:
            self.notify(f"{path} not changed (pass --aws-config to write it)")
            return False
        awsfiles.replace_file(path, new, expect=old)
        self.notify(
            f"wrote {awsfiles.section_header(aws_name)} to {path}: "
            f"try `aws --profile {aws_name} sts get-caller-identity`"
        )
        return True


def _answer(
    given: Optional[str],
    prompter: Optional[Prompter],
    question: str,
    flag: str,
    default: Optional[Any] = None,
) -> str:
    if given:
        return given
    if prompter is not None:
        while True:
            value = prompter.ask(question, str(default) if default else None).strip()
            if value:
                return value
    if default:
        return str(default)
    raise UsageError(f"missing {question.split(' (')[0].lower()}: pass {flag}")


def existing_profile(path: Path, name: str) -> dict[str, Any]:
    """The raw table of profile `name`, if the config has one (for defaults)."""
    data = read_document(path)
    profiles = data.get("profiles")
    table = profiles.get(name) if isinstance(profiles, dict) else None
    return {k: v for k, v in table.items() if k in _CONFIG_KEYS} if isinstance(table, dict) else {}
