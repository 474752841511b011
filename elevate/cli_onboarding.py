"""Onboarding and key-hygiene commands: configure, keys import, rotate, mfa enroll, doctor, completion.

Registered on elevate.cli's groups when that module imports this one. As in cli.py, only
translation happens here: options -> core call -> message; errors reach `main` as
ElevateError and become one line there.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, Optional

import click
from click.shell_completion import CompletionItem, get_completion_class

from .cli import App, cli, keys_group, stdin_lines
from .config import config_path, load_config
from .doctor import Doctor, failed, render
from .enroll import Enroller, NewDevice, render_qr
from .errors import ElevateError, UsageError
from .models import Profile, SourceKeys
from .onboarding import ConfigureAnswers, Identity, Onboarding
from .rotate import Rotator

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_ELEVATE_COMPLETE"


def _say(message: str) -> None:
    click.echo(f"elevate: {message}", err=True)


def _interactive(no_input: bool) -> bool:
    return not no_input and sys.stdin.isatty()


def _complete_profiles(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Profile names from the config file, for shell completion; none when it cannot be read."""
    try:
        option = ctx.find_root().params.get("config_option")
        profiles = load_config(config_path(option, dict(os.environ))).profiles
    except ElevateError:
        return []
    return [CompletionItem(name) for name in sorted(profiles) if name.startswith(incomplete)]


class _TerminalPrompter:
    """The wizard's questions on stderr, the answers typed on the terminal (stdin)."""

    def ask(self, question: str, default: Optional[str] = None) -> str:
        return str(click.prompt(question, default=default, err=True, show_default=default is not None))

    def secret(self, question: str) -> str:
        return str(click.prompt(question, hide_input=True, err=True))

    def confirm(self, question: str, default: bool) -> bool:
        return click.confirm(question, default=default, err=True)


def _show_device(show_secret: bool) -> Callable[[NewDevice], None]:
    def show(device: NewDevice) -> None:
        click.echo(
            f"Scan this QR code with your authenticator app ({device.user_name}, {device.serial}):",
            err=True,
        )
        click.echo(render_qr(device.uri), err=True, nl=False)
        if show_secret:
            click.echo(f"otpauth URI: {device.uri}\nsecret key: {device.seed}", err=True)
        else:
            click.echo("No camera? `elevate mfa enroll --show-secret` prints the key to type in.", err=True)

    return show


def _read_codes(
    code1: Optional[str], code2: Optional[str], interactive: bool
) -> Callable[[], tuple[str, str]]:
    def read() -> tuple[str, str]:
        if code1 is not None and code2 is not None:
            return code1, code2
        if interactive:
            first = click.prompt("Code shown now", err=True)
            second = click.prompt("The next code (wait until it changes)", err=True)
            return str(first), str(second)
        first, second = stdin_lines(2, "two consecutive MFA codes")
        return first, second

    return read


# --- configure ------------------------------------------------------------------------------


@cli.command("configure")
@click.argument("profile", required=False, shell_complete=_complete_profiles)
@click.option("--role-arn", metavar="ARN", help="The role to elevate to (from the admin).")
@click.option(
    "--from-stack", metavar="STACK", help="Read the role ARN from this CloudFormation stack's outputs."
)
@click.option(
    "--stack-output", default="RoleArn", show_default=True, help="The stack output holding the ARN."
)
@click.option("--mfa-serial", metavar="SERIAL", help="The MFA device (default: the one registered to you).")
@click.option("--region", metavar="REGION", help="Region for STS (written into the profile).")
@click.option(
    "--keys", "key_set", metavar="NAME", help="Key set name in the keyring (default: the profile's)."
)
@click.option("--stored-keys", is_flag=True, help="Use the key set already in the keyring.")
@click.option("--from-aws-profile", metavar="P", help="Import the key pair of [P] in ~/.aws/credentials.")
@click.option("--delete-plaintext", is_flag=True, help="With --from-aws-profile: remove [P] from the file.")
@click.option("--default/--no-default", "make_default", default=None, help="Make it default_profile.")
@click.option("--aws-profile", metavar="NAME", help="Profile name in ~/.aws/config (default: PROFILE).")
@click.option(
    "--aws-config/--no-aws-config",
    "write_aws_config",
    default=None,
    help="Write the credential_process profile to ~/.aws/config (asked when interactive).",
)
@click.option("--no-input", is_flag=True, help="Never ask: missing answers are errors naming the flag.")
@click.pass_obj
def configure_cmd(
    app: App,
    profile: Optional[str],
    role_arn: Optional[str],
    from_stack: Optional[str],
    stack_output: str,
    mfa_serial: Optional[str],
    region: Optional[str],
    key_set: Optional[str],
    stored_keys: bool,
    from_aws_profile: Optional[str],
    delete_plaintext: bool,
    make_default: Optional[bool],
    aws_profile: Optional[str],
    write_aws_config: Optional[bool],
    no_input: bool,
) -> None:
    """Set up a profile: store keys, find the role and MFA device, write the config.

    Asks for what is missing on a terminal; with --no-input (or no terminal) every answer
    comes from flags, and the keys from --stored-keys, --from-aws-profile or two lines
    on stdin (access key ID, secret access key).
    """
    if delete_plaintext and not from_aws_profile:
        raise UsageError("--delete-plaintext needs --from-aws-profile P")
    if role_arn and from_stack:
        raise UsageError("pass --role-arn or --from-stack, not both")
    interactive = _interactive(no_input)
    keys: Optional[tuple[str, str]] = None
    if not interactive and not stored_keys and not from_aws_profile and not sys.stdin.isatty():
        key_id, secret = stdin_lines(
            2,
            "the access key ID and the secret access key (or pass --stored-keys for keys already "
            "in the keyring, or --from-aws-profile P)",
        )
        keys = (key_id, secret)
    answers = ConfigureAnswers(
        profile=profile,
        role_arn=role_arn,
        from_stack=from_stack,
        stack_output=stack_output,
        mfa_serial=mfa_serial,
        region=region,
        key_set=key_set,
        keys=keys,
        stored_keys=stored_keys,
        from_aws_profile=from_aws_profile,
        delete_plaintext=delete_plaintext,
        make_default=make_default,
        aws_profile=aws_profile,
        write_aws_config=write_aws_config,
    )
    environ = app.environ
    prompter = _TerminalPrompter() if interactive else None

    def enroll_device(source: SourceKeys, identity: Identity, api_region: str) -> str:
        enroller = Enroller(environ=environ, notify=_say)
        return enroller.enroll(
            source, api_region, _show_device(False), _read_codes(None, None, True), identity
        )

    result = Onboarding(environ=environ, notify=_say).configure(
        answers,
        config_path(app.config_option, environ),
        prompter,
        enroll_device if interactive else None,
        app.config_option,
    )
    _say(f"done: try `elevate exec {result.profile} -- aws sts get-caller-identity`")


# --- keys import ----------------------------------------------------------------------------


@keys_group.command("import")
@click.argument("name")
@click.option(
    "--from-aws-profile", "aws_profile", required=True, metavar="P", help="The [P] section to import."
)
@click.option(
    "--delete-plaintext",
    is_flag=True,
    help="Then remove [P] from the credentials file (a 0600 backup is kept beside it).",
)
@click.pass_obj
def keys_import(app: App, name: str, aws_profile: str, delete_plaintext: bool) -> None:
    """Move a key pair from ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE) into the keyring as NAME."""
    Onboarding(environ=app.environ, notify=_say).import_keys(name, aws_profile, delete_plaintext)


# --- rotate ---------------------------------------------------------------------------------


def _profile_for_key_set(app: App, name: str, requested: Optional[str]) -> Optional[Profile]:
    if requested:
        return app.profile(requested)
    try:
        profiles = app.config().profiles
    except ElevateError:
        return None
    if name in profiles and profiles[name].key_set == name:
        return profiles[name]
    return next((p for p in profiles.values() if p.key_set == name), None)


@cli.command("rotate")
@click.argument("name")
@click.option("--profile", "profile_name", metavar="PROFILE", help="Profile for the MFA device and region.")
@click.option(
    "--mfa-serial", metavar="SERIAL", help="The MFA device (default: the profile's, else your only one)."
)
@click.option("-t", "--token", metavar="CODE", help="The current six-digit MFA code (else a prompt).")
@click.pass_obj
def rotate_cmd(
    app: App, name: str, profile_name: Optional[str], mfa_serial: Optional[str], token: Optional[str]
) -> None:
    """Replace the stored key set NAME with a new access key, then delete the old key.

    Key management needs MFA, so this asks for a code and works in an MFA session.
    """
    profile = _profile_for_key_set(app, name, profile_name)
    Rotator(environ=app.environ, notify=_say).rotate(name, profile, token, mfa_serial)


# --- mfa enroll -----------------------------------------------------------------------------


@cli.group("mfa")
def mfa_group() -> None:
    """Set up the MFA device that elevation needs (no command here ever shows a code)."""


@mfa_group.command("enroll")
@click.argument("name", shell_complete=_complete_profiles)
@click.option("--keys", "key_set", metavar="NAME", help="Key set to use (default: the profile's, else NAME).")
@click.option("--region", metavar="REGION", help="Region for the STS and IAM calls.")
@click.option("--show-secret", is_flag=True, help="Also print the otpauth URI and the secret key (stderr).")
@click.option("--code1", metavar="CODE", help="The first code (else asked, or line 1 of stdin).")
@click.option("--code2", metavar="CODE", help="The next code (else asked, or line 2 of stdin).")
@click.pass_obj
def mfa_enroll(
    app: App,
    name: str,
    key_set: Optional[str],
    region: Optional[str],
    show_secret: bool,
    code1: Optional[str],
    code2: Optional[str],
) -> None:
    """Create and enable a virtual MFA device for you; write mfa_serial into profile NAME.

    The QR code is drawn in the terminal; two consecutive codes from the app are checked
    here before AWS is asked to enable the device.
    """
    if (code1 is None) != (code2 is None):
        raise UsageError("pass both --code1 and --code2, or neither")
    environ = app.environ
    Enroller(environ=environ, notify=_say).enroll_profile(
        name,
        config_path(app.config_option, environ),
        _show_device(show_secret),
        _read_codes(code1, code2, _interactive(False)),
        key_set=key_set,
        region=region,
    )


# --- doctor ---------------------------------------------------------------------------------


@cli.command("doctor")
@click.argument("profile", required=False, shell_complete=_complete_profiles)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report on stdout.")
@click.pass_obj
def doctor_cmd(app: App, profile: Optional[str], as_json: bool) -> None:
    """Check the set-up of PROFILE, one line per check, with the fix for each failure."""
    environ = app.environ
    checks = Doctor(environ=environ).run(config_path(app.config_option, environ), profile)
    bad = failed(checks)
    if as_json:
        report = {"ok": not bad, "checks": [c.as_dict() for c in checks]}
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render(checks), nl=False)
    if bad:
        names = ", ".join(c.name for c in bad)
        raise ElevateError(f"{len(bad)} check{'s' if len(bad) > 1 else ''} failed: {names}")


# --- completion -----------------------------------------------------------------------------


@cli.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell: str) -> None:
    """Print the completion script for SHELL: eval "$(elevate completion bash)".

    Same as click's `_ELEVATE_COMPLETE=bash_source elevate` (zsh_source, fish_source).
    """
    completion_class = get_completion_class(shell)
    if completion_class is None:  # pragma: no cover - SHELLS are click's built-in ones
        raise UsageError(f"no completion for {shell}")
    click.echo(completion_class(cli, {}, "elevate", COMPLETE_VAR).source())
