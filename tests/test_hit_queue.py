"""The hit queue (elevate.hit): on an index miss, waiters sleep behind the filler before parsing,
wake together to an indexed answer, hand over (as a value) when the filler left nothing, give up
at their bound, skip the queue when anything about it is unusual, and stay inside their import
budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.hits import LEAN, hold_lock, hold_queue, index_it, queue_path, seed, write_config

from elevate import hit, locks
from elevate.errors import LockTimeout

ARGV = ["credential-process", "dev"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_first_caller_holds_the_queue_and_goes_on_to_fill() -> None:
    write_config()
    told: list[bool] = []
    text, queued = hit.wait_for_filler(ARGV, os.environ, lambda: told.append(True))
    assert text is None and queued is not None and queued.since is None
    assert told == []  # nobody to wait for
    assert oct(queue_path().stat().st_mode & 0o777) == "0o600"
    take = f"fcntl.flock(os.open({str(queue_path())!r}, os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)"
    probe = [sys.executable, "-c", "import fcntl, os; " + take]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0
    queued.release()
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


def test_a_waiter_sleeps_in_the_kernel_then_answers_from_the_index() -> None:
    write_config()
    holder = hold_queue(1.0)
    seed()
    index_it()  # what the filler leaves behind
    told: list[bool] = []
    started, cpu = time.monotonic(), time.process_time()
    text, queued = hit.wait_for_filler(ARGV, os.environ, lambda: told.append(True), timeout=30)
    waited, used = time.monotonic() - started, time.process_time() - cpu
    holder.wait(10)
    assert told == [True] and text is not None and queued is None  # answered: the queue is not kept
    assert text == hit.serve(None, "dev", os.environ, time.time())
    assert 0.5 < waited < 5 and used < 0.05


def test_waiters_wake_together_and_all_answer() -> None:
    write_config()
    holder = hold_queue(1.5)
    seed()
    index_it()
    code = (
        "import os, sys, time; from elevate import hit\n"
        "a, _ = hit.wait_for_filler(['credential-process', 'dev'], os.environ, lambda: None)\n"
        "print(time.time()); sys.stdout.write(a)\n"
    )
    waiters = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [w.communicate(timeout=30)[0].splitlines() for w in waiters]
    holder.wait(10)
    assert [w.returncode for w in waiters] == [0, 0]
    assert outs[0][1] == outs[1][1] and "AccessKeyId" in outs[0][1]
    assert abs(float(outs[0][0]) - float(outs[1][0])) < 0.5


def test_a_waiter_woken_to_a_miss_becomes_the_filler_with_its_wait_as_a_value() -> None:
    write_config()
    holder = hold_queue(0.5)  # the filler dies without leaving an entry
    before = time.time()
    text, queued = hit.wait_for_filler(ARGV, os.environ, lambda: None, timeout=30)
    holder.wait(10)
    assert text is None and queued is not None and queued.fd >= 0
    assert queued.since is not None and before <= queued.since < time.time() - 0.3
    queued.release()
    assert queued.fd == -1


def test_a_failure_recorded_since_the_wait_began_reaches_the_next_filler() -> None:
    """The hand-over is a value: the CLI passes `since` to the cache's lock, no module global."""
    from elevate import cache as cache_mod
    from elevate.errors import StsError
    from elevate.store import FileStore

    write_config()
    store = FileStore(Path(os.environ["ELEVATE_CACHE_DIR"]))
    cache = cache_mod.SessionCache(store, store, cache_mod.utcnow)
    store.ensure()
    since = time.time() - 5
    cache.record_failure("k", StsError("denied"))
    with cache.locked("k", lambda: None, 5, queued_since=since) as started:
        assert started == since
        assert cache.failure_since("k", started) is not None
    with cache.locked("k", lambda: None, 5) as started:
        assert cache.failure_since("k", started) is None


def test_a_waiter_gives_up_at_its_bound_and_leaks_nothing() -> None:
    write_config()
    holder = hold_queue(5.0)
    fds = open_fds()
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=r"gave up after .*queue-[0-9a-f]{16}\.lock"):
            hit.wait_for_filler(ARGV, os.environ, lambda: None, timeout=0.5)
        assert 0.4 < time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait(10)
    assert open_fds() == fds


def test_a_symlink_in_place_of_the_queue_is_not_followed(tmp_path: Path) -> None:
    write_config()
    target = tmp_path / "victim"
    target.write_text("untouched")
    queue_path().symlink_to(target)
    assert hit.wait_for_filler(ARGV, os.environ, lambda: None) == (None, None)
    assert target.read_text() == "untouched"


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_no_queue_for_a_config_others_can_write(mode: int) -> None:
    write_config().chmod(mode)
    assert hit.wait_for_filler(ARGV, os.environ, lambda: None) == (None, None)


def test_no_queue_in_a_cache_directory_others_can_enter() -> None:
    write_config()
    cache = Path(os.environ["ELEVATE_CACHE_DIR"])
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o755)
    assert hit.wait_for_filler(ARGV, os.environ, lambda: None) == (None, None)
    assert not list(cache.glob("queue-*"))


@pytest.mark.parametrize(
    "argv", [["export", "dev"], ["credential-process", "dev", "-t", "123456"], ["--version"]]
)
def test_only_the_plain_credential_process_queues(argv: list[str]) -> None:
    write_config()
    assert hit.wait_for_filler(argv, os.environ, lambda: None) == (None, None)


def test_queue_names_differ_per_key_and_are_stable() -> None:
    assert hit.lock_name("a\0b") == hit.lock_name("a\0b")
    names = {hit.lock_name(f"config\0{i}\0dev") for i in range(1000)}
    assert len(names) == 1000
    assert all(n.startswith("queue-") and n.endswith(".lock") and len(n) == 27 for n in names)


def test_a_lock_waiter_sleeps_in_the_kernel_until_the_holder_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = hold_lock(path, 1.0)
    told: list[bool] = []
    fd = locks.open_lock(path)
    try:
        started, cpu = time.monotonic(), time.process_time()
        locks.acquire(fd, 30, lambda: told.append(True), path)
        waited, used = time.monotonic() - started, time.process_time() - cpu
    finally:
        os.close(fd)
        holder.wait(10)
    assert told == [True] and 0.5 < waited < 5 and used < 0.05


# What a lean waiter may have imported by the time it sleeps, beyond `python -I -S -c pass`:
# the hit's modules, the queue's, and the cheap standard modules they need. Not os, signal (its
# enum wrapper), contextlib, collections.abc, typing, json, the config or the cache.
WAITER_ALLOWED = {
    "elevate", "elevate.__main__", "elevate.hit", "elevate.disk", "elevate.hostos", "elevate.locks",
    "elevate.ui", "__future__", "stat", "_stat", "resource", "time", "_ctypes", "fcntl",
}  # fmt: skip


def test_a_lean_waiter_imports_only_its_allow_list(tmp_path: Path) -> None:
    write_config()
    holder = hold_queue(3.0)
    report = tmp_path / "modules.txt"
    # The lean launcher's main(), its stderr recording sys.modules when the waiting note reaches
    # it (with no terminal, the note goes to stderr).
    code = LEAN[-1].replace(
        "from elevate.__main__ import main; main()",
        "class Recording:\n"
        "    def __init__(self, stream): self.stream = stream\n"
        "    def __getattr__(self, name): return getattr(self.stream, name)\n"
        "    def write(self, text):\n"
        "        if 'waiting for the MFA prompt' in text:\n"
        f"            open({str(report)!r}, 'w').write(' '.join(sorted(sys.modules)))\n"
        "        return self.stream.write(text)\n"
        "sys.stderr = Recording(sys.stderr)\n"
        "from elevate.__main__ import main; main()",
    )
    waiter = subprocess.Popen(
        [*LEAN[:-1], code, "credential-process", "dev"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        start_new_session=True,  # no terminal: the note goes to stderr
    )  # fmt: skip
    deadline = time.monotonic() + 2.5
    while not report.exists() and time.monotonic() < deadline and waiter.poll() is None:
        time.sleep(0.02)
    seed()
    index_it()  # what the filler leaves behind, once the waiter sleeps
    out, err = waiter.communicate(timeout=60)
    holder.wait(10)
    assert waiter.returncode == 0, err[-2000:]
    assert "AccessKeyId" in json.loads(out)
    modules = set(report.read_text().split())  # it did wait: the note was written
    startup = set(
        subprocess.check_output(
            [sys.executable, "-I", "-S", "-c", "import sys; print(' '.join(sorted(sys.modules)))"], text=True
        ).split()
    )
    assert not sorted(modules - startup - WAITER_ALLOWED)
