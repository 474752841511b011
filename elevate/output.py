"""Renderers: credentials to text for one shell or format. Pure functions, no I/O.

Every value is quoted for its target so that no value can run code, whatever bytes it
holds; a value a format cannot carry safely is refused rather than mangled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Optional

from .errors import OutputError
from .models import SessionCredentials

FORMATS = ("bash", "zsh", "fish", "powershell", "dotenv", "json")


def variables(creds: SessionCredentials, region: Optional[str], profile: str) -> dict[str, str]:
    """The environment an elevated shell or command gets, in a stable order."""
    env = {
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_SESSION_TOKEN": creds.session_token,
        "AWS_CREDENTIAL_EXPIRATION": creds.expiration_iso(),
    }
    if region:
        env["AWS_REGION"] = region
        env["AWS_DEFAULT_REGION"] = region
    env["ELEVATE_PROFILE"] = profile
    return env


def quote_posix(value: str) -> str:
    """Single quotes, each embedded ' written as '\\'' (bash, zsh, sh)."""
    if "\0" in value:
        raise OutputError("a value contains a NUL byte, which no shell variable can hold")
    return "'" + value.replace("'", "'\\''") + "'"


def quote_fish(value: str) -> str:
    """fish single quotes: only \\\\ and \\' are special inside them."""
    if "\0" in value:
        raise OutputError("a value contains a NUL byte, which no shell variable can hold")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# PowerShell treats the typographic single quotes as quote characters too.
_PS_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")


def quote_powershell(value: str) -> str:
    """A verbatim single-quoted string; every kind of single quote doubled."""
    if "\0" in value:
        raise OutputError("a value contains a NUL byte, which no environment variable can hold")
    for mark in _PS_QUOTES:
        value = value.replace(mark, mark + mark)
    return "'" + value + "'"


def render_posix(env: Mapping[str, str]) -> str:
    return "".join(f"export {name}={quote_posix(value)}\n" for name, value in env.items())


def render_fish(env: Mapping[str, str]) -> str:
    return "".join(f"set -gx {name} {quote_fish(value)}\n" for name, value in env.items())


def render_powershell(env: Mapping[str, str]) -> str:
    return "".join(f"$env:{name} = {quote_powershell(value)}\n" for name, value in env.items())


def render_dotenv(env: Mapping[str, str]) -> str:
    """KEY='value' lines; dotenv dialects disagree on escapes, so refuse what needs one."""
    lines = []
    for name, value in env.items():
        # python-dotenv expands ${VAR} even inside single quotes, so $ is refused too.
        if any(c in value for c in "'\n\r\0\\$"):
            raise OutputError(
                f"{name} holds a quote, backslash, $ or line break, which dotenv cannot carry safely"
            )
        lines.append(f"{name}='{value}'\n")
    return "".join(lines)


def render_json(env: Mapping[str, str]) -> str:
    for name, value in env.items():
        if "\0" in value:
            raise OutputError(f"{name} contains a NUL byte, which no environment variable can hold")
    return json.dumps(dict(env), indent=2) + "\n"


RENDERERS: dict[str, Callable[[Mapping[str, str]], str]] = {
    "bash": render_posix,
    "zsh": render_posix,
    "fish": render_fish,
    "powershell": render_powershell,
    "dotenv": render_dotenv,
    "json": render_json,
}


def render(fmt: str, env: Mapping[str, str]) -> str:
    return RENDERERS[fmt](env)


def default_format(shell: Optional[str]) -> str:
    """The format for $SHELL: fish, zsh, PowerShell, else POSIX (bash)."""
    name = (shell or "").replace("\\", "/").rsplit("/", 1)[-1].lower()
    if name.endswith(".exe"):
        name = name[:-4]
    if name == "fish":
        return "fish"
    if name == "zsh":
        return "zsh"
    if name in ("pwsh", "powershell"):
        return "powershell"
    if name in ("csh", "tcsh"):
        raise OutputError(
            f"$SHELL is {name}, and elevate prints no csh syntax: run `elevate exec PROFILE` (a new "
            f"{name} with the credentials), or `elevate exec PROFILE -- COMMAND`, or pass --format"
        )
    return "bash"


def credential_process_json(creds: SessionCredentials) -> str:
    """Exactly one JSON object per the credential_process contract."""
    return (
        json.dumps(
            {
                "Version": 1,
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "SessionToken": creds.session_token,
                "Expiration": creds.expiration_iso(),
            }
        )
        + "\n"
    )
