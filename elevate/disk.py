"""The on-disk contract, in one place: where the config and the cache live, which files and
directories are trusted, the private read, the cache entry's codec and when an entry is fresh.

config, store, cache and the cache hit (elevate.hit) all use these rules, so no path can
disagree with another. The hit imports this module before anything else, so it imports
only stat and elevate.hostos (the OS's own calls and os.path's answers without importing os,
and what differs per platform): no os, json, re,
typing or dataclasses (the entry is parsed by hand, and a property test holds that parser to
json plus the documented shapes).
"""

from __future__ import annotations

import stat

from . import hostos

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing collections.abc costs a hit a third of its time
    from collections.abc import Mapping
    from os import stat_result

MAX_FILE_BYTES = 1 << 20  # a cache entry or the index is a few KB
FORMAT_VERSION = 1
# botocore refreshes credentials with under 15 minutes left on every access (advisory
# window), so entries are refreshed before that, with a margin: an SDK never sees
# credentials from us that it would at once ask for again.
SDK_REFRESH_WINDOW = 900
REFRESH_MARGIN = 300
DEFAULT_REFRESH_BEFORE = SDK_REFRESH_WINDOW + REFRESH_MARGIN
CLOCK_ALLOWANCE_SECONDS = 300  # STS's clock and ours may differ this much
# Credentials that come back with less life than the refresh window (a role's shorter limit,
# an STS that gives less than asked) are served while they last, with a refresh tried at
# most this often, and never with less than SHORT_MIN_LEFT seconds left.
SHORT_RETRY_SECONDS = 300
SHORT_MIN_LEFT = 60
_SECRET_EXTRA = "/+="  # noqa: S105 - the extra characters of the shape, not a secret
PRIVATE_READ = (
    hostos.native.O_RDONLY | getattr(hostos.native, "O_NOFOLLOW", 0) | getattr(hostos.native, "O_NONBLOCK", 0)
)


# -- where things are ----------------------------------------------------------------------------


def cache_dir(environ: Mapping[str, str]) -> str:
    """$ELEVATE_CACHE_DIR, else elevate/ in the platform's place for it (hostos.cache_base:
    $XDG_RUNTIME_DIR, else $XDG_CACHE_HOME or ~/.cache on Linux)."""
    if environ.get("ELEVATE_CACHE_DIR"):
        return hostos.expanduser(environ["ELEVATE_CACHE_DIR"])
    return hostos.join(hostos.cache_base(environ), "elevate")


def config_path(explicit: str | None, environ: Mapping[str, str]) -> str:
    """--config, else $ELEVATE_CONFIG, else $XDG_CONFIG_HOME/elevate/config.toml."""
    if explicit:
        return hostos.expanduser(explicit)
    if environ.get("ELEVATE_CONFIG"):
        return hostos.expanduser(environ["ELEVATE_CONFIG"])
    base = environ.get("XDG_CONFIG_HOME") or hostos.join(environ.get("HOME", "~"), ".config")
    return hostos.join(hostos.expanduser(base), "elevate", "config.toml")


def aws_config_path(environ: Mapping[str, str]) -> str:
    """The AWS config file botocore reads: $AWS_CONFIG_FILE, else ~/.aws/config."""
    return hostos.expanduser(environ.get("AWS_CONFIG_FILE") or hostos.join("~", ".aws", "config"))


# -- trust -----------------------------------------------------------------------------------------


def config_problem(info: stat_result) -> str | None:
    """Why a config file or a directory holding it cannot be trusted: 'owner' (another user's;
    the user's own or root's are fine) or 'writable' (by group or others); else None. Where
    files have no uid or modes (Windows), that part is not checked (hostos)."""
    if hostos.foreign_owner(info, also=(0,)):
        return "owner"
    if hostos.open_to_others(info, 0o022):
        return "writable"
    return None


def config_directories(path: str) -> list[str]:
    """The directories whose writers could swap the config: the link's and its target's."""
    return sorted({hostos.dirname(hostos.abspath(path)), hostos.dirname(hostos.realpath(path))})


def trusted_config(path: str) -> stat_result | None:
    """The config's stat (of what a symlink points at) when every trust rule passes, else None."""
    try:
        info = hostos.native.stat(path)
        if not stat.S_ISREG(info.st_mode) or config_problem(info):
            return None
        for directory in config_directories(path):
            held = hostos.native.stat(directory)
            if not stat.S_ISDIR(held.st_mode) or config_problem(held):
                return None
    except (OSError, ValueError):
        return None
    return info


def private_dir_problem(info: stat_result) -> str | None:
    """Why a cache directory (lstat) is not private: 'symlink', 'not a directory', 'owner' or 'open'."""
    if stat.S_ISLNK(info.st_mode):
        return "symlink"
    if not stat.S_ISDIR(info.st_mode):
        return "not a directory"
    if hostos.foreign_owner(info):
        return "owner"
    if hostos.open_to_others(info, 0o077):
        return "open"
    return None


def private_file_problem(info: stat_result) -> str | None:
    """Why a cache file (fstat) is not private: 'not a regular file', 'owner' or 'open'."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if hostos.foreign_owner(info):
        return "owner"
    if hostos.open_to_others(info, 0o077):
        return "open"
    return None


def private_dir_ok(directory: str) -> bool:
    """True when `directory` exists and passes private_dir_problem."""
    try:
        return private_dir_problem(hostos.native.lstat(directory)) is None
    except OSError:
        return False


def read_private(directory: str, name: str) -> str | None:
    """A file of the private cache directory, or None if absent or not private in any way."""
    if not private_dir_ok(directory):
        return None
    try:
        fd = hostos.native.open(hostos.join(directory, name), PRIVATE_READ)
    except OSError:
        return None
    try:
        info = hostos.native.fstat(fd)
        if private_file_problem(info) or info.st_size > MAX_FILE_BYTES:
            return None
        data = hostos.native.read(fd, MAX_FILE_BYTES + 1)
    except OSError:
        return None
    finally:
        hostos.native.close(fd)
    if len(data) > MAX_FILE_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def identity(info: stat_result) -> str:
    """What changes when a file is replaced or rewritten, even with its mtime put back (ctime)."""
    return f"{info.st_dev}:{info.st_ino}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_size}"


# -- the shapes of credentials ---------------------------------------------------------------------


def _chars(value: object, low: int, high: int, extra: str) -> bool:
    """`value` is a str of low..high ASCII letters, digits and `extra` characters."""
    if not isinstance(value, str) or not low <= len(value) <= high or not value.isascii():
        return False
    for char in extra:
        value = value.replace(char, "")
    return not value or value.isalnum()


def access_key_id_ok(value: object, role: bool = True) -> bool:
    """ASIA (or, for an MFA session, AKIA too) and 12..124 upper-case letters or digits."""
    if not _chars(value, 16, 128, "") or not isinstance(value, str):
        return False
    return value.startswith("ASIA" if role else ("ASIA", "AKIA")) and value == value.upper()


def secret_ok(value: object) -> bool:
    """16..256 of A-Za-z0-9/+=."""
    return _chars(value, 16, 256, _SECRET_EXTRA)


def token_ok(value: object) -> bool:
    """16..16384 of A-Za-z0-9/+=."""
    return _chars(value, 16, 16384, _SECRET_EXTRA)


def epoch_of(text: object) -> int | None:
    """Seconds since the epoch of 'YYYY-MM-DDTHH:MM:SSZ' (the cache's format), else None."""
    if not isinstance(text, str) or len(text) != 20:
        return None
    if text[4] + text[7] + text[10] + text[13] + text[16] + text[19] != "--T::Z":
        return None
    digits = text[0:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19]
    if not (digits.isascii() and digits.isdigit()):
        return None
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days_in = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (year and 1 <= month <= 12 and 1 <= day <= days_in[month - 1]):
        return None
    if not (hour < 24 and minute < 60 and second < 60):
        return None
    # Days from the civil date (Howard Hinnant's algorithm), without importing calendar.
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


# -- the cache entry -------------------------------------------------------------------------------

_HEAD = '{"version": 1, "label": "'
_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
_SERVE_UNTIL = '", "ServeUntil": '
_ESCAPES = '"\\/bfnrt'


def encode_entry(
    key_id: str, secret: str, token: str, expiration: str, label: str, serve_until: int = 0
) -> str:
    """The entry's text: json.dumps of a fixed layout (json is imported by the writer only)."""
    import json

    data: dict[str, object] = {"version": FORMAT_VERSION, "label": label}
    data.update(zip(_FIELDS, (key_id, secret, token, expiration), strict=True))
    if serve_until:
        data["ServeUntil"] = serve_until
    return json.dumps(data)


def decode_entry(text: str, role: bool = True) -> tuple[str, str, str, str, int, int] | None:
    """(AccessKeyId, SecretAccessKey, SessionToken, Expiration, its epoch, serve-until epoch or 0)
    from an entry's text, or None unless it is exactly the layout encode_entry writes and
    every value has its documented shape. Role credentials need a temporary key ID (ASIA);
    an MFA session (`role` False) may have either."""
    if not text.startswith(_HEAD):
        return None
    at, end = len(_HEAD), len(text)
    while True:  # the label: any JSON string json.dumps writes (ASCII, escaped)
        if at >= end:
            return None
        char = text[at]
        if char == '"':
            break
        if char == "\\":
            kind = text[at + 1 : at + 2]
            if kind == "u":
                code = text[at + 2 : at + 6]
                if len(code) != 4 or not all(c in "0123456789abcdefABCDEF" for c in code):
                    return None
                at += 6
                continue
            if not kind or kind not in _ESCAPES:
                return None
            at += 2
            continue
        if not " " <= char <= "~":
            return None
        at += 1
    values = []
    for name in _FIELDS:
        separator = f'", "{name}": "'
        if not text.startswith(separator, at):
            return None
        start = at + len(separator)
        at = text.find('"', start)
        if at < 0:
            return None
        values.append(text[start:at])
    serve_until = 0
    tail = text[at:]
    if tail != '"}':
        digits = tail[len(_SERVE_UNTIL) : -1]
        if not (tail.startswith(_SERVE_UNTIL) and tail.endswith("}") and digits.isascii()):
            return None
        if not digits.isdigit() or len(digits) > 12 or (digits[0] == "0" and len(digits) > 1):
            return None
        serve_until = int(digits)
    key_id, secret, token, expiration = values
    expires = epoch_of(expiration)
    if expires is None or not (access_key_id_ok(key_id, role) and secret_ok(secret) and token_ok(token)):
        return None
    return key_id, secret, token, expiration, expires, serve_until


def fresh(expires: int, serve_until: int, now: float, refresh_before: int, duration: int) -> bool:
    """Whether an entry may be served: more than `refresh_before` seconds left, or (credentials
    shorter than the window) before its serve-until time with more than SHORT_MIN_LEFT left;
    never one that claims to outlive `duration` plus the clock allowance (a lie)."""
    left = expires - now
    if left > duration + CLOCK_ALLOWANCE_SECONDS:
        return False
    if left > refresh_before:
        return True
    return now < serve_until and left > SHORT_MIN_LEFT


def serve_until_for(expires: float, now: float, refresh_before: int) -> int:
    """The serve-until time to store with credentials that expire at `expires`: 0 when the
    refresh window leaves them at least SHORT_RETRY_SECONDS of service, else now + that."""
    if expires - now - refresh_before >= SHORT_RETRY_SECONDS:
        return 0
    return int(now) + SHORT_RETRY_SECONDS
