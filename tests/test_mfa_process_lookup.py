"""Which program `mfa_process` runs: never one from the working directory.

With an empty or relative PATH entry (a common dotfile mistake), `mfa_process = "ykman ..."`
would run a `ykman` planted in a cloned repository, as the user, with the terminal. The
program is looked up as the dialog's is (elevate.programs): an absolute path as given, else
a bare name in PATH's absolute directories owned by root or the user and not writable by
others; anything else is refused in one line that says which.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.cli import one_error_line, run_elevate
from support.configs import write_config
from support.constants import ROLE, SERIAL
from support.fakests import FakeSts
from support.sessioncache import example_keys

from elevate import hardening, mfa
from elevate.errors import MfaError, Terminated
from elevate.models import Profile

COMMAND = "ykman oath accounts code -s aws"


def plant(directory: Path, marker: Path, code: str = "135790") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / "ykman"
    program.write_text(f"#!/bin/sh\ntouch '{marker}'\necho {code}\n")
    program.chmod(stat.S_IRWXU)
    return program


@pytest.mark.parametrize("entry", ["", ".", "bin"])
def test_a_ykman_planted_in_the_working_directory_never_runs(
    fake_sts: FakeSts, tmp_path: Path, entry: str
) -> None:
    example_keys()
    write_config({"dev": {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev", "mfa_process": COMMAND}})
    repo, marker = tmp_path / "repo", tmp_path / "planted-ran"
    plant(repo, marker)
    plant(repo / "bin", marker)
    env = dict(os.environ, PATH=os.pathsep.join([entry, "/usr/bin", "/bin"]))
    line = one_error_line(run_elevate("credential-process", "dev", env=env, cwd=repo))
    assert not marker.exists(), "the planted ykman ran"
    assert "mfa_process: 'ykman' is found only at" in line and "give the absolute path" in line
    assert fake_sts.count("AssumeRole") == 0


def test_a_relative_path_is_refused_and_an_absolute_one_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    program = plant(tmp_path / "tools", marker, "246813")
    with pytest.raises(MfaError, match=r"'tools/ykman' is a relative path.*give its absolute path"):
        mfa.process_program("tools/ykman", {"PATH": "/usr/bin"})
    assert mfa.process_program(str(program), {"PATH": ""}) == str(program)
    assert not marker.exists()


def test_a_name_in_a_trusted_directory_runs_and_one_others_can_replace_does_not(tmp_path: Path) -> None:
    trusted, shared = tmp_path / "trusted", tmp_path / "shared"
    plant(trusted, tmp_path / "ran")
    plant(shared, tmp_path / "ran")
    shared.chmod(0o1777)
    assert mfa.process_program("ykman", {"PATH": f"{shared}{os.pathsep}{trusted}"}) == str(trusted / "ykman")
    with pytest.raises(MfaError, match=r"'ykman' is found only at .*shared/ykman"):
        mfa.process_program("ykman", {"PATH": str(shared)})
    with pytest.raises(MfaError, match=r"command not found in PATH's trusted directories: 'ykman'"):
        mfa.process_program("ykman", {"PATH": str(tmp_path / "nowhere")})


def test_a_signal_while_mfa_process_starts_still_stops_it(tmp_path: Path) -> None:
    """A signal held while the child starts (signals_deferred) is raised once it is known, and
    must still stop it: before, it was raised before the clean-up that ends the child was in
    place, and an mfa_process (holding elevate's stderr) outlived elevate."""
    program = tmp_path / "slow-code"
    program.write_text("#!/bin/sh\nsleep 30\necho 123456\n")
    program.chmod(stat.S_IRWXU)
    started: list[subprocess.Popen[bytes]] = []

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(subprocess.Popen(*args, **kwargs))
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the start is guarded
        return started[-1]

    previous = {
        s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    }
    hardening.raise_on_signals()
    try:
        profile = Profile(name="dev", role_arn=ROLE, mfa_serial=SERIAL, keys="dev", mfa_process=str(program))
        with pytest.raises(Terminated):
            mfa.obtain_code(
                profile,
                None,
                tty_opener=lambda: contextlib.nullcontext(None),
                popen=popen,
                environ=os.environ,
            )
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for child in started:
            alive = child.poll() is None
            if alive:
                child.kill()
            child.wait()
    assert not alive, "mfa_process outlived the signal"
