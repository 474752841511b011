"""Where cache entries live: 0600 files in a private directory, or the OS keyring.

A directory or file that another user could read, write or swap is refused (elevate.disk's
rules, which the cache hit applies too), and files are written atomically.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import Optional, Protocol

from . import disk
from .errors import CacheError

STALE_TEMP_SECONDS = 60.0  # a write takes milliseconds; a temp file this old was abandoned


class Store(Protocol):
    """Where entries are kept: private files, or the OS keyring."""

    def read(self, key: str) -> Optional[str]: ...
    def write(self, key: str, text: str) -> None: ...
    def delete(self, key: str) -> bool: ...


class FileStore:
    """0600 files in a private directory; refuses a directory or file others could touch."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def ensure(self) -> Path:
        """Create the directory 0700 if needed and check it is private; return it."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the cache directory {self.directory}: {exc.strerror}") from exc
        check_private_dir(self.directory)
        return self.directory

    def path(self, key: str, suffix: str = ".json") -> Path:
        return self.directory / f"{key}{suffix}"

    def read(self, key: str, suffix: str = ".json") -> Optional[str]:
        path = self.path(key, suffix)
        if not os.path.lexists(self.directory):
            return None
        check_private_dir(self.directory)
        try:
            # O_NONBLOCK: a FIFO planted here must be refused below, not wait for a writer.
            fd = os.open(path, disk.PRIVATE_READ)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheError(
                f"cache file {path} cannot be read ({exc.strerror}): remove it with `elevate clear`"
            ) from exc
        try:
            # Checked before fdopen, which raises IsADirectoryError on a directory.
            check_private_file(path, os.fstat(fd))
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read(disk.MAX_FILE_BYTES)
        except OSError as exc:
            raise CacheError(f"cache file {path} cannot be read ({exc.strerror})") from exc
        finally:
            os.close(fd)
        return data.decode("utf-8", "replace")

    def write(self, key: str, text: str, suffix: str = ".json") -> None:
        self.ensure()
        self.sweep(STALE_TEMP_SECONDS)
        write_private(self.path(key, suffix), text)

    def sweep(self, older_than: float, key: str = "") -> int:
        """Remove temp files left by writes that were killed between write and rename
        (they may hold a secret); only those older than `older_than` seconds, so that a
        write in progress in another process is left alone. With `key`, only that entry's."""
        removed = 0
        now = time.time()
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        for name in names:
            if not (name.startswith(f".{key}") and name.endswith(".tmp")):
                continue
            path = self.directory / name
            try:
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= older_than:
                    os.unlink(path)
                    removed += 1
            except OSError:
                continue
        return removed

    def delete(self, key: str) -> bool:
        removed = self.sweep(0, key) > 0
        for suffix in (".json", ".error"):
            path = self.path(key, suffix)
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
            except OSError as exc:  # e.g. a directory in its place
                raise CacheError(f"cannot remove {path} ({exc.strerror}): remove it by hand") from exc
        return removed


class KeyringStore:
    """Entries as keyring secrets (imports keyring only when used); in parts where the OS
    keyring's size limit needs it (`platform`'s: elevate.keyparts)."""

    PREFIX = "cache:"

    def __init__(self, platform: str = sys.platform) -> None:
        self.platform = platform

    def read(self, key: str) -> Optional[str]:
        from . import keystore

        return keystore.get_secret(self.PREFIX + key)

    def write(self, key: str, text: str) -> None:
        from . import keystore

        keystore.set_secret(self.PREFIX + key, text, self.platform)

    def delete(self, key: str) -> bool:
        from . import keystore

        existed = keystore.get_secret(self.PREFIX + key) is not None
        keystore.delete_secret(self.PREFIX + key)
        return existed


def check_private_dir(directory: Path) -> None:
    """Refuse a cache directory that is a symlink, not ours, or open to group or others."""
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise CacheError(f"cache directory {directory}: {exc.strerror}") from exc
    problem = disk.private_dir_problem(info)
    if problem == "symlink":
        raise CacheError(
            f"cache directory {directory} is a symlink: refusing it; "
            "point ELEVATE_CACHE_DIR at a real directory"
        )
    if problem == "not a directory":
        raise CacheError(f"cache directory {directory} is not a directory")
    if problem == "owner":
        raise CacheError(
            f"cache directory {directory} belongs to another user (uid {info.st_uid}): refusing it"
        )
    if problem == "open":
        raise CacheError(
            f"cache directory {directory} is open to group or others "
            f"(mode {stat.S_IMODE(info.st_mode):o}): run `chmod 700 {directory}`"
        )


def check_private_file(path: Path, info: os.stat_result) -> None:
    problem = disk.private_file_problem(info)
    if problem == "not a regular file":
        raise CacheError(f"cache file {path} is not a regular file: remove it with `elevate clear`")
    if problem == "owner":
        raise CacheError(
            f"cache file {path} belongs to another user (uid {info.st_uid}): refusing it; remove it"
        )
    if problem == "open":
        raise CacheError(
            f"cache file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}): "
            "its credentials may have leaked; remove it with `elevate clear` and elevate again"
        )


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, 0600 from birth."""
    from .atomic import write_atomically

    try:
        write_atomically(path, text.encode("utf-8"))
    except OSError as exc:
        raise CacheError(f"cannot write the cache file {path}: {exc.strerror}") from exc
