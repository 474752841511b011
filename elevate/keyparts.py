"""A keyring secret too large for one entry of the OS keyring, kept in parts.

Windows Credential Manager holds at most 2,560 bytes per secret (hostos.keyring_secret_limit),
and keyring stores a str there as UTF-16: 1,280 characters. A cache entry or an MFA session
(its session token alone is often over 1,000 characters) does not fit. Such a value is written
as parts `NAME#part1`, `NAME#part2`, ... and then a head under NAME that says how many parts
there are and the SHA-256 of the whole; a reader joins the parts and checks the digest, so a
reader that races a writer, or parts left by a crash, are seen as a damaged entry (the head
itself, which is no valid key set or cache entry), never as another value. Where the keyring
sets no small limit everything is one entry, as before; heads are read on every platform.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Optional

from . import hostos
from .errors import KeyringError

HEAD = "aws-elevate-parts:"
MAX_PARTS = 64  # 64 x 1,280 characters: far more than any entry elevate writes

Get = Callable[[str], Optional[str]]
Put = Callable[[str, str], None]
Remove = Callable[[str], None]


def part_name(name: str, number: int) -> str:
    """The entry of part `number` (from 1) of `name` ('#' is in no key-set name or cache key)."""
    return f"{name}#part{number}"


def parts_of(head: Optional[str]) -> Optional[int]:
    """How many parts a head announces, or None when `head` is a whole value (or absent)."""
    if head is None or not head.startswith(HEAD):
        return None
    count, _, digest = head[len(HEAD) :].partition(":")
    if not (count.isascii() and count.isdigit() and 1 <= int(count) <= MAX_PARTS and len(digest) == 64):
        return 0  # a head, but not one we wrote: no parts to read
    return int(count)


def read(name: str, get: Get) -> Optional[str]:
    """The value of `name`: joined from its parts when it was split, checked against the head's
    digest (a mismatch returns the head: a damaged entry to the caller)."""
    head = get(name)
    count = parts_of(head)
    if not count:
        return head
    pieces = [get(part_name(name, number)) for number in range(1, count + 1)]
    if any(piece is None for piece in pieces):
        return head
    value = "".join(piece or "" for piece in pieces)
    return value if head == _head(count, value) else head


def write(name: str, value: str, get: Get, put: Put, remove: Remove, limit: Optional[int]) -> None:
    """Store `value` as `name`: whole when it fits `limit` bytes (hostos.keyring_secret_size),
    else in parts then the head; parts an earlier, longer value left are removed after.
    A KeyringError when even MAX_PARTS parts cannot hold it."""
    before = (parts_of(get(name)) or 0) if limit is not None else 0
    if limit is None or hostos.keyring_secret_size(value) <= limit:
        put(name, value)
        count = 0
    else:
        pieces = split(value, limit)
        if len(pieces) > MAX_PARTS:
            raise KeyringError(
                f"the keyring entry {name!r} needs {len(pieces)} parts of {limit} bytes, more than "
                f'{MAX_PARTS}: too large for this OS keyring; use `cache = "file"` for this profile'
            )
        for number, piece in enumerate(pieces, 1):
            put(part_name(name, number), piece)
        count = len(pieces)
        put(name, _head(count, value))
    for number in range(count + 1, before + 1):
        remove(part_name(name, number))


def remove_all(name: str, get: Get, remove: Remove) -> None:
    """Remove `name` and any parts it has (the head first, so no reader joins a partial value)."""
    count = parts_of(get(name)) or 0
    remove(name)
    for number in range(1, count + 1):
        remove(part_name(name, number))


def split(value: str, limit: int) -> list[str]:
    """`value` cut into pieces of at most `limit` bytes each as UTF-16, never inside a character."""
    pieces: list[str] = []
    start, size = 0, 0
    for at, char in enumerate(value):
        width = hostos.keyring_secret_size(char)
        if size + width > limit:
            pieces.append(value[start:at])
            start, size = at, 0
        size += width
    pieces.append(value[start:])
    return pieces


def _head(count: int, value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{HEAD}{count}:{digest}"
