"""A command run by bash on a fresh pseudo-terminal, for tests of what a person at a terminal sees."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect

from support.realparts import require_tool


def spawn(command: str, cwd: Path, timeout: float = 60, **env: str) -> pexpect.spawn[str]:
    """`command` run by `bash -c` (no rc files) on a new pty, TERM=dumb plus `env`."""
    return pexpect.spawn(
        require_tool("bash"),
        ["--norc", "--noprofile", "-c", command],
        cwd=str(cwd),
        env={**os.environ, "TERM": "dumb", **env},
        encoding="utf-8",
        codec_errors="replace",
        timeout=timeout,
    )


@contextmanager
def terminal(command: str, cwd: Path, timeout: float = 60, **env: str) -> Iterator[pexpect.spawn[str]]:
    """`spawn`, always reaped at the end of the block."""
    child = spawn(command, cwd, timeout, **env)
    try:
        yield child
    finally:
        child.close(force=True)


def finish(child: pexpect.spawn[str]) -> tuple[str, int]:
    """Everything the terminal showed until the end, and the exit status."""
    child.expect(pexpect.EOF)
    shown = str(child.before)
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return shown, child.exitstatus
