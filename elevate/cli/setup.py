"""The set-up commands: configure, mfa enroll, doctor and completion."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Optional

import click
from click.shell_completion import get_completion_class

from .. import core, ui
from ..aws import Identity
from ..errors import ElevateError, UsageError
from ..models import SourceKeys
from ..onboarding.configure import ConfigureAnswers, Onboarding
from ..onboarding.doctor import Doctor, failed, render
from ..onboarding.enroll import Enroller, NewDevice, render_qr
from ..onboarding.uninstall import Uninstaller
from .app import App, WholeHelpGroup, complete_profiles, interactive, stdin_lines

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_ELEVATE_COMPLETE"


class _TerminalPrompter:
    """The wizard's questions on stderr, the answers typed on the terminal (stdin)."""

    def ask(self, question: str, default: Optional[str] = None) -> str:
        return str(click.prompt(question, default=default, err=True, show_default=default is not None))

    def secret(self, question: str) -> str:
        return str(click.prompt(question, hide_input=True, err=True))

    def confirm(self, question: str, default: bool) -> bool:
        return click.confirm(question, default=default, err=True)


def _show_device(show_secret: bool, name: str, hint: bool = True) -> Callable[[NewDevice], None]:
    """How a new device is shown: its QR code, and its secret key when asked for; else (`hint`)
    how to ask for it."""

    def show(device: NewDevice) -> None:
        ui.stderr(f"Scan this QR code with your authenticator app ({device.user_name}, {device.serial}):")
        ui.stderr(render_qr(device.uri))
        if show_secret:
            ui.stderr(f"otpauth URI: {device.uri}\nsecret key: {device.seed}")
        elif hint:
            ui.stderr(f"No camera? `elevate mfa enroll {name} --show-secret` prints the key to type in.")

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


@click.command("configure")
@click.argument("profile", required=False, shell_complete=complete_profiles)
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
@click.option(
    "--show-secret", is_flag=True, help="When it enrols an MFA device: also print its secret key (stderr)."
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
    show_secret: bool,
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
    asking = interactive(no_input)
    keys: Optional[tuple[str, str]] = None
    if not asking and not stored_keys and not from_aws_profile and not sys.stdin.isatty():
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
    prompter = _TerminalPrompter() if asking else None

    def enroll_device(source: SourceKeys, identity: Identity, api_region: str) -> str:
        # Asked before the device exists: nobody has to interrupt enrolment to get the key.
        typed = show_secret or click.confirm(
            "No camera? Show the secret key to type into the app as well as the QR code?",
            default=False,
            err=True,
        )
        enroller = Enroller(app.invocation, notify=ui.inform)
        return enroller.enroll(
            source,
            api_region,
            _show_device(typed, profile or "PROFILE", hint=False),
            _read_codes(None, None, True),
            identity,
        )

    result = Onboarding(app.invocation, notify=ui.inform).configure(
        answers,
        app.config_path,
        prompter,
        enroll_device if asking else None,
    )
    ui.inform(f"done: try `elevate exec {result.profile} -- aws sts get-caller-identity`")


# --- mfa enroll -----------------------------------------------------------------------------


@click.group("mfa", cls=WholeHelpGroup)
def mfa_group() -> None:
    """Set up the MFA device that elevation needs (no command here ever shows a code)."""


@mfa_group.command("enroll")
@click.argument("name", shell_complete=complete_profiles)
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
    Enroller(app.invocation, notify=ui.inform).enroll_profile(
        name,
        app.config_path,
        _show_device(show_secret, name),
        _read_codes(code1, code2, interactive(False)),
        key_set=key_set,
        region=region,
    )


# --- doctor ---------------------------------------------------------------------------------


@click.command("doctor")
@click.argument("profile", required=False, shell_complete=complete_profiles)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report on stdout.")
@click.pass_obj
def doctor_cmd(app: App, profile: Optional[str], as_json: bool) -> None:
    """Check the set-up of PROFILE, one line per check, with the fix for each failure."""
    checks = Doctor(app.invocation).run(app.config_path, profile)
    bad = failed(checks)
    if as_json:
        report = {"ok": not bad, "checks": [c.as_dict() for c in checks]}
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render(checks), nl=False)
    if bad:
        names = ", ".join(c.name for c in bad)
        raise ElevateError(f"{len(bad)} check{'s' if len(bad) > 1 else ''} failed: {names}")


# --- uninstall ------------------------------------------------------------------------------


@click.command("uninstall")
@click.option("--yes", is_flag=True, help="Remove without asking (for scripts).")
@click.pass_obj
def uninstall_cmd(app: App, yes: bool) -> None:
    """Remove elevate: key sets, its ~/.aws/config blocks, config, cache, backups, the program.

    Lists what it will remove and asks once (--yes skips the question); then lists what it
    removed and what it left.
    """
    environ = app.environ
    uninstaller = Uninstaller(
        environ=environ, notify=ui.inform, clear=lambda p: core.clear(p, app.invocation)
    )
    plan = uninstaller.plan(app.config_option)
    planned = plan.lines()
    if not planned:
        ui.inform("nothing of elevate's found to remove")
    else:
        ui.inform("elevate uninstall will remove:\n" + "\n".join(f"  {line}" for line in planned))
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("nothing removed: pass --yes to remove all of this without a terminal")
            if not click.confirm("Remove all of this?", default=False, err=True):
                raise ElevateError("nothing removed")
        removed = uninstaller.run(plan)
        ui.inform("removed:\n" + "\n".join(f"  {line}" for line in removed))
    ui.inform(
        "left:\n" + "\n".join(f"  {line}" for line in plan.left)
        if plan.left
        else "left: nothing of elevate's"
    )


# --- completion -----------------------------------------------------------------------------


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_cmd(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL: eval "$(elevate completion bash)".

    Same as click's `_ELEVATE_COMPLETE=bash_source elevate` (zsh_source, fish_source).
    """
    completion_class = get_completion_class(shell)
    if completion_class is None:  # pragma: no cover - SHELLS are click's built-in ones
        raise UsageError(f"no completion for {shell}")
    root = ctx.find_root().command
    click.echo(completion_class(root, {}, "elevate", COMPLETE_VAR).source())
