"""scripts/install for real: a temp HOME, the lock with hashes, the link, a rerun upgrades."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.provision import provision
from support.realparts import require
from support.terminal import finish, spawn

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


def _pyenv_shims() -> Path:
    pyenv = shutil.which("pyenv")
    require(pyenv is not None, "pyenv is not installed")
    root = subprocess.run([str(pyenv), "root"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(root) / "shims"


def _pyenv_version(shims: Path, minor: str) -> str:
    root = shims.parent
    found = sorted(p.name for p in (root / "versions").glob(f"{minor}.*") if (p / "bin" / "python3").exists())
    require(bool(found), f"pyenv has no Python {minor}")
    return found[-1]


def test_a_python_that_does_not_run_is_reported_with_its_own_error(tmp_path: Path) -> None:
    shims = _pyenv_shims()
    home = tmp_path / "stranger"
    home.mkdir()
    # The README's own form, with pyenv's shim on PATH but that version not active.
    env = {"HOME": str(home), "PATH": f"{shims}:/usr/bin:/bin", "PYTHON": "python3.10", "LANG": "C.UTF-8"}
    env["PYENV_VERSION"] = "system"
    done = subprocess.run(
        [str(ROOT / "scripts" / "install")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "python3.10 does not run" in done.stderr
    assert "pyenv: python3.10: command not found" in done.stderr, done.stderr
    assert "is not Python 3.10 or newer" not in done.stderr
    missing = subprocess.run(
        [str(ROOT / "scripts" / "install")],
        env={**env, "PYTHON": "no-such-python3"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "no-such-python3: command not found" in missing.stderr


@pytest.mark.slow
@pytest.mark.parametrize("minor", ["3.10", "3.13"])
def test_install_through_pyenv_shims(tmp_path: Path, minor: str) -> None:
    shims = _pyenv_shims()
    version = _pyenv_version(shims, minor)
    home = tmp_path / "stranger"
    home.mkdir()
    env = {
        "HOME": str(home),
        "PATH": f"{shims}:/usr/bin:/bin",
        "PYTHON": f"python{minor}",
        "PYENV_VERSION": version,
        "LANG": "C.UTF-8",
    }
    done = subprocess.run(
        [str(ROOT / "scripts" / "install")], env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr
    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]"):
        assert step in done.stderr, "progress lines during the long install"
    python = (home / ".local" / "share" / "aws-elevate" / "current" / "bin" / "python").resolve()
    shown = subprocess.run([str(python), "--version"], capture_output=True, text=True, check=True).stdout
    assert shown.startswith(f"Python {minor}."), shown
    link = home / ".local" / "bin" / "elevate"
    assert subprocess.run([str(link), "--version"], capture_output=True, env={}).returncode == 0


@pytest.mark.slow
def test_install_configure_uninstall_leaves_nothing_of_elevate_in_home(
    tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "stranger"
    home.mkdir()
    assert _install(home, "/usr/bin:/bin", "--headless").returncode == 0
    alice = provision(moto_url, user_name="uninstall-" + tmp_path.name[-20:])
    # A stranger's environment: every path elevate uses is its default under this HOME.
    for name in list(os.environ):
        if name.startswith(("ELEVATE_", "AWS_", "XDG_", "PYTHON")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{home / '.local' / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env = dict(os.environ)
    aws = home / ".aws"
    aws.mkdir()
    plaintext = (
        f"aws_access_key_id = {alice.access_key_id}\naws_secret_access_key = {alice.secret_access_key}\n"
    )
    (aws / "credentials").write_text(f"[work]\n{plaintext}")
    script = (
        f"elevate configure dev --role-arn {alice.role_arn} --region eu-west-1 --from-aws-profile work "
        f"--delete-plaintext --aws-config --no-input && elevate export dev -t {alice.totp().now()} >/dev/null"
    )
    child = spawn(script, home, timeout=300, **env)
    child.expect("New passphrase for the encrypted keyring .*: ")
    child.sendline("stranger-granite-orbit")
    child.expect("The same passphrase again: ")
    child.sendline("stranger-granite-orbit")
    shown, status = finish(child)
    assert status == 0, shown
    assert list(aws.glob("credentials.elevate-backup-*")), "keys import made its plaintext backup"
    assert (home / ".cache" / "elevate").is_dir() and (aws / "config").exists()

    done = subprocess.run(
        ["elevate", "uninstall", "--yes"], env=env, capture_output=True, text=True, timeout=120, cwd=home
    )
    assert done.returncode == 0, done.stderr
    assert "removed:" in done.stderr and "the program" in done.stderr
    print(done.stderr)  # the uninstall's own account, for the record (-s shows it)
    secrets = (alice.access_key_id.encode(), alice.secret_access_key.encode())
    pip_cache = home / ".cache" / "pip"  # pip's, from scripts/install; not elevate's
    for path in home.rglob("*"):
        if pip_cache in path.parents or path == pip_cache:
            continue
        assert "elevate" not in path.name and "python_keyring" not in str(path), f"{path} is left"
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert not any(secret in data for secret in secrets), f"{path} holds the key"
            assert b"elevate" not in data, f"{path} still mentions elevate"


@pytest.mark.slow
def test_the_launcher_of_a_home_with_a_blank_runs_elevate_not_a_neighbour(tmp_path: Path) -> None:
    """The kernel ends a #! interpreter at the first blank: under HOME=".../my home" the lean
    launcher must not run ".../my" (which anyone who can write the parent could plant)."""
    home = tmp_path / "my home"
    home.mkdir()
    marker = tmp_path / "planted-ran"
    planted = tmp_path / "my"
    planted.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    planted.chmod(0o755)
    done = _install(home, "/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    launcher = home / ".local" / "bin" / "elevate"
    version = subprocess.run([str(launcher), "--version"], capture_output=True, text=True)
    assert not marker.exists(), "the launcher ran the planted neighbour"
    assert version.returncode == 0 and "elevate, version" in version.stdout, version.stderr
