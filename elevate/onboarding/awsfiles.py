"""Byte-preserving edits of the AWS CLI's INI files, ~/.aws/config and ~/.aws/credentials.

configparser would rewrite the whole file (dropping comments, spacing and case), so the
files are never written through it: a section is found by its header line, the text is
spliced, and every other byte is kept. Reading follows configparser's rules as botocore
uses them (full-line `#`/`;` comments, `=` or `:`, indented continuation lines), so we
see the sections the AWS CLI sees.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ..atomic import write_atomically
from ..errors import ConfigError, ElevateError

_HEADER = re.compile(r"\[(?P<header>.+)\]")  # configparser's own, "very permissive" pattern
_COMMENT = ("#", ";")
# Keys that make a ~/.aws/config profile get its credentials some other way.
CREDENTIAL_KEYS = (
    "aws_access_key_id",
    "role_arn",
    "source_profile",
    "credential_source",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
    "login_session",
)


@dataclass
class Option:
    """One `key = value` of a section, with the lines it spans (continuations included)."""

    value: str
    first: int
    last: int


@dataclass
class Section:
    """One `[header]` and the lines up to its last option (trailing blanks and comments excluded)."""

    header: str
    start: int
    last: int
    options: dict[str, Option] = field(default_factory=dict)


class IniText:
    """The lines of an INI file (line endings kept) and the sections found in them."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.path = path
        # surrogateescape: bytes that are not UTF-8 survive the round trip untouched.
        text = data.decode("utf-8", "surrogateescape")
        self.lines: list[str] = re.findall(r"[^\n]*\n|[^\n]+", text)
        self.sections = self._scan()

    def encode(self) -> bytes:
        return "".join(self.lines).encode("utf-8", "surrogateescape")

    def newline(self) -> str:
        """The file's own line ending: CRLF if its first line has one."""
        return "\r\n" if self.lines and self.lines[0].endswith("\r\n") else "\n"

    def find(self, matches: Callable[[str], bool], what: str) -> Optional[Section]:
        found = [s for s in self.sections if matches(s.header)]
        if len(found) > 1:
            raise ConfigError(
                f"{self.path}: {what} appears {len(found)} times (lines "
                f"{', '.join(str(s.start + 1) for s in found)}); the AWS CLI refuses such a file: "
                "merge them by hand"
            )
        return found[0] if found else None

    def _scan(self) -> list[Section]:
        sections: list[Section] = []
        current: Optional[Section] = None
        option: Optional[Option] = None
        indent_level = 0
        for number, line in enumerate(self.lines):
            stripped = line.strip()
            if not stripped or stripped.startswith(_COMMENT):
                continue
            indent = len(line) - len(line.lstrip())
            if current is not None and option is not None and indent > indent_level:
                option.last = current.last = number  # a continuation line of the option
                continue
            indent_level = indent
            header = _HEADER.match(stripped)
            if header:
                current = Section(header.group("header"), number, number)
                sections.append(current)
                option = None
                continue
            if current is None:
                raise ConfigError(
                    f"{self.path}:{number + 1}: a setting before any [section] header; the AWS CLI "
                    "cannot read this file: fix it first"
                )
            key, value = _split_option(stripped)
            option = Option(value, number, number)
            current.options[key.lower()] = option
            current.last = number
        return sections


def _split_option(stripped: str) -> tuple[str, str]:
    cuts = [i for i in (stripped.find("="), stripped.find(":")) if i >= 0]
    if not cuts:
        return stripped, ""
    cut = min(cuts)
    return stripped[:cut].strip(), stripped[cut + 1 :].strip()


def credentials_path(environ: Mapping[str, str]) -> Path:
    """$AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials."""
    return _aws_path(environ, "AWS_SHARED_CREDENTIALS_FILE", "credentials")


def config_path(environ: Mapping[str, str]) -> Path:
    """$AWS_CONFIG_FILE, else ~/.aws/config."""
    return _aws_path(environ, "AWS_CONFIG_FILE", "config")


def _aws_path(environ: Mapping[str, str], variable: str, name: str) -> Path:
    if environ.get(variable):
        return Path(os.path.expandvars(environ[variable])).expanduser()
    return Path(environ.get("HOME", "~")).expanduser() / ".aws" / name


def read_bytes(path: Path) -> Optional[bytes]:
    """The file's bytes, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ElevateError(f"cannot read {path}: {exc.strerror}") from exc


# --- ~/.aws/credentials -------------------------------------------------------------------


@dataclass(frozen=True)
class PlaintextKeys:
    """A key pair as found in a credentials file section (secret kept out of the repr)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


def read_key_pair(data: bytes, profile: str, path: Path) -> PlaintextKeys:
    """The long-term key pair of `[profile]` in a credentials file."""
    section = IniText(data, path).find(lambda h: h == profile, f"[{profile}]")
    if section is None:
        raise ConfigError(f"{path}: no [{profile}] section")
    options = section.options
    if "aws_session_token" in options:
        raise ConfigError(
            f"{path}: [{profile}] holds temporary credentials (aws_session_token): only a long-term "
            "IAM user key can be imported"
        )
    needed = ("aws_access_key_id", "aws_secret_access_key")
    missing = [k for k in needed if k not in options or not options[k].value]
    if missing:
        raise ConfigError(f"{path}: [{profile}] lacks {' and '.join(missing)}")
    return PlaintextKeys(options["aws_access_key_id"].value, options["aws_secret_access_key"].value)


def remove_section(data: bytes, profile: str, path: Path) -> bytes:
    """`data` without `[profile]`'s header and option lines; every other byte kept."""
    ini = IniText(data, path)
    section = ini.find(lambda h: h == profile, f"[{profile}]")
    if section is None:
        raise ConfigError(f"{path}: no [{profile}] section")
    del ini.lines[section.start : section.last + 1]
    return ini.encode()


def lines_holding(data: bytes, secrets: Mapping[str, str]) -> str:
    """Where in `data` any of `secrets` (by what they are) still appears: "the secret on line 4"."""
    found = []
    lines = data.split(b"\n")
    for what, value in secrets.items():
        numbers = [str(n) for n, line in enumerate(lines, 1) if value.encode() in line]
        if numbers:
            found.append(f"the {what} on line{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}")
    return "; ".join(found)


def exposure(path: Path) -> list[str]:
    """What makes a credentials file riskier than it should be: a symlink, others may read it."""
    problems = []
    if os.path.islink(path):
        problems.append(f"{path} is a symlink to {os.path.realpath(path)}; the backup stays beside the link")
    mode = os_mode(path)
    if mode is not None and mode & 0o077:
        problems.append(
            f"{path} is readable by group or others (mode {mode:o}): the key may have been read; "
            "rotate it with `elevate rotate` once it is in the keyring"
        )
    return problems


# --- ~/.aws/config --------------------------------------------------------------------------


def is_profile_header(header: str, name: str) -> bool:
    """Whether a config-file header names profile `name`, as botocore reads it."""
    if header == "default" and name == "default":
        return True
    if not header.startswith("profile"):
        return False
    try:
        parts = shlex.split(header)
    except ValueError:
        return False
    return len(parts) == 2 and parts[0] == "profile" and parts[1] == name


def section_header(name: str) -> str:
    """The ~/.aws/config section header of profile `name` (`[default]` or `[profile NAME]`)."""
    return "[default]" if name == "default" else f"[profile {name}]"


def credential_process(data: Optional[bytes], name: str, path: Path) -> Optional[str]:
    """The credential_process of profile `name` in a config file, if it has one."""
    if data is None:
        return None
    section = IniText(data, path).find(lambda h: is_profile_header(h, name), section_header(name))
    if section is None or "credential_process" not in section.options:
        return None
    return section.options["credential_process"].value


def set_credential_process(
    data: Optional[bytes],
    name: str,
    command: Sequence[str],
    path: Path,
    extra: Optional[Mapping[str, str]] = None,
    defaults: Optional[Mapping[str, str]] = None,
) -> bytes:
    """`data` with `credential_process = COMMAND` (and `extra` keys) in profile `name`.

    Idempotent, the rest kept. An existing profile keeps its other settings (output, ...);
    the `extra` keys (such as region) are added or replaced, the `defaults` added only when
    the profile has no such key. A profile that already gets
    credentials another way (keys, role_arn, SSO) is refused rather than made ambiguous.
    """
    refuse_line_breaks(path, "credential_process", *command, name, *(extra or {}).values())
    refuse_line_breaks(path, "credential_process", *(defaults or {}).values())
    wanted = {"credential_process": shlex.join(command), **(defaults or {}), **(extra or {})}
    ini = IniText(data or b"", path)
    newline = ini.newline()
    section = ini.find(lambda h: is_profile_header(h, name), section_header(name))
    if section is None:
        if ini.lines and not ini.lines[-1].endswith("\n"):
            ini.lines[-1] += newline
        if ini.lines and ini.lines[-1].strip():
            ini.lines.append(newline)
        ini.lines += [section_header(name) + newline]
        ini.lines += [f"{key} = {value}{newline}" for key, value in wanted.items()]
        return ini.encode()
    clashing = [k for k in CREDENTIAL_KEYS if k in section.options]
    if clashing:
        raise ConfigError(
            f"{path}: {section_header(name)} already gets credentials from {', '.join(clashing)}: "
            "choose another AWS profile name (--aws-profile NAME)"
        )
    result = ini.encode()
    for key, value in wanted.items():
        if key in (defaults or {}) and key not in (extra or {}) and key in section.options:
            continue
        result = _set_option(result, name, key, value, path)
    return result


def _set_option(data: bytes, name: str, key: str, value: str, path: Path) -> bytes:
    """`data` with `key = value` in the existing section of profile `name`."""
    ini = IniText(data, path)
    newline = ini.newline()
    section = ini.find(lambda h: is_profile_header(h, name), section_header(name))
    if section is None:  # pragma: no cover - the caller found it in the same bytes
        raise ConfigError(f"{path}: {section_header(name)} disappeared while editing")
    line = f"{key} = {value}"
    existing = section.options.get(key)
    if existing is not None:
        if existing.value == value and existing.first == existing.last:
            return data
        original = ini.lines[existing.first]
        indent = original[: len(original) - len(original.lstrip())]
        ending = newline if original.endswith("\n") else ""
        ini.lines[existing.first : existing.last + 1] = [indent + line + ending]
        return ini.encode()
    after = section.last
    if not ini.lines[after].endswith("\n"):
        ini.lines[after] += newline
    ini.lines.insert(after + 1, line + newline)
    return ini.encode()


# --- writing --------------------------------------------------------------------------------


def refuse_line_breaks(path: Path, what: str, *values: str) -> None:
    """A value with CR, LF or NUL would start a new line (a new section, a new command) in the file."""
    for value in values:
        if any(char in value for char in "\r\n\0"):
            raise ConfigError(
                f"{path}: refusing to write {what}: a value contains a line break or NUL "
                f"({value[:40]!r}...), which would add lines of its own to the file"
            )


def show_change(old: Optional[bytes], new: bytes, path: Path) -> str:
    """A unified diff of the change, for the user to see before it is written."""
    before = (old or b"").decode("utf-8", "replace").splitlines(keepends=True)
    after = new.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(before, after, f"{path} (now)", f"{path} (new)")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def replace_file(path: Path, data: bytes, *, expect: Optional[bytes] = None, new_mode: int = 0o600) -> None:
    """Replace `path` atomically (mkstemp, fsync, rename), keeping an existing file's mode.

    A symlinked file is written through (its target is replaced, the link kept). With
    `expect`, the write is refused if the file changed since it was read.
    """
    target = Path(os.path.realpath(path))

    def unchanged() -> None:
        if expect is not None and read_bytes(target) != expect:
            raise ElevateError(f"{path} changed while elevate was editing it: nothing written; run again")

    try:
        mode = os_mode(target)
        if mode is None:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            mode = new_mode
        write_atomically(target, data, mode, before_replace=unchanged)
    except OSError as exc:
        raise ElevateError(f"cannot write {path}: {exc.strerror}") from exc


def write_backup(path: Path, data: bytes, now: Optional[datetime] = None) -> Path:
    """A 0600 copy of `data` beside `path`, under a new name that says when it was made."""
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    # Beside the path as given, not a symlink's target: the target may sit somewhere shared.
    target = path.absolute()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for attempt in range(100):
        suffix = f"-{attempt}" if attempt else ""
        backup = target.with_name(f"{target.name}.elevate-backup-{stamp}{suffix}")
        try:
            fd = os.open(backup, flags, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ElevateError(f"cannot write a backup of {path}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(backup)
            raise ElevateError(f"cannot write a backup of {path}: {exc.strerror}") from exc
        return backup
    raise ElevateError(f"cannot write a backup of {path}: too many backups of {target.name} already")


def os_mode(path: Path) -> Optional[int]:
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None
