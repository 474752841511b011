"""Run a command with elevated credentials in its environment.

On POSIX elevate replaces itself with the command (execvpe), so `run` does not return:
signals from the terminal
or from `kill` reach the command directly, exactly once (a forwarding parent would
deliver Ctrl-C twice and turn a graceful stop into a forced one), the exit status is the
command's own, and no Python process lingers holding the secrets. `exec --server` needs
elevate to stay alive as the credential server, so `supervise` runs the command as a child
instead and passes on the signals sent to elevate (not a terminal's, which reach both).
On Linux it also adopts what the command leaves behind (a child subreaper), so a daemon the
command started, even in a session of its own, stays in view after the command ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from . import hostos
from .errors import LaunchError
from .hardening import restore_core_dumps

# Variables that would make the child pick other credentials than the ones we give it.
SHADOWING = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)


def child_environment(base: Mapping[str, str], elevated: Mapping[str, str]) -> dict[str, str]:
    """`base` without anything that shadows our credentials, plus `elevated`."""
    env = {k: v for k, v in base.items() if k not in SHADOWING}
    env.update(elevated)
    return env


def run(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Become `argv` with `env` (POSIX: never returns), or run it and return its status (Windows)."""
    if not argv:
        raise LaunchError("no command to run")
    sys.stdout.flush()
    sys.stderr.flush()
    if hostos.can_exec():
        restore_core_dumps()
        try:
            os.execvpe(argv[0], list(argv), dict(env))  # noqa: S606 - the user's own command
        except FileNotFoundError:
            raise LaunchError(f"command not found: {argv[0]}") from None
        except PermissionError:
            raise LaunchError(f"permission denied: {argv[0]}") from None
        except OSError as exc:
            raise LaunchError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    return _run_windows(argv, env)  # pragma: no cover - Windows only


def _run_windows(argv: Sequence[str], env: Mapping[str, str]) -> int:  # pragma: no cover
    try:
        child = subprocess.Popen(list(argv), env=dict(env))
    except FileNotFoundError:
        raise LaunchError(f"command not found: {argv[0]}") from None

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the console delivers Ctrl-C to the child
    signal.signal(signal.SIGTERM, forward)
    return child.wait()


# What a supervising elevate passes on to its child (SIGCHLD tells it the child ended).
FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)
_WATCHED = (*FORWARDED, signal.SIGCHLD) if hasattr(signal, "SIGCHLD") else FORWARDED
_TTOU = (signal.SIGTTOU,) if hasattr(signal, "SIGTTOU") else ()
# si_code of a signal the kernel itself sent: a terminal's interrupt, quit or hang-up goes to the whole
# foreground process group, the child included, so passing it on would deliver it twice.
SI_KERNEL = 0x80
PR_SET_CHILD_SUBREAPER = 36
# After a signal asked elevate to end: what the command left gets this long after SIGTERM.
END_GRACE_SECONDS = 3.0


def adopt_orphans() -> bool:
    """Become a child subreaper (Linux): descendants whose parent ends are reparented to us,
    not to init, so none of them leaves our view. False where that is not possible."""
    if not hostos.can_adopt_orphans():
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def can_supervise() -> bool:
    """Whether this platform lets elevate stay the parent and wait for signals (Linux, BSD)."""
    return hasattr(signal, "sigtimedwait") and hasattr(os, "posix_spawnp")


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold the forwarded signals (and SIGCHLD) for `supervise`; threads started inside the
    block inherit the mask, so only `supervise` ever takes these signals."""
    if not can_supervise():
        raise LaunchError("`exec --server` needs a POSIX system with sigtimedwait")
    # SIGTTOU too: under a shell run as the command, elevate is a background job, and with
    # `stty tostop` a warning written from a refresh would stop it (and every request with it).
    # With SIGTTOU blocked the write goes through; the command starts with an empty mask.
    held = (*_WATCHED, *_TTOU)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        while signal.sigtimedwait(held, 0) is not None:
            pass  # taken by nobody now: the child is gone, and ours would only kill us
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def supervise(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run `argv` with `env` as a child, pass signals sent to elevate on to it, and return its
    exit status (128+N when a signal ended it). Call inside `signals_held`."""
    if not argv:
        raise LaunchError("no command to run")
    sys.stdout.flush()
    sys.stderr.flush()
    # Python ignores SIGPIPE and SIGXFSZ; the command gets the defaults, as under a shell.
    extra = (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None))
    resets = [s for s in (*FORWARDED, *extra) if s is not None]
    _asked_to_end.clear()
    adopt_orphans()
    try:
        pid = os.posix_spawnp(argv[0], list(argv), dict(env), setsigmask=(), setsigdef=resets)
    except FileNotFoundError:
        raise LaunchError(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise LaunchError(f"permission denied: {argv[0]}") from None
    except OSError as exc:
        raise LaunchError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    while True:
        info = signal.sigtimedwait(_WATCHED, 1.0)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code
        if info is None or info.si_signo not in FORWARDED or info.si_code == SI_KERNEL:
            continue
        _asked_to_end.append(info.si_signo)
        try:
            os.kill(pid, info.si_signo)
        except ProcessLookupError:
            continue  # it just ended; the next round reaps it


_asked_to_end: list[int] = []  # signals sent to elevate itself while it supervised


def outlast_leftovers(tell: Callable[[list[int]], None], poll: float = 0.5) -> None:
    """After the command ended (call inside `signals_held`): reap what it left behind until
    nothing remains; `tell(pids)` once if anything does. A signal sent to elevate, before or
    now (Ctrl-C included, which a detached process never gets), ends what remains instead."""
    if _asked_to_end:
        end_leftovers()
        return
    told = False
    while _reap_adopted():
        if not told:
            tell(adopted_pids())
            told = True
        info = signal.sigtimedwait(_WATCHED, poll)
        if info is not None and info.si_signo in FORWARDED:
            end_leftovers()
            return


def end_leftovers(grace: float = END_GRACE_SECONDS) -> None:
    """SIGTERM every process we adopted (and its process group), SIGKILL after `grace`."""
    deadline = time.monotonic() + grace
    sent: set[int] = set()
    while _reap_adopted() and time.monotonic() < deadline + grace:  # bounded, even for the unkillable
        final = time.monotonic() >= deadline
        for pid in adopted_pids():
            if pid in sent and not final:
                continue
            sent.add(pid)
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL if final else signal.SIGTERM)
                except OSError:
                    pass  # not a group leader, or already gone
        time.sleep(0.05)


def _reap_adopted() -> bool:
    """Reap whatever has ended; whether any child of ours remains."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def adopted_pids() -> list[int]:
    """Our living children (after the command: what it left behind), from /proc; [] elsewhere."""
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[0] != b"Z" and fields[1] == str(me).encode():
            found.append(int(entry))
    return sorted(found)
