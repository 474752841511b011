"""The one place that knows the operating system: Linux, macOS (darwin) and Windows (win32).

Every platform branch of elevate is decided here, and every POSIX- or Windows-only module
(termios, fcntl, resource, msvcrt) is imported here, inside the function that needs it, so
that every other module imports on every platform. Each branch takes the platform as a value
(default sys.platform), so the tests run every branch on one machine. The cache hit loads this
module (through elevate.disk): at import it needs only sys, stat and the OS's own C module
(posix, or nt on Windows), not os: `import os` costs a hit or a waiter of the hit queue 6.4 M
instructions, a fifth of its whole run. The path functions below answer as os.path does (a
property test holds them to it) and hand anything but the plain forms to os.path itself.

What each platform enforces, and what it does not, is in SECURITY.md ("Platforms").
"""

from __future__ import annotations

import stat
import sys

try:  # the OS's own calls, which os re-exports (stat, open, read, getcwd, environ, _exit...)
    import posix as _native
except ImportError:  # pragma: no cover - Windows
    import nt as _native  # type: ignore[no-redef,import-not-found,unused-ignore]
native = _native  # elevate's modules on the hit path call these where others call os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing and collections.abc would cost the hit its budget
    from collections.abc import Callable, Mapping
    from os import stat_result
    from types import TracebackType
    from typing import Any, Protocol

    class Console(Protocol):
        """What elevate uses of msvcrt's console functions."""

        def kbhit(self) -> bool: ...
        def getwch(self) -> str: ...
        def putwch(self, char: str, /) -> None: ...


# Windows Credential Manager keeps at most this many bytes per secret (CRED_MAX_CREDENTIAL_BLOB_SIZE);
# keyring's backend stores a str as UTF-16, two bytes per character of the Basic Multilingual Plane.
WINDOWS_SECRET_BYTES = 2560


def windows(platform: str = sys.platform) -> bool:
    """Windows (win32; not Cygwin, which is POSIX)."""
    return platform.startswith("win")


def linux(platform: str = sys.platform) -> bool:
    """Linux (and so /proc, prctl, keyutils, XDG_RUNTIME_DIR)."""
    return platform.startswith("linux")


def macos(platform: str = sys.platform) -> bool:
    """macOS."""
    return platform == "darwin"


# -- os.path without os ---------------------------------------------------------------------------


def _plain() -> bool:
    """Whether the fast forms below apply: POSIX paths (Windows' take os.path itself)."""
    return native.__name__ == "posix"


def _os_path() -> Any:
    """os.path, for what the fast forms do not cover (imports os)."""
    import os.path

    return os.path


def process_environ() -> dict[str, str]:
    """The process environment as os.environ reads it (os.environ is a view of the same dict):
    POSIX's bytes decoded with the file system encoding and surrogateescape, as os decodes them;
    on Windows, os.environ itself."""
    if not _plain():  # Windows: os.environ upper-cases the names, as Windows matches them
        import os

        return dict(os.environ)
    return {_decode(key): _decode(value) for key, value in native.environ.items()}


def _decode(value: bytes) -> str:
    return value.decode(sys.getfilesystemencoding(), "surrogateescape")


def join(first: str, *rest: str) -> str:
    """os.path.join."""
    if not _plain():
        return str(_os_path().join(first, *rest))
    path = native.fspath(first)
    for part in map(native.fspath, rest):
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def dirname(path: str) -> str:
    """os.path.dirname."""
    if not _plain():
        return str(_os_path().dirname(path))
    path = native.fspath(path)
    head = path[: path.rfind("/") + 1]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head


def expanduser(path: str) -> str:
    """os.path.expanduser: `~` and `~/...` from $HOME here, anything else (no $HOME, `~user`) by
    os.path."""
    path = native.fspath(path)
    if not path.startswith("~"):
        return path
    home = native.environ.get(b"HOME") if _plain() and (path == "~" or path.startswith("~/")) else None
    if home is None:
        return str(_os_path().expanduser(path))
    return (_decode(home).rstrip("/") + path[1:]) or "/"


def _normal(path: str) -> bool:
    """Whether this is an absolute path that os.path.normpath would leave as it is."""
    return path.startswith("/") and all(part not in ("", ".", "..") for part in path[1:].split("/"))


def _absolute(path: str) -> str:
    """`path` joined to the working directory when relative (os.path.abspath before normpath)."""
    return path if path.startswith("/") else join(native.getcwd(), path)


def abspath(path: str) -> str:
    """os.path.abspath: a path that needs no normalising here, anything else by os.path."""
    path = native.fspath(path)
    if _plain() and _normal(joined := _absolute(path)):
        return joined
    return str(_os_path().abspath(path))


def realpath(path: str) -> str:
    """os.path.realpath: a path that needs no normalising and has no symbolic link on its way
    (each part lstat'ed) is itself; anything else (a link, a `..`, a part that cannot be read)
    is left to os.path."""
    path = native.fspath(path)
    if _plain() and _normal(joined := _absolute(path)):
        parts = joined[1:].split("/")
        try:
            if not any(
                stat.S_ISLNK(native.lstat("/" + "/".join(parts[:n])).st_mode)
                for n in range(1, len(parts) + 1)
            ):
                return joined
        except (OSError, ValueError):
            pass
    return str(_os_path().realpath(path))


def make_private_dirs(path: str) -> None:
    """os.makedirs(path, 0o700, exist_ok=True): one mkdir when the parent is there."""
    if _plain():
        try:
            native.mkdir(path, 0o700)
            return
        except FileExistsError:
            try:
                if stat.S_ISDIR(native.stat(path).st_mode):
                    return
            except OSError:
                pass  # a dangling link in its place: os.makedirs says what it says of that
        except FileNotFoundError:
            pass
    import os

    os.makedirs(path, 0o700, exist_ok=True)


# -- where things are ------------------------------------------------------------------------------


def cache_base(environ: Mapping[str, str], platform: str = sys.platform) -> str:
    """The directory elevate's cache directory goes in, when ELEVATE_CACHE_DIR does not say.

    Linux and other POSIX systems: $XDG_RUNTIME_DIR (a per-user tmpfs, gone at logout), else
    $XDG_CACHE_HOME or ~/.cache. macOS has no runtime directory: $XDG_CACHE_HOME if set, else
    ~/Library/Caches. Windows: %LOCALAPPDATA% (the profile's local, non-roaming part, whose
    ACL admits the user, SYSTEM and Administrators).
    """
    home = environ.get("HOME", "~")
    if windows(platform):
        local = environ.get("LOCALAPPDATA") or join(environ.get("USERPROFILE") or "~", "AppData", "Local")
        return expanduser(local)
    if macos(platform) and not environ.get("XDG_RUNTIME_DIR"):
        return expanduser(environ.get("XDG_CACHE_HOME") or join(home, "Library", "Caches"))
    if environ.get("XDG_RUNTIME_DIR"):
        return environ["XDG_RUNTIME_DIR"]
    return expanduser(environ.get("XDG_CACHE_HOME") or join(home, ".cache"))


# -- owners and modes ------------------------------------------------------------------------------


def owner_id(platform: str = sys.platform) -> int | None:
    """The uid that files of ours must belong to; None where files have no uid (Windows)."""
    if windows(platform) or not hasattr(native, "geteuid"):
        return None
    return int(native.geteuid())


def modes_enforced(platform: str = sys.platform) -> bool:
    """Whether a file's mode bits say who may read and write it. Not on Windows: there st_mode
    reflects only the read-only attribute (every directory reads as 0o777) and access is an
    ACL that os.stat does not show; elevate then relies on the profile's own ACL (the weaker
    rule SECURITY.md documents) and still refuses symlinks and non-regular files."""
    return not windows(platform)


def open_to_others(info: stat_result, mask: int, platform: str = sys.platform) -> bool:
    """Whether `info`'s mode grants any of `mask` (0o022: group/other write; 0o077: any access),
    where modes mean that (modes_enforced); False elsewhere."""
    return modes_enforced(platform) and bool(stat.S_IMODE(info.st_mode) & mask)


def foreign_owner(info: stat_result, also: tuple[int, ...] = (), platform: str = sys.platform) -> bool:
    """Whether `info` belongs to someone other than us (or the uids in `also`); False where files
    have no owner uid (owner_id is None)."""
    uid = owner_id(platform)
    return uid is not None and info.st_uid != uid and info.st_uid not in also


def set_file_mode(fd: int, mode: int, platform: str = sys.platform) -> None:
    """Give the open file `fd` the permission bits `mode` (POSIX: fchmod). Nothing on Windows,
    where mode bits are only the read-only flag (os.fchmod exists there from Python 3.13 only)."""
    if not modes_enforced(platform):
        return
    native.fchmod(fd, mode)


# -- process hardening -----------------------------------------------------------------------------


def disable_core_dumps(platform: str = sys.platform) -> tuple[int, int] | None:
    """Set this process's core-file limit to 0 (POSIX: RLIMIT_CORE); the limit it had, or None
    where there is none to set (Windows writes no core files: a crash dump needs WER set up
    by an administrator) or the OS refuses."""
    if windows(platform):
        return None
    try:
        import resource

        before = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, before[1]))
    except (ImportError, ValueError, OSError):
        return None
    return before


def set_core_limit(limit: tuple[int, int], platform: str = sys.platform) -> None:
    """Put the core-file limit back to `limit` (for a command elevate execs); nothing on Windows."""
    if windows(platform):
        return
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, limit)
    except (ImportError, ValueError, OSError):
        pass


def not_dumpable(platform: str = sys.platform) -> bool:
    """Linux: PR_SET_DUMPABLE 0, so no other process of this user can ptrace us or read
    /proc/PID/mem while we hold secrets (an exec'd command is dumpable again). Through
    _ctypes' own calls: the ctypes package would cost a cache hit a third of its time.
    True when done, or where there is no such switch (macOS, Windows)."""
    if not linux(platform):
        return True
    try:
        import _ctypes

        prctl = _ctypes.dlsym(_ctypes.dlopen(None), "prctl")  # type: ignore[arg-type]
        set_dumpable, get_dumpable = 4, 3
        _ctypes.call_function(prctl, (set_dumpable, 0, 0, 0, 0))
        return bool(_ctypes.call_function(prctl, (get_dumpable, 0, 0, 0, 0)) == 0)
    except (ImportError, OSError, AttributeError):
        return False


def can_exec(platform: str = sys.platform) -> bool:
    """Whether elevate can replace itself with a command (execvpe): POSIX, not Windows, where
    exec is emulated by a child process and the parent would end first."""
    return not windows(platform) and native.__name__ == "posix"


def can_adopt_orphans(platform: str = sys.platform) -> bool:
    """Whether a child subreaper exists (Linux's PR_SET_CHILD_SUBREAPER)."""
    return linux(platform)


def kernel_keyring(platform: str = sys.platform) -> bool:
    """Whether the Linux kernel's session keyring (keyutils) may be there."""
    return linux(platform)


# -- locks -----------------------------------------------------------------------------------------


def try_lock(fd: int, shared: bool = False, platform: str = sys.platform) -> bool:
    """Take the lock on `fd` if it is free now. POSIX: flock, shared or exclusive. Windows:
    msvcrt's byte-range lock on the first byte, which has no shared mode: a shared taker
    takes it exclusive (one at a time)."""
    if windows(platform):
        import msvcrt

        native.lseek(fd, 0, 0)  # SEEK_SET: msvcrt locks bytes from the current position
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def blocking_locks(platform: str = sys.platform) -> bool:
    """Whether a waiter can sleep in the kernel until a lock is free (flock, cut short by
    SIGALRM); else it polls (Windows: no SIGALRM, and msvcrt's blocking lock gives up after 10 s)."""
    return not windows(platform)


def lock_blocking(fd: int, shared: bool = False) -> None:
    """Wait in the kernel for the lock on `fd` (POSIX only: see blocking_locks); a signal
    handler's exception cuts the wait short."""
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)


# -- the terminal ----------------------------------------------------------------------------------


def in_background(fd: int, platform: str = sys.platform) -> bool:
    """Whether this process is not in the foreground process group of the terminal `fd`
    (POSIX job control); False where there is none (Windows) or `fd` is not a terminal."""
    if windows(platform):
        return False
    try:
        return bool(native.tcgetpgrp(fd) != native.getpgrp())
    except (OSError, ValueError, AttributeError):
        return False


def line_mode(fd: int, platform: str = sys.platform) -> bool:
    """Whether the terminal `fd` reads whole lines (POSIX: ICANON, as a shell leaves it). True
    where this cannot be asked (Windows' console, or `fd` not a terminal): nothing to protect."""
    if windows(platform):
        return True
    try:
        import termios
    except ImportError:
        return True
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ICANON)
    except (termios.error, OSError, ValueError):
        return True


class echo_off:
    """While the block runs, the terminal `fd` does not echo what is typed (POSIX: termios,
    restored after, input typed before it discarded). `with echo_off(fd) as hidden`: hidden is
    False when `fd` is not a terminal (nothing changed; what is typed is read as it comes)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None

    def __enter__(self) -> bool:
        try:
            import termios
        except ImportError:
            return False
        try:
            self.saved = termios.tcgetattr(self.fd)
            quiet = list(self.saved)
            quiet[3] = quiet[3] & ~termios.ECHO
            termios.tcsetattr(self.fd, termios.TCSAFLUSH, quiet)
        except (termios.error, OSError, ValueError):
            self.saved = None
        return self.saved is not None

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSAFLUSH, self.saved)


def console(platform: str = sys.platform) -> Console | None:
    """Windows: msvcrt when this process has a console to ask on (elevate started from one);
    None elsewhere, or with no console (a program started without a window). POSIX asks on
    /dev/tty instead (elevate.ui.open_tty)."""
    if not windows(platform):
        return None
    try:
        import msvcrt

        with open("CONIN$", "rb"):  # no console: there is nothing to open
            pass
    except (ImportError, OSError):
        return None
    return msvcrt  # type: ignore[return-value,unused-ignore]


def console_write(con: Console, text: str) -> None:
    """`text` on the Windows console (msvcrt.putwch: the console itself, never stdout)."""
    for char in text:
        con.putwch(char)


MAX_CONSOLE_LINE = 4096  # a code is six digits and a passphrase a few dozen characters


def console_line(
    con: Console,
    prompt: str,
    echo: bool,
    timeout: float,
    on_idle: Callable[[], None] | None = None,
    clock: Callable[[], float] | None = None,
    pause: Callable[[float], None] | None = None,
) -> str | None:
    """One line typed at the Windows console (msvcrt's getwch, the way getpass reads there),
    shown as typed when `echo`, hidden otherwise. Bounded: ConsoleTimeout after `timeout`
    seconds with no key; Ctrl-C raises KeyboardInterrupt; Ctrl-Z or Ctrl-D alone ends input
    (None). At most MAX_CONSOLE_LINE characters are kept. `on_idle` runs while no key is
    waiting (to notice that the caller is gone). `con` is msvcrt (or a fake with kbhit, getwch
    and putwch); `clock` and `pause` default to time.monotonic and time.sleep."""
    import time

    now = clock or time.monotonic
    sleep = pause or time.sleep
    console_write(con, prompt)
    typed: list[str] = []
    deadline = now() + timeout
    while True:
        if not con.kbhit():
            if now() >= deadline:
                console_write(con, "\r\n")
                from .errors import ConsoleTimeout  # not at import: the hit path loads this module

                raise ConsoleTimeout
            if on_idle is not None:
                on_idle()
            sleep(0.05)
            continue
        char = con.getwch()
        if char in ("\x00", "\xe0"):  # a function or arrow key: its second code follows; both ignored
            con.getwch()
            continue
        if char in "\r\n":
            console_write(con, "\r\n")
            return "".join(typed)
        if char == "\x03":
            raise KeyboardInterrupt
        if char in ("\x1a", "\x04") and not typed:
            console_write(con, "\r\n")
            return None
        if char == "\b":
            if typed:
                typed.pop()
                if echo:
                    console_write(con, "\b \b")
            continue
        if len(typed) >= MAX_CONSOLE_LINE:
            continue  # a key held down, or a paste of a file: the rest is not kept
        typed.append(char)
        if echo:
            con.putwch(char)
        deadline = now() + timeout


# -- the keyring -----------------------------------------------------------------------------------

# keyring's own backend for each platform: what its discovery finds there when no other
# backend package is installed.
KEYRING_BACKENDS = {
    "linux": "keyring.backends.SecretService.Keyring",
    "darwin": "keyring.backends.macOS.Keyring",
    "win32": "keyring.backends.Windows.WinVaultKeyring",
}


def keyring_backend(platform: str = sys.platform) -> str | None:
    """keyring's own backend for this platform (a qualified class name), or None."""
    return KEYRING_BACKENDS.get("linux" if linux(platform) else platform)


def keyring_secret_limit(platform: str = sys.platform) -> int | None:
    """The most bytes one keyring secret may hold on this platform's OS keyring (Windows
    Credential Manager: 2,560), or None when the OS keyring sets no small limit."""
    return WINDOWS_SECRET_BYTES if windows(platform) else None


def keyring_secret_size(value: str) -> int:
    """The bytes `value` takes as a Windows credential blob (UTF-16-LE, as keyring stores it)."""
    return len(value.encode("utf-16-le", "surrogatepass"))


# -- the desktop dialog ----------------------------------------------------------------------------


def desktop_session(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether a dialog could be shown: macOS, or DISPLAY / WAYLAND_DISPLAY on Linux and other
    POSIX desktops. Windows: no (elevate has no dialog there; the console prompt, --token or
    mfa_process ask instead)."""
    if windows(platform):
        return False
    if macos(platform):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def dialog_programs(platform: str = sys.platform) -> tuple[str, ...]:
    """The dialog programs this platform may have, in order of preference."""
    if windows(platform):
        return ()
    return ("osascript",) if macos(platform) else ("zenity", "kdialog")


def keyring_help(platform: str = sys.platform) -> str | None:
    """What to do when no keyring backend works, where the platform's answer is not Linux's
    (which elevate.keystore words); None on Linux and other POSIX systems."""
    if macos(platform):
        return "no usable OS keyring: the macOS login keychain is used; unlock it (security unlock-keychain)"
    if windows(platform):
        return (
            "no usable OS keyring: Windows Credential Manager is used; log in as the user who stored the keys"
        )
    return None


# -- the credential server's peers -----------------------------------------------------------------


def tcp_owner_table(platform: str = sys.platform) -> str | None:
    """The file that names the uid owning each IPv4 TCP socket (Linux's /proc/net/tcp), or None
    where there is none: the credential server then cannot tell other users' connections apart
    (SECURITY.md: macOS and Windows)."""
    return "/proc/net/tcp" if linux(platform) else None
