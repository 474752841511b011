"""The key commands: keys add, list, remove and import, and rotate."""

from __future__ import annotations

import sys
from typing import Optional

import click

from .. import cache, keyfile, keystore, ui
from ..errors import ElevateError, UsageError
from ..models import Profile
from ..onboarding.configure import Onboarding
from ..onboarding.rotate import Rotator
from .app import App, WholeHelpGroup, complete_profiles, stdin_lines


@click.group("keys", cls=WholeHelpGroup)
def keys_group() -> None:
    """Manage the long-term IAM keys held in the OS keyring."""


@keys_group.command("add")
@click.argument("name")
@click.option("--force", is_flag=True, help="Replace a key set already stored as NAME.")
@click.pass_obj
def keys_add(app: App, name: str, force: bool) -> None:
    """Store a key pair as NAME: prompted on a terminal, else two lines on stdin.

    An existing key set NAME is replaced only with --force, or when confirmed on a terminal.
    """
    keystore.check_name(name)
    if not force and keystore.has_keys(name):
        question = f"A key set {name!r} is already stored. Replace it?"
        if not (sys.stdin.isatty() and click.confirm(question, default=False, err=True)):
            raise UsageError(
                f"a key set {name!r} is already stored: pass --force to replace it, or choose "
                "another NAME (rotate a key with `elevate rotate NAME`)"
            )
    if sys.stdin.isatty():
        key_id = click.prompt("Access key ID", err=True)
        secret = click.prompt("Secret access key", hide_input=True, err=True)
    else:
        key_id, secret = stdin_lines(2, "the access key ID, then the secret access key")
    keys = keystore.check_keys(key_id, secret)
    keystore.put_keys(name, keys)
    cache.forget_key_set(name, app.invocation)  # no entry or MFA session of a replaced key survives
    ui.inform(f"stored {keystore.mask(keys.access_key_id)} as {name!r} in {keystore.backend_name()}")


@keys_group.command("list")
def keys_list() -> None:
    """List stored key sets with masked key IDs."""
    found = keystore.list_key_sets()
    if not found:
        ui.stderr(f"no key sets stored in {keystore.backend_name()}: add one with `elevate keys add NAME`")
    for name, keys in found:
        created = keys.created.strftime("%Y-%m-%d") if keys.created else "unknown"
        click.echo(f"{name}\t{keystore.mask(keys.access_key_id)}\tadded {created}")


@keys_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Delete without asking (for scripts).")
@click.pass_obj
def keys_remove(app: App, name: str, yes: bool) -> None:
    """Delete the key set NAME from the keyring (asks first; --yes does not)."""
    keystore.check_name(name)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"not removing {name!r}: pass --yes to delete it without a terminal")
        question = f"Delete the key set {name!r}? Elevation with it stops working until a key is added again"
        if not click.confirm(question, default=False, err=True):
            raise ElevateError(f"{name!r} not removed")
    keystore.delete_keys(name)
    cache.forget_key_set(name, app.invocation)
    ui.stderr(f"removed {name!r}")


@keys_group.command("lock")
def keys_lock() -> None:
    """Forget the encrypted keyring file's unlock: the next command asks for its passphrase."""
    forgotten = keyfile.lock()
    if forgotten:
        ui.stderr(f"locked {', '.join(forgotten)}: the next command asks for its passphrase")
    else:
        ui.stderr("nothing to lock: no encrypted keyring file is unlocked in this login session")


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
    Onboarding(app.invocation, notify=ui.inform).import_keys(name, aws_profile, delete_plaintext)


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


@click.command("rotate")
@click.argument("name")
@click.option(
    "--profile",
    "profile_name",
    metavar="PROFILE",
    shell_complete=complete_profiles,
    help="Profile for the MFA device and region.",
)
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
    Rotator(app.invocation, notify=ui.inform).rotate(name, profile, token, mfa_serial)
    cache.forget_key_set(name, app.invocation)  # the old key's entries and MFA session
