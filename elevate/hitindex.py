"""The hit index: a cached credential_process answered with one stat of the config, no parse.

The full path, after a validated parse that found (or made) a fresh file-cache entry,
records in a private index (`hits.json` beside the cache entries) what it learnt: for
this config file (path, st_dev, st_ino, st_mtime_ns, st_ctime_ns, st_size), this profile argument and
the environment that changes the answer, which entry file holds the credentials and the
profile's refresh window and duration. `serve_credential_process` looks that up with
one stat of the config and of its directory, reads the index and the entry (each with
the cache's private-file checks, O_NOFOLLOW), checks the credentials and answers. Any
mismatch returns None and the caller falls through to the full path.

This module is the cache hit itself: it imports os, sys, stat and json only (atomic
writing is imported by `record`, which only the full path calls).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping  # already loaded by json (through re and functools)

INDEX_NAME = "hits.json"
INDEX_VERSION = 1
ENTRY_VERSION = 1  # elevate.cache.FORMAT_VERSION
MAX_RECORDS = 32
MAX_FILE_BYTES = 1 << 20
# botocore refreshes with under 15 minutes left; 5 more minutes of margin on top.
MIN_SECONDS_LEFT = 1200
# An Expiration further out than the profile's duration (plus clock slack) is a lie.
EXPIRY_SLACK_SECONDS = 300  # elevate.validate.CLOCK_ALLOWANCE_SECONDS (not imported on a hit)
# Environment that changes which credentials are right, besides the config path itself.
ENVIRONMENT = (
    "ELEVATE_PROFILE",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
)
_SECRET_EXTRA = "/+="  # noqa: S105 - the extra characters of the shape, not a secret


def cache_dir(environ: Mapping[str, str]) -> str:
    """The cache directory, as elevate.cache.cache_dir chooses it, as a string."""
    if environ.get("ELEVATE_CACHE_DIR"):
        return os.path.expanduser(environ["ELEVATE_CACHE_DIR"])
    if environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(environ["XDG_RUNTIME_DIR"], "elevate")
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME", "~"), ".cache")
    return os.path.join(os.path.expanduser(base), "elevate")


def config_file(explicit: str | None, environ: Mapping[str, str]) -> str:
    """The config path, as elevate.config.config_path chooses it, as an absolute string."""
    if explicit:
        path = os.path.expanduser(explicit)
    elif environ.get("ELEVATE_CONFIG"):
        path = os.path.expanduser(environ["ELEVATE_CONFIG"])
    else:
        base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME", "~"), ".config")
        path = os.path.join(os.path.expanduser(base), "elevate", "config.toml")
    return os.path.abspath(path)


def trusted_config(path: str) -> os.stat_result | None:
    """The config's stat when it and its directory are ours and not writable by others.

    A symlink is judged by what it points at: the file and the directory that holds it
    (someone who can write there can swap the file), as well as the link's own directory.
    """
    try:
        info = os.lstat(path)
        directories = [os.path.dirname(path)]
        if stat.S_ISLNK(info.st_mode):
            real = os.path.realpath(path)
            info = os.stat(real)
            directories.append(os.path.dirname(real))
        checks = [(info, stat.S_ISREG)] + [(os.stat(d), stat.S_ISDIR) for d in directories]
    except (OSError, ValueError):
        return None
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    for item, kind in checks:
        if not kind(item.st_mode) or item.st_mode & 0o022:
            return None
        if uid is not None and item.st_uid != uid:
            return None
    return info


def index_key(config: str, info: os.stat_result, profile: str | None, environ: Mapping[str, str]) -> str:
    """What a record is looked up by: config identity, profile argument, relevant environment."""
    # ctime too: an in-place rewrite with the mtime put back (cp -p, touch -r) keeps the rest.
    parts = [config, str(info.st_dev), str(info.st_ino), str(info.st_mtime_ns), str(info.st_ctime_ns)]
    parts.append(str(info.st_size))
    parts.append(profile or "")
    parts.extend(f"{name}={environ.get(name, '')}" for name in ENVIRONMENT)
    return "\0".join(parts)


def read_private(directory: str, name: str) -> str | None:
    """A file of the private cache directory, or None if absent or not private in any way."""
    try:
        info = os.lstat(directory)
    except OSError:
        return None
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o077 or (uid is not None and info.st_uid != uid):
        return None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(os.path.join(directory, name), flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            return None
        if (uid is not None and info.st_uid != uid) or info.st_size > MAX_FILE_BYTES:
            return None
        data = os.read(fd, MAX_FILE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _load_index(directory: str) -> dict[str, object]:
    text = read_private(directory, INDEX_NAME)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        return {}
    records = data.get("records")
    return records if isinstance(records, dict) else {}


def _shaped(value: object, low: int, high: int, extra: str) -> bool:
    if not isinstance(value, str) or not low <= len(value) <= high or not value.isascii():
        return False
    for char in extra:
        value = value.replace(char, "")
    return value.isalnum()


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
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        return None
    # Days from the civil date (Howard Hinnant's algorithm), without importing calendar.
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


def check_entry(text: str, now: float, refresh: int, duration: int) -> dict[str, object] | None:
    """The credential_process answer from an entry's text, or None unless it passes every check.

    The checks: the cache format, the documented shapes, an AccessKeyId of temporary
    credentials (ASIA), more than max(MIN_SECONDS_LEFT, refresh) seconds left, and an
    Expiration no later than now + duration + EXPIRY_SLACK_SECONDS.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("version") != ENTRY_VERSION:
        return None
    key_id, secret, token = data.get("AccessKeyId"), data.get("SecretAccessKey"), data.get("SessionToken")
    if not (_shaped(key_id, 16, 128, "") and isinstance(key_id, str) and key_id.isupper()):
        return None
    if not key_id.startswith("ASIA"):
        return None
    if not (_shaped(secret, 16, 256, _SECRET_EXTRA) and _shaped(token, 16, 16384, _SECRET_EXTRA)):
        return None
    expires = epoch_of(data.get("Expiration"))
    if expires is None:
        return None
    if expires - now <= max(MIN_SECONDS_LEFT, refresh) or expires > now + duration + EXPIRY_SLACK_SECONDS:
        return None
    return {
        "Version": 1,
        "AccessKeyId": key_id,
        "SecretAccessKey": secret,
        "SessionToken": token,
        "Expiration": data["Expiration"],
    }


def _record_for(
    environ: Mapping[str, str], config: str | None, profile: str | None
) -> tuple[str, dict[str, object]] | None:
    path = config_file(config, environ)
    info = trusted_config(path)
    if info is None:
        return None
    directory = cache_dir(environ)
    record = _load_index(directory).get(index_key(path, info, profile, environ))
    if not isinstance(record, dict):
        return None
    return directory, record


def serve_credential_process(
    config: str | None, profile: str | None, environ: Mapping[str, str], now: float
) -> str | None:
    """The credential_process JSON for a fresh indexed entry, or None to fall through."""
    found = _record_for(environ, config, profile)
    if found is None:
        return None
    directory, record = found
    entry, refresh, duration = record.get("entry"), record.get("refresh"), record.get("duration")
    if not (isinstance(entry, str) and len(entry) <= 64 and entry.isascii() and entry.isalnum()):
        return None
    if type(refresh) is not int or type(duration) is not int:
        return None
    text = read_private(directory, entry + ".json")
    if text is None:
        return None
    answer = check_entry(text, now, refresh, duration)
    return None if answer is None else json.dumps(answer) + "\n"


def parse_argv(args: list[str]) -> tuple[str | None, str | None] | None:
    """(config option, profile) for the plain `[--config C] credential-process [PROFILE]`."""
    rest = list(args)
    config: str | None = None
    if rest and rest[0].startswith("--config="):
        config = rest.pop(0).split("=", 1)[1]
    elif len(rest) >= 2 and rest[0] == "--config":
        config, rest = rest[1], rest[2:]
    if not rest or rest[0] != "credential-process" or len(rest) > 2:
        return None
    profile = rest[1] if len(rest) == 2 else None
    if profile is not None and (not profile or profile.startswith("-")):
        return None
    return config, profile


def record(
    environ: Mapping[str, str],
    config: str | None,
    profile_argument: str | None,
    entry: str,
    refresh_before_seconds: int,
    duration_seconds: int,
) -> None:
    """Remember, after a validated parse, which entry answers this config, profile and environment.

    Best effort: an index that cannot be written only means the next hit takes the full path.
    """
    path = config_file(config, environ)
    info = trusted_config(path)
    directory = cache_dir(environ)
    if info is None or read_private_dir_ok(directory) is False:
        return
    records = {k: v for k, v in _load_index(directory).items() if isinstance(v, dict)}
    key = index_key(path, info, profile_argument, environ)
    records.pop(key, None)
    records[key] = {
        "entry": entry,
        "refresh": max(MIN_SECONDS_LEFT, refresh_before_seconds),
        "duration": duration_seconds,
    }
    while len(records) > MAX_RECORDS:  # oldest first: dicts keep insertion order
        records.pop(next(iter(records)))
    text = json.dumps({"version": INDEX_VERSION, "records": records})
    from pathlib import Path

    from .atomic import write_atomically

    try:
        write_atomically(Path(directory) / INDEX_NAME, text.encode("utf-8"))
    except OSError:
        pass


def read_private_dir_ok(directory: str) -> bool:
    """True when `directory` exists, is a real directory of ours and is closed to others."""
    try:
        info = os.lstat(directory)
    except OSError:
        return False
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    return stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o077 and (uid is None or info.st_uid == uid)


def main_hit(args: list[str]) -> bool:
    """Answer a cache hit of credential-process on stdout and return True, else False."""
    parsed = parse_argv(args)
    if parsed is None:
        return False
    import time

    text = serve_credential_process(parsed[0], parsed[1], os.environ, time.time())
    if text is None:
        return False
    sys.stdout.write(text)
    sys.stdout.flush()
    return True
