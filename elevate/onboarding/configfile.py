"""Edit elevate's TOML config in place: one profile's keys and default_profile, nothing else.

There is no TOML writer among the dependencies and a round trip would lose comments and
layout, so values are written as TOML text here and spliced into the file line by line.
Every edit is checked by parsing the result: the target table must hold exactly the new
values and everything else must parse to what it was, or nothing is written.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

from ..config import parse_config, parse_document
from ..errors import ConfigError
from . import awsfiles

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

Value = Union[str, int]
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_MAX_VALUE_LINES = 200


def toml_string(value: str) -> str:
    """`value` as a TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        elif 0xD800 <= ord(char) <= 0xDFFF:
            raise ConfigError("a value holds a lone surrogate, which TOML cannot represent")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: Value) -> str:
    """`value` as TOML text; strings with CR, LF or NUL are refused rather than escaped."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"unsupported config value type {type(value).__name__}")
    if isinstance(value, str) and any(char in value for char in "\r\n\0"):
        raise ConfigError(f"refusing to write a config value with a line break or NUL ({value[:40]!r}...)")
    return str(value) if isinstance(value, int) else toml_string(value)


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def table_header(name: str) -> str:
    """The TOML table header of elevate profile `name`."""
    return f"[profiles.{toml_key(name)}]"


def _lines(text: str) -> list[str]:
    return re.findall(r"[^\n]*\n|[^\n]+", text)


def _header_path(line: str) -> Optional[tuple[str, ...]]:
    """The dotted key of a `[table]` header line, or None if the line is not one."""
    stripped = line.strip()
    if not stripped.startswith("[") or stripped.startswith("[["):
        return None
    try:
        data: Any = tomllib.loads(stripped)
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(data, dict) and len(data) == 1:
        key = next(iter(data))
        path.append(key)
        data = data[key]
    return tuple(path)


def _is_header(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith("[[") or _header_path(line) is not None


def _value_extent(lines: list[str], first: int) -> int:
    """The last line of the key/value pair starting at `first` (multi-line strings, arrays)."""
    for last in range(first, min(len(lines), first + _MAX_VALUE_LINES)):
        try:
            tomllib.loads("".join(lines[first : last + 1]))
        except tomllib.TOMLDecodeError:
            continue
        return last
    return first


def _key_line(key: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*=")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _newline(lines: list[str]) -> str:
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def _end_with_newline(lines: list[str], newline: str) -> None:
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline


def set_profile(text: str, name: str, values: Mapping[str, Value], path: Path) -> str:
    """`text` with `[profiles.NAME]` holding `values` (other keys of it and the file kept)."""
    before = parse_text(text, path)
    if not isinstance(before.get("profiles", {}), dict):
        raise ConfigError(f"{path}: 'profiles' must be a table of [profiles.NAME]; fix it by hand first")
    lines = _lines(text)
    newline = _newline(lines)
    headers = [i for i, line in enumerate(lines) if _header_path(line) == ("profiles", name)]
    if len(headers) > 1:
        raise ConfigError(f"{path}: [profiles.{name}] appears more than once")
    if not headers:
        if name in before.get("profiles", {}):
            raise _cannot_edit(path, name)
        _end_with_newline(lines, newline)
        if lines and lines[-1].strip():
            lines.append(newline)
        lines.append(table_header(name) + newline)
        lines += [f"{key} = {toml_value(value)}{newline}" for key, value in values.items()]
    else:
        start = headers[0]
        for key, value in values.items():
            end = next((i for i in range(start + 1, len(lines)) if _is_header(lines[i])), len(lines))
            found = next((i for i in range(start + 1, end) if _key_line(key).match(lines[i])), None)
            if found is not None:
                last = _value_extent(lines, found)
                original = lines[found]
                indent = original[: len(original) - len(original.lstrip())]
                ending = newline if lines[last].endswith("\n") else ""
                tail = _trailing_comment(lines[last])
                lines[found : last + 1] = [f"{indent}{key} = {toml_value(value)}{tail}{ending}"]
                continue
            content = [i for i in range(start, end) if lines[i].strip() and not _is_comment(lines[i])]
            after = content[-1] if content else start
            if not lines[after].endswith("\n"):
                lines[after] += newline
            lines.insert(after + 1, f"{key} = {toml_value(value)}{newline}")
    result = "".join(lines)
    after_data = parse_text(result, path)
    expected = dict(before)
    profiles = dict(expected.get("profiles", {}))
    profiles[name] = {**profiles.get(name, {}), **values}
    expected["profiles"] = profiles
    if after_data != expected:
        raise _cannot_edit(path, name)
    return result


def _trailing_comment(line: str) -> str:
    """The `  # comment` after a value on `line` (kept when the value is replaced), or ""."""
    body = line.rstrip("\r\n")
    for at in [i for i, char in enumerate(body) if char == "#"]:
        # The first '#' outside a string is where the text before it still parses as TOML.
        try:
            tomllib.loads(body[:at] if "=" in body[:at] else "x = 0")
        except tomllib.TOMLDecodeError:
            continue
        start = at
        while start > 0 and body[start - 1] in " \t":
            start -= 1
        return body[start:]
    return ""


def set_default_profile(text: str, name: str, path: Path) -> str:
    """`text` with `default_profile = NAME` at the top level; everything else kept."""
    before = parse_text(text, path)
    lines = _lines(text)
    newline = _newline(lines)
    first_header = next((i for i, line in enumerate(lines) if _is_header(line)), len(lines))
    line = f"default_profile = {toml_string(name)}"
    found = next((i for i in range(first_header) if _key_line("default_profile").match(lines[i])), None)
    if found is not None:
        last = _value_extent(lines, found)
        ending = newline if lines[last].endswith("\n") else ""
        lines[found : last + 1] = [line + _trailing_comment(lines[last]) + ending]
    else:
        at = first_header
        # Comments right above the first header belong to it: go above them.
        while at > 0 and lines[at - 1].lstrip().startswith("#"):
            at -= 1
        if at > 0 and not lines[at - 1].endswith("\n"):
            lines[at - 1] += newline
        block = [line + newline]
        if at < len(lines):
            block.append(newline)
        lines[at:at] = block
    result = "".join(lines)
    if parse_text(result, path) != {**before, "default_profile": name}:
        raise ConfigError(f"{path}: cannot set default_profile in place: edit the file by hand")
    return result


def parse_text(text: str, path: Path) -> dict[str, Any]:
    """The TOML document as a dict (elevate.config's parse); a ConfigError naming the file
    when it does not parse."""
    try:
        return parse_document(text, path)
    except ConfigError as exc:
        raise ConfigError(f"{exc.message}; fix it before elevate edits it") from exc


def _cannot_edit(path: Path, name: str) -> ConfigError:
    return ConfigError(
        f"{path}: cannot update profile {name!r} in place (it is not written as a plain "
        f"[profiles.{name}] table): edit the file by hand"
    )


def check_profile(name: str, values: Mapping[str, Any], path: Path) -> None:
    """Validate one profile's values as `elevate` will read them, before anything is written."""
    lines = [table_header(name)]
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ConfigError(
                f"{path}: profile {name!r}: {key} must be a string or an integer, not "
                f"{type(value).__name__}: fix it by hand first"
            )
        lines.append(f"{toml_key(key)} = {toml_value(value)}")
    parse_config("\n".join(lines) + "\n", path)


def read_text(path: Path) -> str:
    data = awsfiles.read_bytes(path)
    if data is None:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from exc


def update_profile(
    path: Path, name: str, values: Mapping[str, Value], make_default: Optional[bool] = None
) -> bool:
    """Write `values` into profile NAME of the config at `path` (and default_profile).

    `make_default`: True sets default_profile to NAME; None sets it only when the file
    has none. The result is validated before the atomic replace.
    """
    old = read_text(path)
    text = set_profile(old, name, values, path)
    current_default = parse_text(old, path).get("default_profile")
    if make_default or (make_default is None and current_default is None):
        text = set_default_profile(text, name, path)
    profile = parse_text(text, path)["profiles"][name]
    check_profile(name, profile, path)
    if text == old:
        return False
    awsfiles.replace_file(path, text.encode("utf-8"), expect=old.encode("utf-8") if old else None)
    return True
