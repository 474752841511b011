"""`elevate uninstall`: remove everything elevate put on this machine, and say what is left.

The key sets and every other keyring entry of ours, the encrypted keyring file (when only
elevate used it), the `[profile ...]` blocks of ~/.aws/config that run elevate (only those),
the config, the session cache and MFA sessions, the plaintext backups `keys import
--delete-plaintext` made (overwritten, then unlinked), and last the program that
scripts/install made, and the unlock held in the kernel keyring. First a plan, which the
caller shows and confirms; then the removal. What is left includes the IAM access keys of the
key sets removed: they stay active in AWS until IAM deletes them. No directory is removed that
elevate did not make (a config named by --config or ELEVATE_CONFIG leaves its directory).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import shlex
import shutil
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import disk, hostos, keyfile, keystore
from ..config import Config, config_path, load_config
from ..errors import ElevateError
from ..models import Profile
from . import awsfiles

# The options configure writes into a [profile ...] block: a block holding only these is ours.
OURS = frozenset({"credential_process", "region"})


@dataclass
class Plan:
    """What uninstall would remove (and what it will leave), found before anything is touched."""

    config: Optional[Path] = None
    profiles: list[Profile] = field(default_factory=list)
    key_sets: list[str] = field(default_factory=list)
    aws_blocks: list[str] = field(default_factory=list)
    cache_dirs: list[Path] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)
    keyring_files: list[Path] = field(default_factory=list)
    program: list[Path] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The plan, one line per thing to remove."""
        found = [f"key set {name!r} in the keyring" for name in self.key_sets]
        found += [f"{block} (runs elevate)" for block in self.aws_blocks]
        found += [f"the config {self.config}"] if self.config else []
        found += [f"the session cache and MFA sessions in {d}" for d in self.cache_dirs]
        found += [f"the encrypted keyring file {p}" for p in self.keyring_files]
        found += [f"the plaintext key backup {p} (overwritten, then deleted)" for p in self.backups]
        found += [f"the program {p}" for p in self.program]
        return found


@dataclass
class Uninstaller:
    """Finds and removes elevate's files and keyring entries; `clear` forgets a profile's cached
    credentials wherever the profile keeps them (the keyring too)."""

    environ: Mapping[str, str]
    notify: Callable[[str], None]
    clear: Callable[[Profile], object]
    prefix: str = field(default_factory=lambda: sys.prefix)

    def plan(self, config_option: Optional[str] = None) -> Plan:
        plan = Plan()
        path = config_path(config_option, self.environ)
        if path.exists():
            config: Optional[Config] = None
            try:
                config = load_config(path)
            except ElevateError as exc:
                # Only a file elevate reads as its config is its to delete: ELEVATE_CONFIG or
                # --config may name another file by mistake (even ~/.aws/config).
                plan.left.append(
                    f"{path} and the cached credentials of its profiles (unreadable: {exc.message})"
                )
            if config is not None:
                plan.config = path
                plan.profiles = list(config.profiles.values())
        try:
            found = keystore.list_key_sets()
        except ElevateError as exc:
            plan.left.append(f"key sets in the keyring, if any (it cannot be read: {exc.message})")
            found = []
        plan.key_sets = [name for name, _ in found]
        # Deleting a key set here leaves its key valid in AWS: only IAM can end it.
        plan.left += [
            f"the IAM access key {keystore.mask(keys.access_key_id)} (key set {name!r}), still active "
            "in AWS: ask your admin to delete it, or delete it yourself with `aws iam "
            "delete-access-key --access-key-id ID` (`aws iam list-access-keys` shows its ID)"
            for name, keys in found
        ]
        plan.aws_blocks = [
            awsfiles.section_header(name) + f" in {awsfiles.config_path(self.environ)}"
            for name in self._elevate_profiles()
        ]
        for directory in self._cache_dirs():
            problem = _not_a_cache(directory) if os.path.lexists(directory) else "absent"
            if problem is None:
                plan.cache_dirs.append(directory)
            elif problem != "absent":
                plan.left.append(f"{directory}: {problem}, so it is not elevate's to delete")
        for backup in sorted(self._backups()):
            problem = _not_a_backup(backup)
            if problem is None:
                plan.backups.append(backup)
            else:
                plan.left.append(f"{backup}: {problem}, so it is neither overwritten nor deleted")
        plan.keyring_files = self._keyring_files(plan)
        plan.program = [p for p in self._program() if os.path.lexists(p)]
        if not plan.program:
            plan.left.append(
                f"the program in {self.prefix} (not installed by scripts/install: remove it the way "
                "you installed it, e.g. `pipx uninstall aws-elevate`)"
            )
        return plan

    def run(self, plan: Plan) -> list[str]:
        """Remove what `plan` found; each line says what was removed."""
        removed: list[str] = []
        for profile in plan.profiles:
            with contextlib.suppress(ElevateError):  # a keyring that cannot be opened held nothing
                self.clear(profile)
        for name in plan.key_sets:
            keystore.delete_keys(name)
            removed.append(f"key set {name!r}")
        if plan.key_sets:
            keystore.delete_secret("__index__")
        removed += self._remove_aws_blocks()
        for path in [plan.config] if plan.config else []:
            path.unlink(missing_ok=True)
            removed.append(f"the config {path}")
            if path == self._default_config():
                with contextlib.suppress(OSError):
                    path.parent.rmdir()  # ~/.config/elevate, when nothing else is in it
        for directory in plan.cache_dirs:
            if _remove_cache(directory):
                removed.append(f"the cache {directory}")
        for backup in plan.backups:
            if shred(backup):
                removed.append(f"the plaintext key backup {backup} (overwritten, then deleted)")
        removed += [f"the unlock of {held} held in the kernel keyring" for held in keyfile.lock()]
        for path in plan.keyring_files:
            path.unlink(missing_ok=True)
            removed.append(f"the encrypted keyring file {path}")
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        for path in plan.program:
            if os.path.islink(path) or not os.path.isdir(path):
                os.unlink(path)
            else:
                shutil.rmtree(path)
            removed.append(f"the program {path}")
        return removed

    # --- what there is -----------------------------------------------------------------------

    def _elevate_profiles(self) -> list[str]:
        path = awsfiles.config_path(self.environ)
        data = awsfiles.read_bytes(path)
        if data is None:
            return []
        ini = awsfiles.IniText(data, path)
        return [name for name, _ in _our_sections(ini)]

    def _remove_aws_blocks(self) -> list[str]:
        path = awsfiles.config_path(self.environ)
        data = awsfiles.read_bytes(path)
        if data is None:
            return []
        ini = awsfiles.IniText(data, path)
        removed = []
        for name, section in reversed(_our_sections(ini)):
            header = awsfiles.section_header(name)
            if set(section.options) <= OURS:
                start = section.start
                # The blank line configure put before the block goes with it.
                if start > 0 and not ini.lines[start - 1].strip():
                    start -= 1
                del ini.lines[start : section.last + 1]
                removed.append(f"{header} from {path}")
            else:
                option = section.options["credential_process"]
                del ini.lines[option.first : option.last + 1]
                others = ", ".join(sorted(set(section.options) - {"credential_process"}))
                removed.append(f"credential_process from {header} in {path} (kept its {others})")
        if not removed:
            return []
        new = ini.encode()
        if not new.strip():
            path.unlink()
            removed.append(f"{path} (nothing else was in it)")
        else:
            awsfiles.replace_file(path, new, expect=data)
        return removed

    def _default_config(self) -> Path:
        """Where the config is without --config and ELEVATE_CONFIG: in a directory of elevate's own."""
        return config_path(None, {k: v for k, v in self.environ.items() if k != "ELEVATE_CONFIG"})

    def _cache_dirs(self) -> list[Path]:
        """Where the cache is now, and where it would be without ELEVATE_CACHE_DIR or a runtime dir."""
        environ = dict(self.environ)
        found = [Path(disk.cache_dir(environ))]
        for variable in ("ELEVATE_CACHE_DIR", "XDG_RUNTIME_DIR"):
            environ.pop(variable, None)
            found.append(Path(disk.cache_dir(environ)))
        return list(dict.fromkeys(found))

    def _backups(self) -> list[Path]:
        credentials = awsfiles.credentials_path(self.environ).absolute()
        if not credentials.parent.is_dir():
            return []
        prefix = f"{credentials.name}.elevate-backup-"
        return [p for p in credentials.parent.iterdir() if p.name.startswith(prefix)]

    def _keyring_files(self, plan: Plan) -> list[Path]:
        files = []
        for backend in keyfile.file_keyrings():
            path = Path(str(backend.file_path))
            if not path.exists():
                continue
            others = _other_services(path)
            if others:
                plan.left.append(f"the keyring file {path}: it also holds entries of {', '.join(others)}")
            else:
                files.append(path)
        return files

    def _program(self) -> list[Path]:
        """The link and the virtualenvs scripts/install made."""
        data = Path(self.environ.get("XDG_DATA_HOME") or Path(self.environ.get("HOME", "~")) / ".local/share")
        install = data.expanduser() / "aws-elevate"
        link = Path(self.environ.get("HOME", "~")).expanduser() / ".local" / "bin" / "elevate"
        found = []
        if os.path.islink(link) and os.readlink(link).startswith(str(install)):
            found.append(link)
        elif _is_launcher(link, install):
            found.append(link)
        if (install / "venvs").is_dir():
            found.append(install)
        return found


def _is_launcher(path: Path, install: Path) -> bool:
    """Whether `path` is the lean launcher scripts/install wrote for `install` (a regular file
    whose first line runs its "current" virtualenv's python, or, for a path with a blank in
    it, whose first two exec it through sh), not a program of the user's."""
    python = f"{install}/current/bin/python"
    heads = (
        f"#!{python} -IS\n".encode(),
        ("#!/bin/sh\n'''exec' " + shlex.quote(python) + ' -IS "$0" "$@"\n').encode(),
    )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        start = os.read(fd, max(len(head) for head in heads))
        return any(start.startswith(head) for head in heads)
    except OSError:
        return False
    finally:
        os.close(fd)


def _our_sections(ini: awsfiles.IniText) -> list[tuple[str, awsfiles.Section]]:
    """(profile name, section) of every [profile ...] block whose credential_process runs elevate."""
    found = []
    for section in ini.sections:
        option = section.options.get("credential_process")
        if option is None:
            continue
        try:
            argv = shlex.split(option.value)
            header = shlex.split(section.header)
        except ValueError:
            continue
        name = "default" if header == ["default"] else header[1] if len(header) == 2 else None
        if name is None:
            continue
        if _runs_elevate(argv):
            found.append((name, section))
    return found


def _runs_elevate(argv: list[str]) -> bool:
    """`.../elevate [--config P] credential-process NAME` or `python -I -m elevate ...`."""
    if "credential-process" not in argv:
        return False
    if os.path.basename(argv[0]) == "elevate":
        return True
    head = argv[: argv.index("credential-process")]
    return any(head[i : i + 2] == ["-m", "elevate"] for i in range(len(head)))


def _other_services(path: Path) -> list[str]:
    """Services other than elevate with entries in a keyring file (its own settings aside)."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return ["unreadable sections"]
    ours = {"aws_2Delevate", "keyring_2Dsetting"}  # keyrings.cryptfile escapes "-" as "_2D"
    return [s for s in parser.sections() if s not in ours]


# What elevate writes in its cache directory: entries, MFA sessions, used codes and notices
# (.json), failures (.error), locks (.lock), key fingerprints (.id), the hit index (.idx)
# and the temporary files of atomic writes (.tmp).
_CACHE_SUFFIXES = (".json", ".error", ".lock", ".id", ".idx", ".tmp")


def _not_a_cache(directory: Path) -> Optional[str]:
    """Why `directory` is not (only) elevate's cache, else None: ELEVATE_CACHE_DIR names the
    directory itself, so it may point at a home, ~/.ssh or / that must never be deleted."""
    try:
        problem = disk.private_dir_problem(os.lstat(directory))
        if problem is not None:
            return f"the cache directory is {'not private' if problem == 'open' else problem}"
        for name in os.listdir(directory):
            info = os.lstat(directory / name)
            if not stat.S_ISREG(info.st_mode) or not name.endswith(_CACHE_SUFFIXES):
                return f"it holds {name!r}, which elevate did not make"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    return None


def _remove_cache(directory: Path) -> bool:
    """Remove elevate's cache directory, checked again (it may have changed since the plan)."""
    if _not_a_cache(directory) is not None:
        return False
    for name in os.listdir(directory):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / name)
    with contextlib.suppress(OSError):
        directory.rmdir()
    return True


def _not_a_backup(path: Path) -> Optional[str]:
    """Why `path` is not a plaintext backup that shred may overwrite, else None."""
    try:
        return _backup_problem(os.lstat(path))
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"


def _backup_problem(info: os.stat_result) -> Optional[str]:
    if stat.S_ISLNK(info.st_mode):
        return "it is a symlink"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if hostos.foreign_owner(info):
        return "it belongs to another user"
    if info.st_nlink != 1:
        return "it is also linked elsewhere"
    return None


def shred(path: Path) -> bool:
    """Overwrite the file's bytes with zeros (flushed to disk), then unlink it; False (nothing
    touched) when it is no longer one file of the user's own: no symlink is followed, and a
    file with another link is not overwritten.

    On copy-on-write or journalling file systems and SSDs the old blocks may survive: this is
    the best a program can do, not a guarantee (SECURITY.md)."""
    flags = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # gone, a symlink (ELOOP), a FIFO without a reader (ENXIO)
        return False
    try:
        info = os.fstat(fd)
        if _backup_problem(info) is not None:
            return False
        os.write(fd, b"\0" * info.st_size)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
    return True
