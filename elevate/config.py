"""Find the TOML config, parse it and validate every profile; pick the profile to use."""

from __future__ import annotations

import os
import re
import shlex
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import disk
from .disk import DEFAULT_REFRESH_BEFORE
from .errors import ConfigError, UsageError
from .models import CACHE_MODES, MFA_PROMPTS, Origin, Profile, Scope
from .scopes import PARTITION, parse_scopes, resolve, valid_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

_PARTITION = PARTITION
ROLE_ARN = re.compile(rf"^arn:{_PARTITION}:iam::\d{{12}}:role(?:/[\w+=,.@-]+)+$", re.ASCII)
MFA_ARN = re.compile(rf"^arn:{_PARTITION}:iam::\d{{12}}:mfa(?:/[\w+=,.@-]+)+$", re.ASCII)
HARDWARE_SERIAL = re.compile(r"^[A-Za-z0-9]{9,64}$", re.ASCII)
REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$", re.ASCII)
STS_NAME = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,63}$", re.ASCII)
NAME_RULE = "must be 1-64 letters, digits or _.@+=-"

DEFAULT_REGION = "us-east-1"
MAX_CONFIG_BYTES = 1 << 20  # a real config is a few hundred bytes
MAX_DEPTH = 8  # elevate's own schema nests two deep
_TOP_KEYS = {"default_profile", "profiles", "scopes"}


@dataclass(frozen=True)
class _Field:
    kind: type
    low: Optional[int] = None
    high: Optional[int] = None


_FIELDS: dict[str, _Field] = {
    "role_arn": _Field(str),
    "mfa_serial": _Field(str),
    "region": _Field(str),
    "duration_seconds": _Field(int, 900, 43200),
    "role_session_name": _Field(str),
    "source_identity": _Field(str),
    "keys": _Field(str),
    "mfa_process": _Field(str),
    "cache": _Field(str),
    "refresh_before_seconds": _Field(int, 0, 43200),
    "mfa_session_seconds": _Field(int, 900, 129600),
    "max_key_age_days": _Field(int, 1, 3650),
    "mfa_prompt": _Field(str),
    "scope": _Field(str),
}
_REQUIRED = ("role_arn", "mfa_serial")


@dataclass(frozen=True)
class Config:
    """The parsed config file: its path, profiles by name and the optional default."""

    path: Path
    profiles: Mapping[str, Profile]
    default_profile: Optional[str] = None
    # Why default_profile cannot be used (it names no profile); an error only when it is used.
    default_problem: Optional[str] = None
    # The [scopes.NAME] tables (built-ins are not listed: elevate.scopes.resolve knows them).
    scopes: Mapping[str, Scope] = field(default_factory=dict)


def config_path(explicit: Optional[str], environ: Mapping[str, str]) -> Path:
    """--config, else $ELEVATE_CONFIG, else $XDG_CONFIG_HOME/elevate/config.toml (elevate.disk's rule)."""
    return Path(disk.config_path(explicit, environ))


def load_config(path: Path) -> Config:
    """Read and validate the config file at `path`, which must be the user's own (see read_trusted)."""
    return parse_config(read_trusted(path), path)


def read_trusted(path: Path) -> str:
    """The text of the config file, refused unless only its owner (the user, or root) can change it.

    The config names a command to run (mfa_process) and the role to assume, so a file, or a
    directory holding it, that another user could write would run their command as ours.
    A symlink is followed, and both the link's directory and the target's are checked
    (elevate.disk's rules, which the cache hit applies too).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no config file; create it (see the README's quickstart) "
            "or point --config / ELEVATE_CONFIG at one"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: the config is not a regular file")
        _check_owner(path, info, "the config file")
        for directory in disk.config_directories(str(path)):
            try:
                _check_owner(Path(directory), os.stat(directory), "the config file's directory")
            except OSError as exc:
                raise ConfigError(
                    f"{directory}: cannot check the config's directory: {exc.strerror}"
                ) from exc
        data = os.read(fd, MAX_CONFIG_BYTES + 1)
        while len(data) <= MAX_CONFIG_BYTES:
            more = os.read(fd, MAX_CONFIG_BYTES + 1 - len(data))
            if not more:
                break
            data += more
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: the config file is over {MAX_CONFIG_BYTES // 1024} KiB: refusing it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the config file is not UTF-8 (byte {exc.start})") from exc


def _check_owner(path: Path, info: os.stat_result, what: str) -> None:
    """Refuse `path` unless it belongs to us (or root) and group and others cannot write it."""
    problem = disk.config_problem(info)
    if problem == "owner":
        raise ConfigError(
            f"{path}: {what} belongs to another user (uid {info.st_uid}), who could make elevate "
            "run their commands as you: use a config of your own"
        )
    if problem == "writable":
        raise ConfigError(
            f"{path}: {what} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}), "
            f"who could make elevate run their commands as you: run `chmod go-w {path}`"
        )


def read_document(path: Path) -> dict[str, Any]:
    """The config's TOML document, read under read_trusted's rules but not yet validated
    ({} when there is no file): for the commands that edit or diagnose a config that may not
    validate yet (configure, mfa enroll, doctor)."""
    try:
        text = read_trusted(path)
    except ConfigError:
        if not os.path.lexists(path):
            return {}
        raise
    return parse_document(text, path)


def parse_document(text: str, path: Path) -> dict[str, Any]:
    """Config text as a TOML document, bounded (size, nesting) before tomllib reads it: the
    one place a whole config is parsed. A ConfigError names the file."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: the config is larger than {MAX_CONFIG_BYTES // 1024} KiB: refusing it")
    depth, _ = _scan(text)
    if depth > MAX_DEPTH:
        raise ConfigError(f"{path}: the config nests arrays or tables {depth} deep (at most {MAX_DEPTH})")
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (RecursionError, MemoryError) as exc:
        raise ConfigError(f"{path}: the config is too deeply nested or too large to read") from exc
    return data


def parse_config(text: str, path: Path) -> Config:
    """Parse config text; every error names the file, profile, key and (when known) line."""
    data = parse_document(text, path)
    where = _Locator(path, text)
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"{where.at(None, key)}: unknown key {key!r} "
                "(expected default_profile, [profiles.NAME] and [scopes.NAME] tables)"
            )
    raw_profiles = data.get("profiles", {})
    if not isinstance(raw_profiles, dict):
        raise ConfigError(f"{where.at(None, 'profiles')}: 'profiles' must be a table of [profiles.NAME]")
    # A policy file decides what the credentials can do: it is read under the config's own trust rules.
    scopes = parse_scopes(data.get("scopes", {}), path, read_trusted)
    profiles = {name: _profile(name, raw, where, scopes) for name, raw in raw_profiles.items()}
    default = data.get("default_profile")
    if default is not None:
        if not isinstance(default, str):
            raise ConfigError(f"{where.at(None, 'default_profile')}: default_profile must be a string")
        if default not in profiles:
            problem = (
                f"{where.at(None, 'default_profile')}: default_profile {default!r} is not a "
                f"profile; known profiles: {_known(profiles)}"
            )
            return Config(
                path=path, profiles=profiles, default_profile=default, default_problem=problem, scopes=scopes
            )
    return Config(path=path, profiles=profiles, default_profile=default, scopes=scopes)


def _scan(text: str) -> tuple[int, list[bool]]:
    """One pass over TOML text, outside strings and comments: the deepest nesting of [ and { (a
    cheap bound before parsing) and, for each line, whether it begins outside any string, array or
    inline table (so text inside a value never passes for a key)."""
    starts = [True]
    depth = deepest = 0
    quote = ""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\n":
            starts.append(not quote and depth == 0)
            i += 1
            continue
        if quote:
            if text.startswith(quote, i):
                i += len(quote)
                quote = ""
                continue
            if char == "\\" and quote[0] == '"':
                i += 1 if text[i + 1 : i + 2] == "\n" else 2  # a line-ending backslash: the newline counts
                continue
        elif char in "\"'":
            quote = char * 3 if text.startswith(char * 3, i) else char
            i += len(quote)
            continue
        elif char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
        i += 1
    return deepest, starts


def chosen_name(
    requested: Optional[str], environ: Mapping[str, str], default: Optional[str]
) -> Optional[str]:
    """The one profile-selection rule: the PROFILE named (argument or --profile), else
    $ELEVATE_PROFILE, else the config's default_profile; None when none is set."""
    return requested or environ.get("ELEVATE_PROFILE") or default


def select_profile(config: Config, requested: Optional[str], environ: Mapping[str, str]) -> Profile:
    """The profile chosen_name picks, validated; a ConfigError saying how to choose one."""
    name = chosen_name(requested, environ, config.default_profile)
    if name == config.default_profile and not requested and config.default_problem:
        raise ConfigError(config.default_problem)
    if not name:
        raise ConfigError(
            f"no profile chosen: name one, set ELEVATE_PROFILE, or set default_profile in "
            f"{config.path}; known profiles: {_known(config.profiles)}"
        )
    try:
        return config.profiles[name]
    except KeyError:
        raise ConfigError(
            f"unknown profile {name!r} in {config.path}; known profiles: {_known(config.profiles)}"
        ) from None


def check_name(name: str, what: str) -> str:
    """`name` if it is a valid profile or key-set name, else a UsageError naming `what`."""
    if not NAME.fullmatch(name):
        raise UsageError(f"{what} {name!r} {NAME_RULE}")
    return name


def resolve_region(profile_region: Optional[str], environ: Mapping[str, str]) -> str:
    """The profile's region, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1."""
    return profile_region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _known(profiles: Mapping[str, Profile]) -> str:
    return ", ".join(sorted(profiles)) or "(none)"


def _profile(name: str, raw: Any, where: _Locator, scopes: Mapping[str, Scope]) -> Profile:
    if not NAME.fullmatch(name):
        raise ConfigError(f"{where.at(name, None)}: profile name {name!r} {NAME_RULE}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where.at(name, None)}: profiles.{name} must be a table")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        spec = _FIELDS.get(key)
        if spec is None:
            raise ConfigError(
                f"{where.at(name, key)}: profile {name!r}: unknown key {key!r}; allowed: {', '.join(_FIELDS)}"
            )
        values[key] = _check(name, key, value, spec, where)
    for key in _REQUIRED:
        if key not in values:
            raise ConfigError(f"{where.at(name, None)}: profile {name!r}: missing required key {key!r}")
    duration = values.get("duration_seconds", 3600)
    if "refresh_before_seconds" not in values:
        # The default window, shortened for short credentials so that they are still cached;
        # the Elevator warns that SDKs will then refresh them on every call.
        values["refresh_before_seconds"] = min(DEFAULT_REFRESH_BEFORE, duration // 2)
    refresh = values["refresh_before_seconds"]
    if refresh >= duration:
        raise ConfigError(
            f"{where.at(name, 'refresh_before_seconds')}: profile {name!r}: refresh_before_seconds "
            f"({refresh}) must be less than duration_seconds ({duration})"
        )
    if "scope" in values:
        try:
            values["scope"] = resolve(values["scope"], scopes, values["role_arn"])
        except ConfigError as exc:
            raise ConfigError(f"{where.at(name, 'scope')}: profile {name!r}: {exc.message}") from exc
    return Profile(name=name, origin=where.origin(name), **values)


def _check(profile: str, key: str, value: Any, spec: _Field, where: _Locator) -> Any:
    here = f"{where.at(profile, key)}: profile {profile!r}: {key}"
    # bool is an int subclass in Python; a TOML true is never a number here.
    if isinstance(value, bool) or not isinstance(value, spec.kind):
        raise ConfigError(f"{here} must be {'an integer' if spec.kind is int else 'a string'}")
    if isinstance(value, int):
        low, high = spec.low or 0, spec.high or 0
        if not low <= value <= high:
            raise ConfigError(f"{here} = {value} is out of range {low}..{high}")
        return value
    problem = _string_problem(key, str(value))
    if problem:
        raise ConfigError(f"{here} {problem}")
    return value


def _string_problem(key: str, value: str) -> Optional[str]:
    if key == "role_arn" and not ROLE_ARN.fullmatch(value):
        return f"{value!r} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
    if key == "mfa_serial" and not (MFA_ARN.fullmatch(value) or HARDWARE_SERIAL.fullmatch(value)):
        return f"{value!r} is not an MFA device ARN (arn:aws:iam::ACCOUNT:mfa/NAME) or serial"
    if key == "region" and not REGION.fullmatch(value):
        return f"{value!r} is not a region name such as eu-west-1"
    if key in ("role_session_name", "source_identity"):
        if not STS_NAME.fullmatch(value):
            return f"{value!r} must be 2-64 letters, digits or _+=,.@-"
    if key == "keys" and not NAME.fullmatch(value):
        return f"{value!r} {NAME_RULE}"
    if key == "cache" and value not in CACHE_MODES:
        return f"{value!r} must be one of {', '.join(CACHE_MODES)}"
    if key == "scope" and not valid_name(value):
        return f"{value!r} is not a scope name"
    if key == "mfa_prompt" and value not in MFA_PROMPTS:
        return f"{value!r} must be one of {', '.join(MFA_PROMPTS)}"
    if key == "mfa_process":
        try:
            if not shlex.split(value):
                return "is empty"
        except ValueError as exc:
            return f"cannot be split into a command: {exc}"
    return None


class _Locator:
    """'file:line' of the profiles, keys and top-level keys of one config text, found in one pass
    (tomllib reports lines only for syntax errors). Only lines that begin outside strings,
    arrays and inline tables count, so text inside a value never passes for a key."""

    _HEADER = re.compile(r"^\s*\[\s*profiles\s*\.\s*(?:\"([^\"]*)\"|'([^']*)'|([\w.@+=-]+))\s*\]\s*(?:#.*)?$")
    _ANY_HEADER = re.compile(r"^\s*\[")
    _KEY = re.compile(r"""^\s*(?:([A-Za-z0-9_-]+)|"([^"\\]*)"|'([^']*)')\s*=""")

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[tuple[Optional[str], Optional[str]], int] = {}
        section: Optional[str] = None
        lines = [line.rstrip("\r") for line in text.split("\n")]  # TOML's newlines only (LF, CRLF)
        for number, start in enumerate(_scan(text)[1], 1):
            if not start:
                continue
            line = lines[number - 1]
            header = self._HEADER.match(line)
            if header:
                section = next(g for g in header.groups() if g is not None)
                self.lines.setdefault((section, None), number)
            elif self._ANY_HEADER.match(line):
                section = "\0other"
            else:
                key = self._KEY.match(line)
                if key:
                    name = next(g for g in key.groups() if g is not None)
                    self.lines.setdefault((section, name), number)

    def at(self, profile: Optional[str], key: Optional[str]) -> str:
        line = self.lines.get((profile, key))
        return f"{self.path}:{line}" if line else str(self.path)

    def origin(self, profile: str) -> Origin:
        """Where profile `profile` and each of its keys are."""
        keys = tuple((key, line) for (table, key), line in self.lines.items() if table == profile and key)
        return Origin(str(self.path), self.lines.get((profile, None)), keys)
