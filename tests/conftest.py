"""Seal every test from the developer's machine and offer the real parts tests use."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SUPPORT = TESTS / "support"
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(SUPPORT))

from support.fakests import FakeSts  # noqa: E402
from support.realparts import IN_CI, require, require_tool  # noqa: E402,F401 - re-exported
from support.servers import moto_server  # noqa: E402

# DISPLAY and WAYLAND_DISPLAY too: no test may open a dialog on the developer's desktop.
_SCRUB_PREFIXES = ("AWS_", "ELEVATE_", "XDG_", "PYTHON_KEYRING", "DBUS_SESSION", "DISPLAY", "WAYLAND_DISPLAY")


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
    keyring.set_keyring(FileKeyring())
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
