"""How a lean answer ends (elevate.__main__.end_now): an indexed hit and a waiter of the hit queue
flush their answer and leave without Python's teardown; the full path keeps its normal exit; a
stdout that cannot take the answer ends in one line and a failing status, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from support.hits import LEAN, hold_queue, index_it, seed, write_config

from elevate.models import SessionCredentials

ARGV = ["credential-process", "dev"]


def lean_with_exit_marker(marker: Path) -> list[str]:
    """The lean launcher's command line, with an atexit handler that leaves `marker` behind
    when (and only when) Python's normal teardown runs."""
    hook = f"import atexit; atexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
    return [*LEAN[:-1], hook + LEAN[-1]]


def test_an_indexed_hit_ends_without_teardown_and_its_answer_is_whole(tmp_path: Path) -> None:
    write_config()
    creds = seed()
    index_it()
    marker, out = tmp_path / "teardown-ran", tmp_path / "answer.json"
    # A regular file: stdout is block-buffered there, so an answer not flushed would be lost.
    with out.open("w") as stdout:
        done = subprocess.run(
            [*lean_with_exit_marker(marker), *ARGV], stdout=stdout, stderr=subprocess.PIPE, timeout=60
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["SecretAccessKey"] == creds.secret_access_key
    assert not marker.exists()


def test_the_full_path_keeps_the_normal_exit(tmp_path: Path) -> None:
    marker = tmp_path / "teardown-ran"
    done = subprocess.run(
        [*lean_with_exit_marker(marker), "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "elevate" in done.stdout, done.stderr
    assert marker.exists()


def waiter_answers(argv: list[str], out: Path, stderr: int | None) -> tuple[int, SessionCredentials]:
    """Run `argv` as a waiter behind a held queue, its stdout in `out`; once it sleeps, fill the
    entry and let the queue go. Its exit status, and the credentials it should have answered."""
    write_config()
    holder = hold_queue(30.0)
    with out.open("w") as stdout:
        waiter = subprocess.Popen(
            argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            if waiter.stderr is not None:
                assert b"waiting for the MFA prompt" in waiter.stderr.readline()
            else:
                time.sleep(1.0)  # asleep on the queue by now (its note had nowhere to go)
                assert waiter.poll() is None
            creds = seed()
            index_it()
            holder.kill()  # the filler is done: its lock goes with it
            return waiter.wait(timeout=60), creds
        finally:
            waiter.kill()
            holder.kill()
            holder.wait()


def with_closed(fd: int) -> list[str]:
    """A command-line prefix that runs the rest with `fd` closed."""
    code = f"import os, subprocess, sys\nos.close({fd})\nsys.exit(subprocess.run(sys.argv[1:]).returncode)\n"
    return [sys.executable, "-c", code]


def test_a_waiter_ends_without_teardown_and_its_answer_is_whole(tmp_path: Path) -> None:
    marker, out = tmp_path / "teardown-ran", tmp_path / "answer.json"
    status, creds = waiter_answers([*lean_with_exit_marker(marker), *ARGV], out, subprocess.PIPE)
    assert status == 0
    assert json.loads(out.read_text())["SecretAccessKey"] == creds.secret_access_key
    assert not marker.exists()


def test_a_hit_to_a_full_disk_fails_in_one_line() -> None:
    write_config()
    seed()
    index_it()
    with open("/dev/full", "w") as full:
        done = subprocess.run([*LEAN, *ARGV], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["elevate: error: cannot write to stdout: No space left on device"]


def test_the_cli_to_a_full_disk_fails_in_one_line() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*LEAN, "--version"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["elevate: error: cannot write to stdout: No space left on device"]


def test_a_hit_whose_reader_is_gone_fails_quietly() -> None:
    write_config()
    seed()
    index_it()
    # The reader closes its end before elevate writes: the write meets EPIPE (Python ignores SIGPIPE).
    code = (
        "import os, subprocess, sys\n"
        "r, w = os.pipe()\n"
        "os.close(r)\n"
        "done = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE)\n"
        "print(done.returncode); print(done.stderr.decode())\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code, *LEAN, *ARGV], capture_output=True, text=True, timeout=60
    )
    status, _, stderr = done.stdout.partition("\n")
    assert status == "1", done.stdout + done.stderr
    assert stderr.strip() == ""
    assert time.monotonic() - started < 30


def test_a_hit_with_stderr_closed_still_answers_and_succeeds(tmp_path: Path) -> None:
    write_config()
    creds = seed()
    index_it()
    out = tmp_path / "answer.json"
    with out.open("w") as stdout:
        done = subprocess.run([*with_closed(2), *LEAN, *ARGV], stdout=stdout, timeout=60)
    assert done.returncode == 0
    assert json.loads(out.read_text())["SecretAccessKey"] == creds.secret_access_key


def test_a_waiter_with_stderr_closed_still_answers_and_succeeds(tmp_path: Path) -> None:
    out = tmp_path / "answer.json"
    status, creds = waiter_answers([*with_closed(2), *LEAN, *ARGV], out, None)
    assert status == 0
    assert json.loads(out.read_text())["SecretAccessKey"] == creds.secret_access_key


def test_a_hit_with_stdout_closed_fails_in_one_line() -> None:
    write_config()
    seed()
    index_it()
    done = subprocess.run([*with_closed(1), *LEAN, *ARGV], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["elevate: error: cannot write to stdout: it is closed"]
