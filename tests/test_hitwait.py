"""The hit queue (elevate.hitwait): on an index miss, waiters sleep behind the filler before parsing,
wake together to an indexed answer, hand over when the filler left nothing, give up at their bound,
and skip the queue (never follow or trust it) when anything about it is unusual.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_hitindex import hold_lock, index_it, seed, write_config

from elevate import hitindex, hitwait, locks
from elevate.errors import LockTimeout

ARGV = ["credential-process", "dev"]


def queue_path() -> Path:
    """The queue lock of `credential-process dev` for the config as it is now."""
    config = hitindex.config_file(None, os.environ)
    info = hitindex.trusted_config(config)
    assert info is not None
    key = hitindex.index_key(config, info, "dev", os.environ)
    return Path(os.environ["ELEVATE_CACHE_DIR"]) / hitwait.lock_name(key)


def hold_queue(seconds: float) -> subprocess.Popen[bytes]:
    """Another process holding the queue exclusive, as a filler does, for `seconds`."""
    path = queue_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return hold_lock(path, seconds)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def _released() -> Iterator[None]:
    yield None
    hitwait.release()


def test_the_first_caller_holds_the_queue_and_goes_on_to_fill() -> None:
    write_config()
    told: list[bool] = []
    assert hitwait.wait_for_filler(ARGV, os.environ, lambda: told.append(True)) is None
    assert told == []  # nobody to wait for
    assert queue_path().exists() and oct(queue_path().stat().st_mode & 0o777) == "0o600"
    # Another process finds it taken until the filler lets go.
    take = f"fcntl.flock(os.open({str(queue_path())!r}, os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)"
    probe = [sys.executable, "-c", "import fcntl, os; " + take]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0
    hitwait.release()
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


def test_a_waiter_sleeps_in_the_kernel_then_answers_from_the_index(tmp_path: Path) -> None:
    write_config()
    holder = hold_queue(1.0)
    seed()
    index_it()  # what the filler leaves behind
    told: list[bool] = []
    started, cpu = time.monotonic(), time.process_time()
    answer = hitwait.wait_for_filler(ARGV, os.environ, lambda: told.append(True), timeout=30)
    waited, used = time.monotonic() - started, time.process_time() - cpu
    holder.wait(10)
    assert told == [True] and answer is not None and json.loads(answer)["AccessKeyId"].startswith("ASIA")
    assert answer == hitindex.serve_credential_process(None, "dev", os.environ, time.time())
    assert 0.5 < waited < 5 and used < 0.05  # asleep in the kernel
    assert hitwait._held == []  # answered: the queue is not kept


def test_waiters_wake_together_and_all_answer(tmp_path: Path) -> None:
    """Shared waits: two waiters in other processes answer at once when the filler lets go."""
    write_config()
    holder = hold_queue(1.5)
    seed()
    index_it()
    code = (
        "import os, sys, time; from elevate import hitwait\n"
        "a = hitwait.wait_for_filler(['credential-process', 'dev'], os.environ, lambda: None)\n"
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


def test_a_waiter_woken_to_a_miss_becomes_the_filler_and_sees_failures_since_it_queued() -> None:
    write_config()
    holder = hold_queue(0.5)  # the filler dies without leaving an entry
    before = time.time()
    assert hitwait.wait_for_filler(ARGV, os.environ, lambda: None, timeout=30) is None
    holder.wait(10)
    assert len(hitwait._held) == 1  # now it holds the queue, exclusive
    # The cache treats a failure recorded since it queued as an answer to it too.
    since = locks.wait_began(time.time())
    assert before <= since < time.time() - 0.3
    assert locks.take_over(Path("/nowhere.lock"))[1] == since
    hitwait.release()
    now = time.time()
    assert hitwait._held == [] and locks.wait_began(now) == now


def test_a_waiter_gives_up_at_its_bound_and_leaks_nothing() -> None:
    write_config()
    holder = hold_queue(5.0)
    fds = open_fds()
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=r"gave up after .*queue-[0-9a-f]{16}\.lock"):
            hitwait.wait_for_filler(ARGV, os.environ, lambda: None, timeout=0.5)
        assert 0.4 < time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait(10)
    assert open_fds() == fds and hitwait._held == []


def test_a_symlink_in_place_of_the_queue_is_not_followed(tmp_path: Path) -> None:
    write_config()
    target = tmp_path / "victim"
    target.write_text("untouched")
    queue_path().parent.mkdir(parents=True, exist_ok=True)
    queue_path().symlink_to(target)
    assert hitwait.wait_for_filler(ARGV, os.environ, lambda: None) is None
    assert hitwait._held == [] and target.read_text() == "untouched"


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_no_queue_for_a_config_others_can_write(mode: int) -> None:
    config = write_config()
    config.chmod(mode)
    assert hitwait.wait_for_filler(ARGV, os.environ, lambda: None) is None
    cache = Path(os.environ["ELEVATE_CACHE_DIR"])
    assert hitwait._held == [] and not list(cache.glob("queue-*")) if cache.exists() else True


def test_no_queue_in_a_cache_directory_others_can_enter() -> None:
    write_config()
    cache = Path(os.environ["ELEVATE_CACHE_DIR"])
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o755)
    assert hitwait.wait_for_filler(ARGV, os.environ, lambda: None) is None
    assert hitwait._held == [] and not list(cache.glob("queue-*"))


@pytest.mark.parametrize(
    "argv", [["export", "dev"], ["credential-process", "dev", "-t", "123456"], ["--version"]]
)
def test_only_the_plain_credential_process_queues(argv: list[str]) -> None:
    write_config()
    assert hitwait.wait_for_filler(argv, os.environ, lambda: None) is None
    assert hitwait._held == []


def test_queue_names_differ_per_key_and_are_stable() -> None:
    assert hitwait.lock_name("a\0b") == hitwait.lock_name("a\0b")
    names = {hitwait.lock_name(f"config\0{i}\0dev") for i in range(1000)}
    assert len(names) == 1000
    assert all(n.startswith("queue-") and n.endswith(".lock") and len(n) == 27 for n in names)


# What a waiter may have imported by the time it sleeps: the hit's modules, the queue's, and
# the handful of standard modules they need. Not typing, pathlib, the config or the cache:
# 31 waiters importing those would compete with the filler for the CPU.
WAITER_OWN = {"elevate.errors", "elevate.hardening", "elevate.locks", "elevate.hitwait", "elevate.ui"}
WAITER_STDLIB = (
    "import os, sys, stat, json, time, resource, signal, select, fcntl, io, contextlib, collections.abc"
)


def test_a_waiter_imports_nothing_heavy_before_it_sleeps(tmp_path: Path) -> None:
    from test_hitindex import FORBIDDEN, OWN

    write_config()
    holder = hold_queue(3.0)
    report = tmp_path / "modules.json"
    # main() as the console script runs it; the modules are recorded when it starts to wait.
    code = (
        "import json, sys; from elevate import __main__ as m\n"
        "def note():\n"
        f"    open({str(report)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
        "m._say_waiting = note\n"
        "sys.argv[1:] = ['credential-process', 'dev']\nm.main()\n"
    )
    waiter = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
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
    modules = set(json.loads(report.read_text()))  # it did wait: note() ran
    probe = "import json, sys; " + WAITER_STDLIB + "; print(json.dumps(sorted(sys.modules)))"
    baseline = set(json.loads(subprocess.check_output([sys.executable, "-c", probe], timeout=60)))
    startup = set(json.loads(subprocess.check_output(
        [sys.executable, "-c", "import json, sys; print(json.dumps(sorted(sys.modules)))"], timeout=60
    )))  # fmt: skip
    assert not sorted((modules - startup) & (FORBIDDEN - WAITER_OWN))
    assert not sorted(modules - baseline - OWN - WAITER_OWN)
