"""Seal every test from the developer's machine and offer the real parts tests use."""

from __future__ import annotations

import ast
import functools
import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fakests import FakeSts
from support.kernelsession import join_new_session_keyring
from support.servers import moto_server
from support.sessioncache import MfaScript, counting_mfa_script, example_keys

from elevate.models import SourceKeys

# pyproject.toml's pytest `pythonpath` puts tests/ and tests/support on sys.path for this
# process; child processes get tests/support from PYTHONPATH (below) for the test keyring.
TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "support"

# Real parts that make a test slow, marked here so that `-m "not slow"` gives a quick local
# run (CI runs everything): every test on moto (which covers the AWS CLI, gnome-keyring and
# pty tests too) and everything in tests/cfn. Tests that only run a real shell carry
# @pytest.mark.slow themselves.
_MOTO_FIXTURES = {"moto_url", "cfn_moto"}  # moto in server mode (moto_env uses moto_url)
_CFN = TESTS / "cfn"  # cfn-lint, checkov, PMapper and moto's CloudFormation


# The quick tier (`-m unit`): tests that run in this process only. A test is left out when it
# is slow, or when its own code starts a process or a server (the names below): its code is the
# test function and every function, class and fixture of its module that it reaches by name
# (helpers too, so that a helper that runs a child does not hide it); the rest (pure functions,
# CliRunner, fakes called in-process) make up the tier.
_STARTS_PROCESSES = (
    "run_elevate",
    "subprocess",
    "spawn",
    "Popen",
    "terminal(",
    "run(",
    "_cli(",
    "fake_sts",
    "python_child",
    # servers, even in a thread of this process: the fake endpoints, sockets that listen
    "FakeSts(",
    "FakeFederation(",
    "HTTPServer(",
    ".listen(",
    "CredentialServer(",
    "moto_server(",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & _MOTO_FIXTURES or _CFN in item.path.parents:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") is None and not _starts_processes(item, fixtures):
            item.add_marker(pytest.mark.unit)


def _starts_processes(item: pytest.Item, fixtures: set[str]) -> bool:
    function = getattr(item, "function", None)
    if function is None:
        return True
    try:
        if function.__name__ in _module_definitions(item.path):
            source = _reached_source(item.path, function.__name__, fixtures)
        else:  # a method of a test class: its own source
            source = inspect.getsource(function)
    except (OSError, SyntaxError, TypeError):
        return True
    return bool(fixtures & {"fake_sts", "mfa"}) or any(name in source for name in _STARTS_PROCESSES)


@functools.cache
def _module_definitions(path: Path) -> dict[str, ast.AST]:
    """The module-level functions and classes of a test module, by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


def _reached_source(path: Path, test_name: str, fixtures: set[str]) -> str:
    """The source of the test and of what it reaches by name in its module (fixtures included)."""
    definitions = _module_definitions(path)
    pending = [test_name, *(name for name in fixtures if name in definitions)]
    seen: set[str] = set()
    parts = []
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        node = definitions[name]
        parts.append(ast.unparse(node))
        pending += [
            n.id
            for n in ast.walk(node)
            if isinstance(n, ast.Name) and n.id in definitions and n.id not in seen
        ]
    return "\n".join(parts)


# DISPLAY and WAYLAND_DISPLAY too: no test may open a dialog on the developer's desktop.
_SCRUB_PREFIXES = ("AWS_", "ELEVATE_", "XDG_", "PYTHON_KEYRING", "DBUS_SESSION", "DISPLAY", "WAYLAND_DISPLAY")


@pytest.fixture(autouse=True, scope="session")
def sealed_kernel_keyring() -> None:
    """A session keyring of the test run's own (the headless keyring's unlock is held there)."""
    join_new_session_keyring()


@pytest.fixture(autouse=True)
def sealed_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point HOME, XDG, AWS and keyring locations at tmp; drop inherited AWS settings."""
    for name in list(os.environ):
        if name.startswith(_SCRUB_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("ELEVATE_CONFIG", str(home / ".config" / "elevate" / "config.toml"))
    monkeypatch.setenv("ELEVATE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "elevate_testkeyring.FileKeyring")
    monkeypatch.setenv("ELEVATE_TEST_KEYRING_FILE", str(tmp_path / "keyring.json"))
    pythonpath = os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    monkeypatch.setenv("PYTHONPATH", pythonpath)
    import keyring
    from elevate_testkeyring import FileKeyring

    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())  # type: ignore[no-untyped-call]  # KeyringBackend.__init__ is untyped
    yield home
    keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the session; tests provision distinct users in it."""
    with moto_server() as url:
        yield url


@pytest.fixture
def moto_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_url


@pytest.fixture
def fake_sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSts]:
    """A fake STS on 127.0.0.1 that AWS_ENDPOINT_URL points at."""
    with FakeSts() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        yield server


@pytest.fixture
def keys() -> SourceKeys:
    """The example key pair, stored in the test keyring as key set 'dev'."""
    return example_keys()


@pytest.fixture
def mfa(tmp_path: Path) -> MfaScript:
    """An mfa_process that counts its runs and prints a new code each time."""
    return counting_mfa_script(tmp_path)
