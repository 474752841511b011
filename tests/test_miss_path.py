"""The miss path of `credential-process` (elevate.credprocess): a cold call goes from elevate.__main__
straight to the core, without click, the command modules, onboarding, pyotp or keyring's
entry-point discovery, and answers exactly as the click command does: the same stdout, stderr
and exit code on every error, the same index record on success.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Optional

import pytest
from support.configs import write_config
from support.constants import ROLE, SERIAL
from support.fakests import FakeSts
from support.hits import LEAN, ROOT
from support.sessioncache import MfaScript, example_keys

from elevate import credprocess, hit

# What a cold credential-process must never import: the CLI and everything only it needs, and
# the modules keyring's backend discovery loads (its entry points, the chainer).
FORBIDDEN_PREFIXES = (
    "click", "elevate.cli", "elevate.onboarding", "elevate.admin", "elevate.server", "elevate.supply",
    "elevate.launch", "elevate.console", "pyotp", "boto3",
    # only a keyring file (kernelkeys, through ctypes) or a dialog prompt needs these
    "elevate.kernelkeys", "ctypes", "elevate.dialog",
)  # fmt: skip
DISCOVERY_MARKERS = {"keyring.backends.chainer", "keyring.backends.kwallet", "keyring.backends.libsecret"}
MFA_REJECTED = (403, "AccessDenied", "MultiFactorAuthentication failed with invalid MFA one time pass code.")

# The lean launcher's main() (with the test keyring backend importable: -I drops PYTHONPATH),
# writing sys.modules to the file named by the first argument at exit.
SUPPORT = str(ROOT / "tests" / "support")
RECORDING = LEAN[-1].replace(
    "from elevate.__main__ import main; main()",
    f"sys.path.append({SUPPORT!r})\nimport atexit\nreport = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(report, 'w').write(' '.join(sorted(sys.modules))))\n"
    "from elevate.__main__ import main; main()",
)
# The same launcher with the click command answering instead of the miss path: site-packages
# added as main() adds them before the CLI, then the CLI's run() and the one exit-status rule.
THROUGH_CLICK = LEAN[-1].replace(
    "from elevate.__main__ import main; main()",
    f"sys.path.append({SUPPORT!r})\nimport site\nsite.main()\n"
    "from elevate.__main__ import exit_status\nfrom elevate.cli import run\n"
    "try:\n    status = run(sys.argv[1:])\nexcept BaseException as exc:\n    status = exit_status(exc)\n"
    "sys.exit(status)",
)


def dev_profile(mfa: MfaScript, **extra: object) -> None:
    example_keys()
    write_config({"dev": {"role_arn": ROLE, "mfa_serial": SERIAL, "mfa_process": mfa.command, **extra}})


def run(code: str, args: list[str], env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEAN[:-1], code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env if env is not None else dict(os.environ),
        start_new_session=True,  # no terminal: notices go nowhere, nothing reads /dev/tty
    )


def cold_miss(
    tmp_path: Path, args: list[str], env: Optional[dict[str, str]] = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    report = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.txt"
    done = run(RECORDING, [str(report), *args], env)
    return done, set(report.read_text().split())


# -- the import budget ---------------------------------------------------------------------------


def test_a_cold_credential_process_imports_no_cli(fake_sts: FakeSts, mfa: MfaScript, tmp_path: Path) -> None:
    dev_profile(mfa)
    done, modules = cold_miss(tmp_path, ["credential-process", "dev"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["Version"] == 1
    assert fake_sts.count("AssumeRole") == 1 and mfa.runs == 1  # it really was a miss
    assert {"elevate.credprocess", "elevate.core", "keyring"} <= modules
    assert not sorted(m for m in modules if m.startswith(FORBIDDEN_PREFIXES))
    assert not sorted(modules & DISCOVERY_MARKERS)
    assert "botocore.session" not in modules  # STS without a botocore client
    assert hit.serve(None, "dev", dict(os.environ), __import__("time").time()) == done.stdout


def test_the_budget_would_catch_the_cli(fake_sts: FakeSts, mfa: MfaScript, tmp_path: Path) -> None:
    """Any other argv takes the CLI, and the same recording sees click there."""
    dev_profile(mfa)
    done, modules = cold_miss(tmp_path, ["credential-process", "--no-cache", "dev"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "click" in modules and "elevate.cli" in modules


def test_a_cold_call_without_the_keyring_variable_imports_the_platform_backend_only(
    fake_sts: FakeSts, mfa: MfaScript, tmp_path: Path
) -> None:
    """keyring's config file names the backend: no discovery either."""
    dev_profile(mfa)
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "python_keyring" / "keyringrc.cfg"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"[backend]\ndefault-keyring={os.environ['PYTHON_KEYRING_BACKEND']}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    done, modules = cold_miss(tmp_path, ["credential-process", "dev"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not sorted(modules & DISCOVERY_MARKERS)
    assert "elevate_testkeyring" in modules


# -- the same answers as the click command -------------------------------------------------------


def both_paths(
    tmp_path: Path, args: list[str], env_change: Optional[dict[str, str]] = None
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """The miss path's and the click command's run of `args`, each on a cache of its own (so
    neither answers the other's remembered failure)."""
    results = []
    for name, code in (("miss", RECORDING), ("click", THROUGH_CLICK)):
        env = dict(os.environ, ELEVATE_CACHE_DIR=str(tmp_path / f"cache-{name}"), **(env_change or {}))
        argv = [str(tmp_path / f"{name}-modules.txt"), *args] if code is RECORDING else args
        results.append(run(code, argv, env))
    miss, click = results
    assert "click" not in (tmp_path / "miss-modules.txt").read_text().split()
    return miss, click


def same(miss: subprocess.CompletedProcess[str], click: subprocess.CompletedProcess[str]) -> str:
    """The runs' equal outcome (a wait in seconds that the clock decides, "in 25 s", aside)."""
    seconds = re.compile(r"\bin \d+ s\b")
    assert (miss.returncode, miss.stdout, seconds.sub("in N s", miss.stderr)) == (
        click.returncode,
        click.stdout,
        seconds.sub("in N s", click.stderr),
    )
    assert miss.returncode != 0 and miss.stdout == "" and "Traceback" not in miss.stderr
    return miss.stderr


def test_no_profile_chosen(mfa: MfaScript, tmp_path: Path) -> None:
    dev_profile(mfa)
    assert "no profile chosen" in same(*both_paths(tmp_path, ["credential-process"]))


def test_unknown_profile(mfa: MfaScript, tmp_path: Path) -> None:
    dev_profile(mfa)
    assert "nope" in same(*both_paths(tmp_path, ["credential-process", "nope"]))


def test_unknown_profile_from_the_environment(mfa: MfaScript, tmp_path: Path) -> None:
    dev_profile(mfa)
    assert "ghost" in same(*both_paths(tmp_path, ["credential-process"], {"ELEVATE_PROFILE": "ghost"}))


def test_untrusted_config(mfa: MfaScript, tmp_path: Path) -> None:
    dev_profile(mfa)
    Path(os.environ["ELEVATE_CONFIG"]).chmod(0o666)
    stderr = same(*both_paths(tmp_path, ["credential-process", "dev"]))
    assert "elevate: error:" in stderr


def test_a_config_named_by_option_that_is_missing(mfa: MfaScript, tmp_path: Path) -> None:
    dev_profile(mfa)
    missing = str(tmp_path / "absent.toml")
    same(*both_paths(tmp_path, ["--config", missing, "credential-process", "dev"]))
    same(*both_paths(tmp_path, [f"--config={missing}", "credential-process", "dev"]))


def test_locked_keyring(fake_sts: FakeSts, mfa: MfaScript, tmp_path: Path) -> None:
    dev_profile(mfa)
    stderr = same(*both_paths(tmp_path, ["credential-process", "dev"], {"ELEVATE_TEST_KEYRING_LOCKED": "1"}))
    assert "locked" in stderr
    assert fake_sts.count("AssumeRole") == 0


def test_mfa_rejected(fake_sts: FakeSts, mfa: MfaScript, tmp_path: Path) -> None:
    dev_profile(mfa)
    fake_sts.behave("AssumeRole", error=MFA_REJECTED)
    stderr = same(*both_paths(tmp_path, ["credential-process", "dev"]))
    assert "MFA" in stderr
    assert fake_sts.count("AssumeRole") % 2 == 0  # the same number of tries on each path


def test_success_answers_and_indexes_alike(fake_sts: FakeSts, mfa: MfaScript, tmp_path: Path) -> None:
    dev_profile(mfa)
    miss, click = both_paths(tmp_path, ["credential-process", "dev"])
    assert miss.returncode == click.returncode == 0, (miss.stderr, click.stderr)
    assert miss.stderr == click.stderr
    for name, done in (("miss", miss), ("click", click)):
        env = dict(os.environ, ELEVATE_CACHE_DIR=str(tmp_path / f"cache-{name}"))
        assert hit.serve(None, "dev", env, __import__("time").time()) == done.stdout
        index = (tmp_path / f"cache-{name}" / hit.INDEX_NAME).read_text()
        assert index.count("\n") == 2  # the header and one record


# -- the argv: one parser -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "dev"],
        ["credential-process", "--no-cache", "dev"],
        ["credential-process", "-t", "123456", "dev"],
        ["credential-process", "dev", "extra"],
        ["credential-process", "--help"],
        ["--debug", "credential-process", "dev"],
        ["credential-process", "--", "dev"],
        ["credential-process", ""],
        [],
    ],
)
def test_any_other_argv_is_left_to_the_cli(argv: list[str]) -> None:
    assert credprocess.answer_miss(argv, dict(os.environ), None) is None


# -- the keyring backend: chosen without discovery, per platform ---------------------------------


class Loaded:
    """keyring.core.load_keyring's stand-in: records the names asked for; `refuse` ones raise."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.names: list[str] = []
        self.refuse = refuse

    def __call__(self, name: str) -> object:
        self.names.append(name)
        if name in self.refuse:
            raise RuntimeError(f"{name} is not usable here")
        from elevate_testkeyring import FileKeyring

        return FileKeyring()  # type: ignore[no-untyped-call]  # KeyringBackend.__init__ is untyped


def choose(monkeypatch: pytest.MonkeyPatch, platform: str, loader: Loaded) -> Optional[str]:
    """The backend choose_backend sets for `platform` with nothing configured, or None (left to
    keyring's discovery). That it sets it: tests/test_keyring_backend_order.py, in children."""
    import keyring.core

    from elevate import keystore

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    monkeypatch.setattr(keyring.core, "load_keyring", loader)
    backend = keystore.backend_for(platform)
    return None if backend is None else type(backend).__name__


@pytest.mark.parametrize(
    ("platform", "backend"),
    [
        ("linux", "keyring.backends.SecretService.Keyring"),
        ("darwin", "keyring.backends.macOS.Keyring"),
        ("win32", "keyring.backends.Windows.WinVaultKeyring"),
    ],
)
def test_each_platform_imports_its_own_backend_directly(
    monkeypatch: pytest.MonkeyPatch, platform: str, backend: str
) -> None:
    loader = Loaded()
    assert choose(monkeypatch, platform, loader) == "FileKeyring"
    assert loader.names == [backend]


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_an_unusable_platform_backend_is_left_to_discovery(
    monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    from elevate import keystore

    loader = Loaded(refuse=frozenset(keystore.PLATFORM_BACKENDS.values()))
    assert choose(monkeypatch, platform, loader) is None
    assert loader.names == [keystore.PLATFORM_BACKENDS[platform]]


def test_a_platform_without_a_known_backend_is_left_to_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    loader = Loaded()
    assert choose(monkeypatch, "freebsd13", loader) is None
    assert loader.names == []


def test_the_environment_comes_before_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring.core

    from elevate import keystore

    loader = Loaded()
    monkeypatch.setattr(keyring.core, "load_keyring", loader)
    backend = keystore.backend_for("linux")  # PYTHON_KEYRING_BACKEND names the test backend (sealed_env)
    assert type(backend).__name__ == "FileKeyring"
    assert loader.names == ["elevate_testkeyring.FileKeyring"]  # the variable's, never the platform's
