"""The hit queue: on an index miss, callers of the same entry sleep before they parse anything.

On an empty cache, N concurrent `credential-process` calls all miss the hit index. Without
this queue each one would import the config, cache and model modules and parse the TOML
before it found the entry lock taken: N times the work of one caller, competing with the
one that fills the entry for the CPU. Here the first caller takes an exclusive lock named
after the hit index's key (config path and identity, profile argument, relevant
environment) and goes on to the full path, which fills the entry and records it in the
index; everyone else sleeps on that lock shared, and when the filler is done (or dead: the
kernel drops its lock) they all wake at once and answer from the index.

A waiter that wakes to a miss (the filler failed, was killed, or wrote nothing this key
finds) takes the lock exclusive, looks once more, and else becomes the next filler, with
the time it began waiting handed to the cache (elevate.locks.queued_since), so a failure
the previous filler recorded meanwhile reaches it as it reaches the entry lock's waiters.
Lock order is always this queue, then the entry lock, so nothing can deadlock.

Anything unusual (not the plain form, an untrusted config, an unusable cache directory or
lock file) skips the queue: the full path then waits on the entry lock as before. Like
the hit, this module imports little: os, time and elevate's hitindex and locks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from . import hitindex, locks
from .errors import CacheError

QUEUE_PREFIX = "queue-"
_held: list[int] = []


def lock_name(index_key: str) -> str:
    """The queue's lock file for an index key: FNV-1a (64 bits), no hashlib to import.

    Two keys sharing a name would only queue behind each other; the answer is still each
    one's own, from the index.
    """
    value = 0xCBF29CE484222325
    for byte in index_key.encode("utf-8", "surrogateescape"):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{QUEUE_PREFIX}{value:016x}.lock"


def _queue_lock(config: str | None, profile: str | None, environ: Mapping[str, str]) -> str | None:
    """The queue's lock path for this call, or None when the queue is skipped."""
    path = hitindex.config_file(config, environ)
    info = hitindex.trusted_config(path)
    if info is None:
        return None
    directory = hitindex.cache_dir(environ)
    try:
        os.makedirs(directory, 0o700, exist_ok=True)
    except OSError:
        return None
    if not hitindex.read_private_dir_ok(directory):
        return None
    return os.path.join(directory, lock_name(hitindex.index_key(path, info, profile, environ)))


def wait_for_filler(
    args: list[str],
    environ: Mapping[str, str],
    on_wait: Callable[[], None],
    timeout: float = locks.LOCK_WAIT_SECONDS,
) -> str | None:
    """The credential_process answer once whoever fills this entry is done; else None.

    None means: go on with the full path (this process may now hold the queue's lock,
    until `release`). Raises LockTimeout after `timeout` seconds of waiting, and
    Terminated when the caller went away meanwhile.
    """
    parsed = hitindex.parse_argv(args)
    if parsed is None or not hasattr(os, "geteuid"):
        return None
    config, profile = parsed
    path = _queue_lock(config, profile, environ)
    if path is None:
        return None
    try:
        fd = locks.open_lock(path)
    except CacheError:
        return None  # a directory or symlink in its place: the full path reports what it finds
    started = time.time()
    try:
        if locks.try_lock(fd):
            _held.append(fd)  # the filler: the full path fills the entry while we hold this
            return None
        on_wait()
        deadline = time.monotonic() + timeout
        for shared in (True, False):
            if not locks.wait_for(fd, max(deadline - time.monotonic(), 0.001), shared=shared):
                raise locks.timed_out(timeout, path)
            answer = hitindex.serve_credential_process(config, profile, environ, time.time())
            if answer is not None:
                os.close(fd)
                return answer
    except BaseException:
        os.close(fd)
        raise
    # Woken to a miss and now holding the queue exclusive: the next filler.
    locks.queued_since(started)
    _held.append(fd)
    return None


def release() -> None:
    """Let the queue go (closing the descriptor drops the lock) and forget the wait."""
    while _held:
        os.close(_held.pop())
    locks.queued_since(None)
