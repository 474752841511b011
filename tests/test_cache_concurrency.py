"""Single flight across processes: N concurrent `elevate credential-process` calls on an empty
cache cost one MFA code and one AssumeRole; a holder that dies hands over; a holder's failure
reaches every waiter and does not poison later attempts.

Every process runs without a controlling terminal (start_new_session), so what elevate says
to "the terminal" lands on its stderr, where the tests read it. The fake STS runs in this
process, so a test can hold AssumeRole open (a gate) until the waiters are seen waiting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cli import elevate_argv
from support.configs import write_config
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE, SERIAL
from support.fakests import FakeSts

from elevate import core, keystore
from elevate.models import SourceKeys

WAITING = "elevate: waiting for the MFA prompt in another elevate process..."
DEADLINE = 30.0  # no process and no wait in these tests may take longer


class Elevation:
    """One `python -m elevate credential-process dev` child, its stderr in a file."""

    def __init__(self, directory: Path, index: int, python_options: tuple[str, ...] = ()) -> None:
        self.err_path = directory / f"stderr-{index}"
        with self.err_path.open("w") as err:
            self.proc = subprocess.Popen(
                elevate_argv("credential-process", "dev", python_options=python_options),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=dict(os.environ),
                start_new_session=True,
            )
        self.stdout = ""

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def is_waiting(self) -> bool:
        return WAITING in self.stderr

    def finish(self, timeout: float = DEADLINE) -> Elevation:
        out, _ = self.proc.communicate(timeout=timeout)
        self.stdout = out.decode()
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll for a condition another process brings about (there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting until {what}")
        time.sleep(0.02)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., Elevation]]:
    """Start elevations; whatever is still running at the end is killed."""
    running: list[Elevation] = []

    def start(*python_options: str) -> Elevation:
        running.append(Elevation(tmp_path, len(running), python_options))
        return running[-1]

    yield start
    for elevation in running:
        elevation.stop()


def setup_profile(tmp_path: Path, block_first_run: bool = False) -> tuple[Path, Path]:
    """Keys, config and an mfa_process that counts its runs; returns (counter, release file).

    With block_first_run the first run hangs like an unanswered prompt until the release
    file exists (or 25 s pass, so an orphan cannot outlive the test for long).
    """
    keystore.put_keys("dev", SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET))
    counter, release = tmp_path / "mfa-runs", tmp_path / "release"
    block = (
        f"if [ \"$n\" -eq 1 ]; then i=0; while [ ! -e '{release}' ] && [ $i -lt 500 ]; "
        "do sleep 0.05; i=$((i + 1)); done; fi\n"
        if block_first_run
        else ""
    )
    script = tmp_path / "mfa-code"
    script.write_text(
        f"#!/bin/sh\necho \"$$\" >> '{counter}'\nn=$(wc -l < '{counter}')\n{block}"
        'printf "%06d\\n" $((400000 + n))\n'
    )
    script.chmod(0o700)
    profile = {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev", "mfa_process": str(script)}
    write_config({"dev": profile}, default="dev")
    return counter, release


def test_sixteen_concurrent_calls_cost_one_code_and_one_assume_role(
    tmp_path: Path, fake_sts: FakeSts, started: Callable[..., Elevation]
) -> None:
    counter, _ = setup_profile(tmp_path)
    gate = threading.Event()
    fake_sts.behave("AssumeRole", delay=0.5, gate=gate)

    calls = [started() for _ in range(16)]
    fake_sts.wait_for("AssumeRole", 1, timeout=DEADLINE)
    # Hold STS until every other caller is seen waiting, so each of them really races.
    wait_until(lambda: sum(c.is_waiting() for c in calls) == 15, "15 callers wait for the holder")
    gate.set()
    for call in calls:
        call.finish()

    assert [c.proc.returncode for c in calls] == [0] * 16, [c.stderr for c in calls]
    assert lines(counter) == 1
    assert fake_sts.count("AssumeRole") == 1 and fake_sts.count("GetCallerIdentity") == 1
    answers = {c.stdout for c in calls}
    assert len(answers) == 1
    answer = json.loads(answers.pop())
    assert answer["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"]
    assert fake_sts.last("AssumeRole")["TokenCode"] == "400001"
    assert sorted(c.stderr for c in calls) == [""] + [WAITING + "\n"] * 15


def test_a_holder_killed_mid_prompt_hands_over_to_a_waiter(
    tmp_path: Path, fake_sts: FakeSts, started: Callable[..., Elevation]
) -> None:
    counter, release = setup_profile(tmp_path, block_first_run=True)
    try:
        holder = started()
        wait_until(lambda: lines(counter) == 1, "the holder's mfa_process runs")
        waiters = [started() for _ in range(4)]
        wait_until(lambda: all(w.is_waiting() for w in waiters), "the waiters wait for the holder")
        assert fake_sts.count("AssumeRole") == 0

        os.kill(holder.proc.pid, signal.SIGKILL)
        holder.proc.wait(timeout=DEADLINE)
        # The orphaned mfa_process stays blocked (25 s): the lock must not live on in it.
        for waiter in waiters:
            waiter.finish(timeout=10)
    finally:
        release.touch()

    assert holder.proc.returncode == -signal.SIGKILL
    assert [w.proc.returncode for w in waiters] == [0] * 4, [w.stderr for w in waiters]
    assert len({w.stdout for w in waiters}) == 1
    assert json.loads(waiters[0].stdout)["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"]
    assert fake_sts.count("AssumeRole") == 1
    assert lines(counter) == 2  # the dead holder's prompt, and the one waiter that took over
    assert fake_sts.last("AssumeRole")["TokenCode"] == "400002"


def test_a_holders_failure_reaches_every_waiter_and_does_not_poison_later_calls(
    tmp_path: Path, fake_sts: FakeSts, started: Callable[..., Elevation]
) -> None:
    counter, _ = setup_profile(tmp_path)
    gate = threading.Event()
    fake_sts.behave(
        "AssumeRole",
        gate=gate,
        error=(403, "AccessDenied", "User: alice is not authorized to perform: sts:AssumeRole"),
    )
    holder = started()
    fake_sts.wait_for("AssumeRole", 1, timeout=DEADLINE)
    waiters = [started() for _ in range(6)]
    wait_until(lambda: all(w.is_waiting() for w in waiters), "the waiters wait for the holder")
    gate.set()
    for call in [holder, *waiters]:
        call.finish()

    def error_line(call: Elevation) -> str:
        assert call.proc.returncode == 1 and call.stdout == "", call.stderr
        assert "Traceback" not in call.stderr
        errors = [line for line in call.stderr.splitlines() if line.startswith("elevate: error: ")]
        assert len(errors) == 1, call.stderr
        return errors[0]

    assert error_line(holder).startswith(f"elevate: error: AssumeRole {ROLE}: access denied (User: alice")
    for waiter in waiters:
        assert waiter.stderr.splitlines()[0] == WAITING
        assert error_line(waiter).startswith(
            f"elevate: error: another elevate process failed: AssumeRole {ROLE}: access denied"
        )
    # The waiters got the holder's answer: nobody asked for another code or called STS again.
    assert fake_sts.count("AssumeRole") == 1 and lines(counter) == 1
    cache = Path(os.environ["ELEVATE_CACHE_DIR"])
    assert len(list(cache.glob("*.error"))) == 1

    # Later (past the seconds a failure is answered again, for SDK chains that run elevate twice),
    # once the role lets alice in, a fresh call is not answered with the old error.
    fake_sts.reset("AssumeRole")
    time.sleep(core.SDK_FAILURE_MEMORY_SECONDS)
    later = started().finish()
    assert later.proc.returncode == 0, later.stderr
    assert json.loads(later.stdout)["AccessKeyId"] == fake_sts.issued[0]["AccessKeyId"]
    assert fake_sts.count("AssumeRole") == 2 and lines(counter) == 2
    assert list(cache.glob("*.error")) == []  # a success clears the failure record


def test_waiters_wait_before_parsing_the_config_or_importing_the_cache(
    tmp_path: Path, fake_sts: FakeSts, started: Callable[..., Elevation]
) -> None:
    counter, release = setup_profile(tmp_path, block_first_run=True)
    try:
        holder = started()
        wait_until(lambda: lines(counter) == 1, "the holder's mfa_process runs")
        waiters = [started("-X", "importtime") for _ in range(3)]
        wait_until(lambda: all(w.is_waiting() for w in waiters), "the waiters wait for the holder")
    finally:
        release.touch()
    holder.finish()
    for waiter in waiters:
        waiter.finish()
    assert [c.proc.returncode for c in (holder, *waiters)] == [0] * 4, holder.stderr
    assert len({c.stdout for c in (holder, *waiters)}) == 1
    for waiter in waiters:
        modules = {
            line.rsplit("|", 1)[1].strip()
            for line in waiter.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2
        }
        # They queued in elevate.hit and answered from the index the holder wrote: no
        # config parse, no cache or model modules, let alone click, keyring or botocore.
        assert "elevate.hit" in modules
        heavy = {"elevate.config", "elevate.cache", "elevate.models", "tomllib", "tomli"}
        assert not modules & heavy
        assert not [m for m in modules if m.split(".")[0] in ("boto3", "botocore", "keyring", "click")]
    assert fake_sts.count("AssumeRole") == 1 and lines(counter) == 1
