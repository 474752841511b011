"""scripts/install for real: a temp HOME, the lock with hashes, the link, a rerun upgrades."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked_versions() -> dict[str, set[str]]:
    """Every version the universal lock allows per package (one per environment marker)."""
    pins: dict[str, set[str]] = {}
    for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", line)
        if match:
            pins.setdefault(_normal(match.group(1)), set()).add(match.group(2))
    return pins


# ELEVATE_INSTALL_PYTHON=/path/to/python3.13 proves the install on another interpreter.
PYTHON = os.environ.get("ELEVATE_INSTALL_PYTHON") or sys.executable


def _install(home: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": path, "PYTHON": PYTHON, "LANG": "C.UTF-8"}
    return subprocess.run(
        [str(ROOT / "scripts" / "install"), *args], env=env, capture_output=True, text=True, timeout=1200
    )


@pytest.mark.slow
def test_install_pins_links_warns_about_path_and_reruns(tmp_path: Path) -> None:
    home = tmp_path / "install-home"  # not the sealed HOME: a stranger's empty one
    home.mkdir()
    first = _install(home, "/usr/bin:/bin")
    assert first.returncode == 0, first.stderr
    link = home / ".local" / "bin" / "elevate"
    # The lean launcher: python -I -S of the current venv, straight to elevate.__main__.
    assert not link.is_symlink() and link.read_text().startswith("#!") and " -IS\n" in link.read_text()
    assert "/aws-elevate/current/" in link.read_text().splitlines()[0]
    assert "is not on your PATH" in first.stderr
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True, check=True)
    assert "elevate, version" in version.stdout

    venv = (home / ".local" / "share" / "aws-elevate" / "current").resolve()
    frozen = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze", "--exclude", "pip"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    pins = _locked_versions()
    for line in frozen:
        name, _, got = line.partition("==")
        name = _normal(name)
        if name in ("aws-elevate", "setuptools", "wheel"):
            continue
        assert got in pins.get(name, set()), f"{name}=={got} is not the locked version ({pins.get(name)})"
    assert {"boto3", "keyring", "click"} <= {line.partition("==")[0].lower() for line in frozen}
    # Nothing left behind in the clone by the build.
    assert not (ROOT / "build").exists()

    second = _install(home, f"{home / '.local' / 'bin'}{os.pathsep}/usr/bin:/bin")
    assert second.returncode == 0, second.stderr
    assert "is not on your PATH" not in second.stderr
    venvs = list((home / ".local" / "share" / "aws-elevate" / "venvs").iterdir())
    assert len(venvs) == 1 and venvs[0] != venv, "a rerun builds a new venv and removes the old one"
    assert subprocess.run([str(link), "--version"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_install_headless_adds_the_encrypted_file_keyring(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)  # sealed_env made it
    done = _install(home, "/usr/bin:/bin", "--headless")
    assert done.returncode == 0, done.stderr
    venv = (home / ".local" / "share" / "aws-elevate" / "current").resolve()
    probe = "import keyrings.cryptfile.cryptfile as c; print(c.CryptFileKeyring.priority)"
    shown = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.strip() == "2.5", shown.stderr
