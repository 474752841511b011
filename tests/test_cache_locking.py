"""The per-entry lock: a waiter says so and gives up after its bound; an unusable lock file
is one error line, never followed as a symlink.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.cli import one_error_line, run_elevate
from support.configs import write_config
from support.fakests import FakeSts
from support.sessioncache import (
    DEV,
    DEV_PROFILE,
    Clock,
    FakeClient,
    MfaScript,
    cache_dir,
    elevator,
    profile,
)

from elevate import cache as cache_mod
from elevate.errors import CacheError
from elevate.invocation import Invocation
from elevate.models import SourceKeys
from elevate.store import FileStore

# -- waiting for another process --------------------------------------------------------------


def test_a_waiter_says_so_and_gives_up_after_its_bound() -> None:
    clock = Clock()
    client = FakeClient(clock)
    messages: list[str] = []
    store = FileStore(cache_dir())
    holder = cache_mod.SessionCache(store, store, clock)
    with holder.locked(
        cache_mod.entry_key(DEV_PROFILE, Invocation.from_environ(os.environ)), on_wait=lambda: None
    ):
        waiter = elevator(clock, client, messages=messages)
        waiter.lock_timeout = 0.3
        with pytest.raises(CacheError, match=r"waiting for another elevate process .*retry"):
            waiter.elevate(DEV_PROFILE)
    assert messages == ["waiting for the MFA prompt in another elevate process..."]
    assert client.calls == []
    # Released: the next caller does not wait and is not told anything about waiting.
    elevator(clock, client, messages=messages).elevate(DEV_PROFILE)
    assert len(messages) == 1 and client.count("AssumeRole") == 1


# -- an unusable lock file --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["directory", "symlink"])
def test_an_unusable_lock_file_is_one_line_not_a_traceback(
    kind: str, tmp_path: Path, fake_sts: FakeSts, keys: SourceKeys, mfa: MfaScript
) -> None:
    write_config({"dev": {**DEV, "mfa_process": mfa.command}}, default="dev")
    lock = (
        FileStore(cache_dir()).ensure()
        / f"{cache_mod.entry_key(profile(), Invocation.from_environ(os.environ))}.lock"
    )
    if kind == "directory":
        lock.mkdir()
    else:
        lock.symlink_to(tmp_path / "elsewhere")
    for args in (["credential-process", "dev"], ["export", "dev", "--format", "json"]):
        message = one_error_line(run_elevate(*args))
        assert message.startswith(f"elevate: error: cannot open the lock file {lock} (")
        assert message.endswith("): remove it")
    assert fake_sts.requests == [] and mfa.runs == 0
    assert not (tmp_path / "elsewhere").exists()  # the symlink was not followed
