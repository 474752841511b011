"""`elevate exec --server` refreshing through the MFA prompt on the terminal, on a real pty.

With duration_seconds = 900 the server's refresh point (15 minutes left, plus a minute of
use) comes a minute after the first elevation: the child's next fetch then finds the
credentials inside the window and elevate asks for a new code on the terminal while the
child runs. What the README promises ("else with the prompt on your terminal").
"""

from __future__ import annotations

import io
import re
import shlex
import sys
import time
from pathlib import Path

import pytest
from support.cli import run_elevate
from support.provision import Provisioned
from support.terminal import finish
from support.ttyprompt import ELEVATE, prompt_for, set_up, terminal

pytestmark = pytest.mark.slow

CHILD = """
import json, os, sys, time, urllib.request
def fetch():
    request = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["AccessKeyId"]
first = fetch()
print("child: first fetch", flush=True)
time.sleep(float(sys.argv[1]))
keys = {first}
deadline = time.monotonic() + 60
while len(keys) == 1 and time.monotonic() < deadline:
    keys.add(fetch())
    time.sleep(0.5)
print("child: distinct keys", len(keys), flush=True)
"""


def test_a_refresh_under_the_server_asks_for_the_code_on_the_terminal(moto_env: str, tmp_path: Path) -> None:
    user: Provisioned = set_up(moto_env, "server-prompt", duration_seconds=900)
    child_argv = shlex.join([sys.executable, "-c", CHILD, "62"])
    first_code = user.totp().now()
    command = f"{ELEVATE} exec --server dev -t {first_code} -- {child_argv}"
    with terminal(command, tmp_path) as tty:
        tty.expect("child: first fetch")
        tty.expect(prompt_for(user), timeout=120)
        tty.sendline(user.totp().at(time.time() + 30))  # a code not used yet
        tty.expect("child: distinct keys 2", timeout=90)
        shown, status = finish(tty)
    assert status == 0, shown


def test_under_a_subshell_a_refresh_says_once_what_to_do_and_takes_up_another_terminals_run(
    moto_env: str, tmp_path: Path
) -> None:
    """`exec --server dev -- bash -i`: the shell owns the terminal, so the refresh cannot ask
    there. It must not flood the shell with a warning per request, nor blame a background job,
    nor be stopped by `stty tostop` for writing its warning; what another terminal's elevate
    run caches is served from then on."""
    user = set_up(moto_env, "server-subshell", duration_seconds=900)
    (tmp_path / "child.py").write_text(CHILD)
    # tostop: a background job that writes to the terminal is stopped, unless it holds SIGTTOU.
    command = f"stty tostop; {ELEVATE} exec --server dev -t {user.totp().now()} -- bash --norc --noprofile -i"
    seen = io.StringIO()
    with terminal(command, tmp_path) as tty:
        tty.logfile_read = seen  # everything the terminal showed, between the expects too
        time.sleep(1)
        tty.sendline(f"{shlex.quote(sys.executable)} child.py 62; exit")
        tty.expect("child: first fetch")
        tty.expect("warning: refreshing the credentials failed: (.*?)next try in 5 s", timeout=120)
        assert isinstance(tty.match, re.Match)
        said = str(tty.match.group(1))
        assert "the terminal belongs to the command" in said and "elevate clear dev" in said
        before_other_terminal = seen.getvalue()
        # Another terminal: a fresh elevation for dev, cached where the server looks.
        assert run_elevate("clear", "dev").returncode == 0
        again = run_elevate("export", "dev", "-t", user.totp().at(time.time() + 30))
        assert again.returncode == 0, again.stderr
        tty.expect("child: distinct keys 2", timeout=60)
        shown, status = finish(tty)
    assert status == 0, shown
    everything = seen.getvalue()
    assert "background" not in everything
    # One warning per try, and the next try only after the pause (5 s, then 10 s, ...).
    assert before_other_terminal.count("refreshing the credentials failed") == 1, everything
    assert everything.count("refreshing the credentials failed") <= 3, everything
