"""The cache hit of `credential-process`: answered from the hit index with a few stats and two
small reads, and the hit queue that concurrent callers of one entry sleep in.

The index: after a validated parse that found (or made) a fresh file-cache entry, the full
path records (`record`) under a key made of the config file's path and identity, the
profile argument, the environment that changes the answer and the AWS config file's
identity (an STS endpoint_url there is part of the entry's key), which entry holds the
credentials, and the profile's refresh window and duration. `serve` looks that up, reads
the entry with the cache's private-file checks and answers when elevate.disk's freshness
rule, the one the full path uses, says the entry may be served; anything else is None
and the caller goes on to the full path.

The queue: on an index miss, the first caller of a key takes an exclusive lock named after
it and goes on to fill; everyone else sleeps on it shared and, when the filler is done (or
dead: the kernel drops its lock), answers from the index. A waiter woken to a miss takes
the lock exclusive, looks once more, and else becomes the next filler, with the time it
began waiting handed on (`Queued.since`), so a failure the previous filler recorded meanwhile
reaches it as it reaches the entry lock's waiters. Lock order is always this queue, then
the entry lock.

Imports: sys, elevate.disk and elevate.hostos (no os: see hostos); time and elevate.locks
only to wait.
"""

from __future__ import annotations

import sys

from . import disk, hostos

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

INDEX_NAME = "hits.idx"
INDEX_HEADER = "elevate hit index 2"
MAX_RECORDS = 32
QUEUE_PREFIX = "queue-"
# Environment that changes which credentials are right, besides the two config files.
ENVIRONMENT = (
    "ELEVATE_PROFILE",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
)


class Queued:
    """A held queue lock (closing `fd` lets it go) and when this process began waiting."""

    def __init__(self, fd: int, since: float | None) -> None:
        self.fd = fd
        self.since = since

    def release(self) -> None:
        """Let the queue go."""
        if self.fd >= 0:
            hostos.native.close(self.fd)
            self.fd = -1


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


def index_key(config: str | None, profile: str | None, environ: Mapping[str, str]) -> str | None:
    """What a record is looked up by, or None when the config is not trusted."""
    path = hostos.abspath(disk.config_path(config, environ))
    info = disk.trusted_config(path)
    if info is None:
        return None
    aws = disk.aws_config_path(environ)
    try:
        aws += "=" + disk.identity(hostos.native.stat(aws))
    except (OSError, ValueError):
        aws += " absent"
    parts = [path, disk.identity(info), profile or "", aws]
    parts.extend(f"{name}={environ.get(name, '')}" for name in ENVIRONMENT)
    return _escape("\0".join(parts))


def _escape(text: str) -> str:
    """One index field: no tab or newline."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _records(directory: str) -> list[list[str]]:
    """The index's records: [key, entry, refresh, duration] each, oldest first."""
    text = disk.read_private(directory, INDEX_NAME)
    if text is None:
        return []
    lines = text.split("\n")
    if lines[0] != INDEX_HEADER:
        return []
    return [fields for fields in (line.split("\t") for line in lines[1:]) if len(fields) == 4]


def serve(config: str | None, profile: str | None, environ: Mapping[str, str], now: float) -> str | None:
    """The credential_process JSON for a fresh indexed entry, or None to fall through."""
    key = index_key(config, profile, environ)
    if key is None:
        return None
    directory = disk.cache_dir(environ)
    found = [fields for fields in _records(directory) if fields[0] == key]
    if not found:
        return None
    _, entry, refresh, duration = found[-1]
    if not (len(entry) <= 64 and entry.isascii() and entry.isalnum()):
        return None
    if not (refresh.isascii() and refresh.isdigit() and duration.isascii() and duration.isdigit()):
        return None
    if not hostos.not_dumpable():  # before the secret is read
        return None
    text = disk.read_private(directory, entry + ".json")
    decoded = None if text is None else disk.decode_entry(text)
    if decoded is None:
        return None
    key_id, secret, token, expiration, expires, serve_until = decoded
    if not disk.fresh(expires, serve_until, now, int(refresh), int(duration)):
        return None
    # output.credential_process_json's bytes: every value was shape-checked (no quote, no escape).
    return (
        f'{{"Version": 1, "AccessKeyId": "{key_id}", "SecretAccessKey": "{secret}", '
        f'"SessionToken": "{token}", "Expiration": "{expiration}"}}\n'
    )


def record(
    environ: Mapping[str, str],
    config: str | None,
    profile_argument: str | None,
    entry: str,
    refresh_before_seconds: int,
    duration_seconds: int,
) -> None:
    """Remember, after a validated parse, which entry answers this config, profile and environment.

    Best effort: an index that cannot be written only means the next hit takes the full
    path. An index that already says so is left untouched (no write, no fsync).
    """
    key = index_key(config, profile_argument, environ)
    directory = disk.cache_dir(environ)
    if key is None or not disk.private_dir_ok(directory):
        return
    records = _records(directory)
    mine = [key, entry, str(refresh_before_seconds), str(duration_seconds)]
    if mine in records:
        return
    records = [*[fields for fields in records if fields[0] != key][-(MAX_RECORDS - 1) :], mine]
    text = "\n".join([INDEX_HEADER, *("\t".join(fields) for fields in records)]) + "\n"
    from pathlib import Path

    from .atomic import write_atomically

    try:
        write_atomically(Path(directory) / INDEX_NAME, text.encode("utf-8"))
    except OSError:
        pass


def answer(args: list[str], environ: Mapping[str, str]) -> str | None:
    """The answer to an indexed hit of `args`, or None."""
    parsed = parse_argv(args)
    if parsed is None:
        return None
    import time

    return serve(parsed[0], parsed[1], environ, time.time())


# -- the queue -------------------------------------------------------------------------------------


def lock_name(key: str) -> str:
    """The queue's lock file for an index key: FNV-1a (64 bits), no hashlib to import.

    Two keys sharing a name would only queue behind each other; the answer is still each
    one's own, from the index.
    """
    value = 0xCBF29CE484222325
    for byte in key.encode("utf-8", "surrogateescape"):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{QUEUE_PREFIX}{value:016x}.lock"


def queue_path(config: str | None, profile: str | None, environ: Mapping[str, str]) -> str | None:
    """The queue's lock path for this call, or None when the queue is skipped."""
    key = index_key(config, profile, environ)
    if key is None:
        return None
    directory = disk.cache_dir(environ)
    try:
        hostos.make_private_dirs(directory)
    except OSError:
        return None
    if not disk.private_dir_ok(directory):
        return None
    return hostos.join(directory, lock_name(key))


def wait_for_filler(
    args: list[str],
    environ: Mapping[str, str],
    on_wait: Callable[[], None],
    timeout: float | None = None,
) -> tuple[str | None, Queued | None]:
    """(the answer once whoever fills this entry is done, None) or (None, the queue held or
    only when the wait began, to go on with the full path).

    Raises LockTimeout after `timeout` seconds of waiting, and Terminated when the caller
    went away meanwhile.
    """
    parsed = parse_argv(args)
    if parsed is None or hostos.owner_id() is None:
        return None, None
    config, profile = parsed
    path = queue_path(config, profile, environ)
    if path is None:
        return None, None
    import time

    from . import locks

    if timeout is None:
        timeout = locks.LOCK_WAIT_SECONDS
    fd = locks.try_open_lock(path)
    if fd is None:
        return None, None  # a directory or symlink in its place: the full path reports what it finds
    started = time.time()
    try:
        if locks.try_lock(fd):
            return None, Queued(fd, None)  # the filler: the full path fills the entry while we hold this
        on_wait()
        deadline = time.monotonic() + timeout
        for shared in (True, False):
            if not locks.wait_for(fd, max(deadline - time.monotonic(), 0.001), shared=shared):
                raise locks.timed_out(timeout, path)
            text = serve(config, profile, environ, time.time())
            if text is not None:
                hostos.native.close(fd)
                return text, None
    except BaseException:
        hostos.native.close(fd)
        raise
    return None, Queued(fd, started)  # woken to a miss, now holding it exclusive: the next filler


def write(text: str) -> None:
    """Put an answer on stdout, flushed (a failure is elevate.__main__.exit_status's to word)."""
    if sys.stdout is None:  # started with fd 1 closed
        raise OSError(9, "stdout is closed")  # EBADF
    sys.stdout.write(text)
    sys.stdout.flush()
