"""Every platform a developer uses, from this one: elevate.hostos's branches with the platform
injected, every module imported as on Windows (no termios, fcntl, pwd, grp or resource), and
Windows Credential Manager's 2,560-byte limit kept by everything elevate writes to the keyring."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

import keyring
import pytest
from support.credman import CRED_MAX_CREDENTIAL_BLOB_SIZE, CredentialManagerLike, CredWriteError

from elevate import disk, errors, hostos, keyfile, keyparts, keystore, mfa, ui
from elevate.errors import KeyringError, MfaError
from elevate.models import Profile
from elevate.store import KeyringStore

PACKAGE = Path(__file__).resolve().parent.parent / "elevate"
POSIX_ONLY = {"posix", "termios", "fcntl", "pwd", "grp", "resource", "tty", "pty"}
WINDOWS_ONLY = {"nt", "msvcrt", "winreg", "_winapi", "winsound"}
EXAMPLE_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# Tests of a POSIX branch against this machine's own files, limits or locks (CI also runs this
# file on Windows, where the injected-platform tests of the Windows branches run as here).
on_posix = pytest.mark.skipif(not hasattr(os, "geteuid"), reason="checks this POSIX machine's own files")
on_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's defaults")


# -- one module owns the platform --------------------------------------------------------------


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value.split(".")[0])
    return found


def test_only_hostos_imports_posix_or_windows_only_modules() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(_imported_modules(path) & (POSIX_ONLY | WINDOWS_ONLY))
        for path in PACKAGE.rglob("*.py")
        if path.name != "hostos.py"
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
    # and the check sees what it looks for (it would catch a function-level import too)
    assert {"posix", "nt", "termios", "fcntl", "resource", "msvcrt"} <= _imported_modules(
        PACKAGE / "hostos.py"
    )


def test_hostos_imports_only_sys_stat_and_the_os_c_module_at_import() -> None:
    """Not os: a cache hit imports hostos, and `import os` would cost it a fifth of its run."""
    tree = ast.parse((PACKAGE / "hostos.py").read_text(encoding="utf-8"))
    top: set[str] = set()
    statements = list(tree.body)
    for node in tree.body:  # the choice of posix or nt is a try at the top level
        if isinstance(node, ast.Try):
            statements += node.body + [line for handler in node.handlers for line in handler.body]
    for node in statements:
        if isinstance(node, ast.Import):
            top.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module or "")
    assert top == {"__future__", "stat", "sys", "posix", "nt"}


# Modules whose own import chooses a Windows branch that needs Windows' C modules (_winapi,
# ssl's certificate store): on a real Windows they import; here they are imported before the
# platform becomes "win32". elevate's own modules are all imported after.
_AS_ON_WINDOWS = """
import sys
for name in ("termios", "fcntl", "pwd", "grp", "resource"):
    sys.modules[name] = None
import boto3, boto3.s3.transfer, botocore.session, click, keyring, pyotp, segno, ssl, subprocess
sys.platform = "win32"
import importlib, pkgutil
import elevate
names = sorted(m.name for m in pkgutil.walk_packages(elevate.__path__, "elevate."))
for name in names:
    importlib.import_module(name)
from elevate import hostos
assert hostos.windows() and hostos.console() is None and hostos.owner_id() is None
print(len(names), file=sys.stderr)
from elevate.__main__ import run
sys.exit(run(["--help"]))
"""


def test_every_module_imports_and_help_runs_without_posix_modules_as_on_windows(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _AS_ON_WINDOWS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "elevate configure" in done.stdout
    modules = int(done.stderr.strip().splitlines()[-1])
    assert modules >= len(list(PACKAGE.rglob("*.py"))) - 1  # every module but the package itself


# -- where things are ---------------------------------------------------------------------------


def test_the_cache_base_per_platform() -> None:
    linux_env = {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert hostos.cache_base(linux_env, "linux") == "/run/user/1000"
    assert hostos.cache_base({"HOME": "/home/u"}, "linux") == "/home/u/.cache"
    assert hostos.cache_base({"HOME": "/home/u", "XDG_CACHE_HOME": "/c"}, "linux") == "/c"
    assert hostos.cache_base({"HOME": "/Users/u"}, "darwin") == "/Users/u/Library/Caches"
    assert hostos.cache_base({"HOME": "/Users/u", "XDG_RUNTIME_DIR": "/r"}, "darwin") == "/r"
    windows_env = {"LOCALAPPDATA": "C:\\Users\\u\\AppData\\Local", "XDG_RUNTIME_DIR": "/r"}
    assert hostos.cache_base(windows_env, "win32") == "C:\\Users\\u\\AppData\\Local"
    assert hostos.cache_base({"USERPROFILE": "/p"}, "win32") == os.path.join("/p", "AppData", "Local")


@on_linux
def test_elevate_cache_dir_still_wins_and_linux_is_unchanged() -> None:
    assert disk.cache_dir({"ELEVATE_CACHE_DIR": "/x", "XDG_RUNTIME_DIR": "/r"}) == "/x"
    assert disk.cache_dir({"XDG_RUNTIME_DIR": "/r"}) == os.path.join("/r", "elevate")


# -- owners and modes -----------------------------------------------------------------------------


def _info(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


@on_posix
def test_owner_and_mode_checks_where_the_platform_has_them() -> None:
    me = os.geteuid()
    shared = _info(stat.S_IFDIR | 0o777, me + 1)
    assert hostos.foreign_owner(shared, platform="linux")
    assert hostos.open_to_others(shared, 0o077, "linux")
    assert hostos.open_to_others(_info(stat.S_IFREG | 0o640, me), 0o077, "darwin")
    assert not hostos.open_to_others(_info(stat.S_IFREG | 0o600, me), 0o077, "linux")
    assert not hostos.foreign_owner(_info(stat.S_IFREG, 0), also=(0,), platform="linux")
    assert hostos.owner_id("linux") == me
    # Windows: st_mode is not the ACL (every directory reads 0o777) and files have no uid
    assert hostos.owner_id("win32") is None and not hostos.modes_enforced("win32")
    assert not hostos.foreign_owner(shared, platform="win32")
    assert not hostos.open_to_others(shared, 0o077, "win32")


@on_posix
def test_disk_refuses_what_hostos_calls_open_or_foreign() -> None:
    me = os.geteuid()
    assert disk.private_dir_problem(_info(stat.S_IFDIR | 0o755, me)) == "open"
    assert disk.private_dir_problem(_info(stat.S_IFDIR | 0o700, me + 1)) == "owner"
    assert disk.private_dir_problem(_info(stat.S_IFLNK | 0o700, me)) == "symlink"
    assert disk.private_file_problem(_info(stat.S_IFREG | 0o604, me)) == "open"
    assert disk.config_problem(_info(stat.S_IFREG | 0o664, me)) == "writable"
    assert disk.config_problem(_info(stat.S_IFREG | 0o644, 0)) is None


# -- process hardening ------------------------------------------------------------------------------


@on_posix
def test_core_dumps_per_platform() -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        assert hostos.disable_core_dumps("linux") == before
        assert resource.getrlimit(resource.RLIMIT_CORE)[0] == 0
    finally:
        hostos.set_core_limit(before, "linux")
    assert resource.getrlimit(resource.RLIMIT_CORE) == before
    assert hostos.disable_core_dumps("win32") is None  # no core files there to prevent
    hostos.set_core_limit((0, 0), "win32")  # a no-op, not a call into resource
    assert resource.getrlimit(resource.RLIMIT_CORE) == before


def test_the_other_platform_answers() -> None:
    assert hostos.not_dumpable("darwin") and hostos.not_dumpable("win32")
    assert hostos.can_exec("linux") and hostos.can_exec("darwin") and not hostos.can_exec("win32")
    assert hostos.can_adopt_orphans("linux") and not hostos.can_adopt_orphans("darwin")
    assert hostos.kernel_keyring("linux") and not hostos.kernel_keyring("win32")
    assert hostos.tcp_owner_table("linux") == "/proc/net/tcp"
    assert hostos.tcp_owner_table("darwin") is None and hostos.tcp_owner_table("win32") is None
    assert hostos.keyring_backend("linux") == "keyring.backends.SecretService.Keyring"
    assert hostos.keyring_backend("darwin") == "keyring.backends.macOS.Keyring"
    assert hostos.keyring_backend("win32") == "keyring.backends.Windows.WinVaultKeyring"
    assert hostos.keyring_backend("sunos5") is None
    assert hostos.keyring_secret_limit("win32") == 2560
    assert hostos.keyring_secret_limit("linux") is None and hostos.keyring_secret_limit("darwin") is None
    assert hostos.dialog_programs("darwin") == ("osascript",)
    assert hostos.dialog_programs("linux") == ("zenity", "kdialog") and hostos.dialog_programs("win32") == ()
    assert not hostos.desktop_session({"DISPLAY": ":0"}, "win32")
    assert hostos.desktop_session({"DISPLAY": ":0"}, "linux") and hostos.desktop_session({}, "darwin")


# -- locks ----------------------------------------------------------------------------------------------


@on_posix
def test_flock_on_posix(tmp_path: Path) -> None:
    first = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    second = os.open(tmp_path / "lock", os.O_RDWR)
    try:
        assert hostos.try_lock(first, platform="linux")
        assert not hostos.try_lock(second, platform="linux")
        assert not hostos.try_lock(second, shared=True, platform="linux")
    finally:
        os.close(first)
        os.close(second)
    assert hostos.blocking_locks("linux") and not hostos.blocking_locks("win32")


class _FakeMsvcrt(types.ModuleType):
    """msvcrt's byte-range lock, as one process sees it: one holder per file."""

    LK_NBLCK = 2

    def __init__(self) -> None:
        super().__init__("msvcrt")
        self.held: dict[int, int] = {}  # inode -> fd
        self.calls: list[tuple[int, int, int, int]] = []

    def locking(self, fd: int, mode: int, size: int) -> None:
        self.calls.append((fd, mode, size, os.lseek(fd, 0, os.SEEK_CUR)))
        inode = os.fstat(fd).st_ino
        if self.held.setdefault(inode, fd) != fd:
            raise PermissionError(13, "Permission denied")


@pytest.fixture
def fake_msvcrt(monkeypatch: pytest.MonkeyPatch) -> Iterator[_FakeMsvcrt]:
    fake = _FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    yield fake


def test_msvcrt_lock_on_windows(tmp_path: Path, fake_msvcrt: _FakeMsvcrt) -> None:
    first = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    second = os.open(tmp_path / "lock", os.O_RDWR)
    try:
        os.lseek(first, 5, os.SEEK_SET)  # the lock is on byte 0 wherever the file position is
        assert hostos.try_lock(first, platform="win32")
        assert not hostos.try_lock(second, shared=True, platform="win32")  # no shared mode there
    finally:
        os.close(first)
        os.close(second)
    assert [(mode, size, at) for _, mode, size, at in fake_msvcrt.calls] == [(2, 1, 0), (2, 1, 0)]


# -- the terminal ---------------------------------------------------------------------------------------


def test_a_pipe_gets_the_safe_answers_of_no_terminal_at_all() -> None:
    read, write = os.pipe()
    try:
        assert hostos.line_mode(read, "linux")  # nothing to protect
        assert not hostos.in_background(read, "linux")
        with hostos.echo_off(read) as hidden:
            assert hidden is False
        assert hostos.line_mode(read, "win32") and not hostos.in_background(read, "win32")
    finally:
        os.close(read)
        os.close(write)


@on_posix
def test_no_console_off_windows_and_none_without_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert hostos.console("linux") is None and hostos.console("darwin") is None
    monkeypatch.chdir(tmp_path)
    assert hostos.console("win32") is None  # no msvcrt here, as with no console


@on_posix
def test_the_windows_console_is_msvcrt_when_it_opens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_msvcrt: _FakeMsvcrt
) -> None:
    monkeypatch.chdir(tmp_path)
    assert hostos.console("win32") is None  # CONIN$ does not open: no console
    (tmp_path / "CONIN$").write_bytes(b"")
    assert hostos.console("win32") is fake_msvcrt


class FakeConsole:
    """msvcrt's console calls over a script of keys; a key of None is a tick with none waiting."""

    def __init__(self, keys: Sequence[str | None]) -> None:
        self.keys = list(keys)
        self.shown: list[str] = []
        self.now = 0.0

    def kbhit(self) -> bool:
        if self.keys and self.keys[0] is None:
            self.keys.pop(0)
            return False
        return bool(self.keys)

    def getwch(self) -> str:
        key = self.keys.pop(0)
        assert key is not None
        return key

    def putwch(self, char: str) -> None:
        self.shown.append(char)

    def clock(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds

    @property
    def screen(self) -> str:
        return "".join(self.shown)


def test_console_line_echoes_or_hides() -> None:
    con = FakeConsole([*"123", "\b", "4", "\r"])
    assert hostos.console_line(con, "code: ", True, 10) == "124"
    assert con.screen == "code: 123\b \b4\r\n"
    con = FakeConsole([*"s3cret!", "\x00", ";", "\r"])  # F1 (two codes) is ignored
    assert hostos.console_line(con, "passphrase: ", False, 10) == "s3cret!"
    assert "s3cret" not in con.screen and con.screen == "passphrase: \r\n"


def test_console_line_ends_interrupts_and_times_out() -> None:
    assert hostos.console_line(FakeConsole(["\x1a"]), "p: ", False, 10) is None  # Ctrl-Z
    with pytest.raises(KeyboardInterrupt):
        hostos.console_line(FakeConsole(["1", "\x03"]), "p: ", True, 10)
    idle: list[int] = []
    con = FakeConsole([])
    with pytest.raises(errors.ConsoleTimeout):
        hostos.console_line(con, "p: ", True, 1.0, lambda: idle.append(1), con.clock, con.pause)
    assert 15 <= len(idle) <= 25 and 1.0 <= con.now < 1.2
    # each key pushes the deadline on: a slow typist is not cut off
    slow = FakeConsole(["1", *[None] * 15, "2", *[None] * 15, "\r"])
    assert hostos.console_line(slow, "p: ", True, 1.0, None, slow.clock, slow.pause) == "12"


def test_console_line_keeps_a_bounded_line() -> None:
    flood = FakeConsole(["7"] * (hostos.MAX_CONSOLE_LINE + 5000) + ["\r"])
    line = hostos.console_line(flood, "p: ", False, 10)
    assert line == "7" * hostos.MAX_CONSOLE_LINE


@on_posix
def test_file_modes_are_set_where_they_mean_access(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    path.chmod(0o600)
    fd = os.open(path, os.O_RDONLY)
    try:
        hostos.set_file_mode(fd, 0o644, "win32")  # only a read-only flag there: left alone
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        hostos.set_file_mode(fd, 0o644, "linux")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    finally:
        os.close(fd)


def _profile() -> Profile:
    return Profile(
        name="dev",
        role_arn="arn:aws:iam::123456789012:role/dev",
        mfa_serial="arn:aws:iam::123456789012:mfa/dev",
        keys="dev",
    )


class _NoTerminal:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_the_mfa_code_is_asked_on_the_windows_console() -> None:
    con = FakeConsole([*"12345", "\r", *"123 456", "\r"])
    code = mfa.obtain_code(_profile(), None, tty_opener=_NoTerminal, environ={}, console=lambda: con)
    assert code == "123456"
    assert "An MFA code is six digits. Try again.\r\n" in con.screen
    assert con.screen.count("MFA code for arn:aws:iam::123456789012:mfa/dev: ") == 2


def test_the_windows_console_prompt_is_bounded_and_refuses_junk() -> None:
    con = FakeConsole(["x", "\r"] * 3)
    with pytest.raises(MfaError, match="no valid MFA code after 3 attempts"):
        mfa.obtain_code(_profile(), None, tty_opener=_NoTerminal, environ={}, console=lambda: con)
    with pytest.raises(MfaError, match="no MFA code entered"):
        mfa.obtain_code(
            _profile(), None, tty_opener=_NoTerminal, environ={}, console=lambda: FakeConsole(["\x04"])
        )
    # with no console either: the usual one-line refusal, not a hang
    with pytest.raises(MfaError, match="no terminal to ask for the MFA code"):
        mfa.obtain_code(_profile(), None, tty_opener=_NoTerminal, environ={}, console=lambda: None)


def test_the_keyring_passphrase_is_asked_hidden_on_the_windows_console(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ui, "open_tty", _NoTerminal)
    con = FakeConsole([*"correct horse", "\r"])
    assert keyfile.ask_on_tty("Passphrase: ", console=lambda: con) == "correct horse"
    assert "horse" not in con.screen
    assert keyfile.ask_on_tty("Passphrase: ", console=lambda: None) is None  # no terminal at all


# -- Windows Credential Manager's limit -------------------------------------------------------------------


@pytest.fixture
def credman(monkeypatch: pytest.MonkeyPatch) -> Iterator[CredentialManagerLike]:
    keystore.choose_backend()  # chosen once per process: ours replaces it below
    previous = keyring.get_keyring()
    fake = CredentialManagerLike()
    keyring.set_keyring(fake)
    yield fake
    keyring.set_keyring(previous)


def _session_entry(token_length: int) -> str:
    token = ("IQoJb3JpZ2luX2VjE" * 200)[:token_length]
    return disk.encode_entry(
        "ASIAIOSFODNN7EXAMPLE", EXAMPLE_SECRET, token, "2030-01-01T00:00:00Z", "dev arn:aws:iam::1:role/x"
    )


def test_the_fake_enforces_the_limit(credman: CredentialManagerLike) -> None:
    with pytest.raises(CredWriteError):
        credman.set_password("aws-elevate", "x", "a" * 1281)  # 2,562 bytes as UTF-16
    credman.set_password("aws-elevate", "x", "a" * 1280)


@pytest.mark.parametrize("token_length", [600, 1300, 2600, 9000])
def test_a_cache_entry_fits_credential_manager_in_parts(
    credman: CredentialManagerLike, token_length: int
) -> None:
    store = KeyringStore(platform="win32")
    text = _session_entry(token_length)
    store.write("k1", text)
    assert store.read("k1") == text
    assert credman.largest <= CRED_MAX_CREDENTIAL_BLOB_SIZE
    assert disk.decode_entry(store.read("k1") or "") is not None
    assert store.delete("k1")
    assert credman.names("aws-elevate") == set()  # the parts went with it


def test_shrinking_an_entry_removes_the_parts_it_no_longer_needs(credman: CredentialManagerLike) -> None:
    store = KeyringStore(platform="win32")
    store.write("k1", _session_entry(9000))
    assert len(credman.names("aws-elevate")) > 3
    store.write("k1", _session_entry(300))
    assert credman.names("aws-elevate") == {"cache:k1"}
    assert store.read("k1") == _session_entry(300)


def test_a_torn_or_tampered_entry_reads_as_damaged_never_as_another_value(
    credman: CredentialManagerLike,
) -> None:
    store = KeyringStore(platform="win32")
    store.write("k1", _session_entry(4000))
    credman.set_password("aws-elevate", keyparts.part_name("cache:k1", 2), "A" * 100)
    damaged = store.read("k1") or ""
    assert damaged.startswith(keyparts.HEAD) and disk.decode_entry(damaged) is None
    credman.delete_password("aws-elevate", keyparts.part_name("cache:k1", 1))
    assert (store.read("k1") or "").startswith(keyparts.HEAD)


def test_elsewhere_an_entry_stays_whole(credman: CredentialManagerLike) -> None:
    # this fake refuses what is over the limit, as Windows does: a POSIX platform writes whole
    with pytest.raises(KeyringError):
        KeyringStore(platform="linux").write("k1", _session_entry(2600))
    KeyringStore(platform="darwin").write("k2", _session_entry(300))
    assert credman.names("aws-elevate") == {"cache:k2"}


def test_a_value_too_large_even_in_parts_is_a_clear_error(credman: CredentialManagerLike) -> None:
    with pytest.raises(KeyringError, match="too large for this OS keyring"):
        keystore.set_secret("cache:huge", "a" * (1280 * keyparts.MAX_PARTS + 1), "win32")
    assert credman.names("aws-elevate") == set()  # nothing half written


def test_key_sets_and_a_long_index_fit_credential_manager(credman: CredentialManagerLike) -> None:
    keys = keystore.check_keys(EXAMPLE_KEY_ID, EXAMPLE_SECRET)
    names = [f"k{n:02d}-" + "x" * 58 for n in range(30)]  # an index of about 2,000 characters
    for name in names:
        keystore.put_keys(name, keys, "win32")
    assert credman.largest <= CRED_MAX_CREDENTIAL_BLOB_SIZE
    assert [name for name, _ in keystore.list_key_sets()] == sorted(names)
    for name in names[:29]:
        keystore.delete_keys(name, "win32")
    assert [name for name, _ in keystore.list_key_sets()] == names[29:]
    assert not any("#part" in user for user in credman.names("aws-elevate"))


def test_split_never_cuts_a_character_and_respects_the_limit() -> None:
    value = "a\U0001f511b" * 300 + "é" * 500
    pieces = keyparts.split(value, 100)
    assert "".join(pieces) == value
    assert all(hostos.keyring_secret_size(piece) <= 100 for piece in pieces)
    assert keyparts.parts_of(f"{keyparts.HEAD}999:{'0' * 64}") == 0  # more parts than ever written
    assert keyparts.parts_of(f"{keyparts.HEAD}2:short") == 0
    assert keyparts.parts_of('{"aws_access_key_id": "x"}') is None
