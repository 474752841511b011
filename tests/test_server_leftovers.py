"""What outlives `exec --server`'s command, and what another local user can do to the server.

A process the command leaves behind (a daemon, `setsid ... &`) keeps the server's URL and
token. If the port were freed when the command ends, another local user watching
/proc/net/tcp could bind it, receive the token and answer with credentials of their own
account. The server keeps the port (410, no credential) until those processes end. Another
user's connections are closed before they take one of the bounded slots.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.cli import elevate_argv
from support.configs import write_config
from support.constants import ROLE, SERIAL
from support.fakests import FakeSts, fake_access_key_id, fake_secret
from support.localuser import LocalUser, other_user
from support.sessioncache import example_keys

from elevate import server
from elevate import supply as supply_mod
from elevate.models import SessionCredentials

DEADLINE = 20.0

# The command: writes the URL and token, leaves a process in a session of its own, ends.
LEAVES_A_DAEMON = """
import json, os, subprocess, sys
leftover = subprocess.Popen(["sleep", "60"], start_new_session=True,
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(sys.argv[1], "w") as out:
    json.dump({"url": os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
               "token": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"], "leftover": leftover.pid}, out)
sys.exit(3)
"""

# As the other user: bind the port the URL names (what a squatter would do).
SQUAT = """
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as exc:
    print("refused", exc.errno)
    sys.exit(0)
print("bound")
"""

# As the other user: hold as many connections as the server has slots, and more.
HOLD = """
import socket, sys, time
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]
print("held", len(held), flush=True)
time.sleep(float(sys.argv[3]))
closed = 0
for s in held:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print("closed", closed, flush=True)
"""

# The command: waits for the go file, then fetches credentials a few times.
FETCHES = """
import json, os, sys, time, urllib.request
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
ok = 0
for _ in range(5):
    request = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            ok += "AccessKeyId" in json.loads(answer.read())
    except Exception as exc:
        print("failed:", type(exc).__name__, flush=True)
print("fetched", ok, flush=True)
"""


def creds(seconds: float = 3600) -> SessionCredentials:
    return SessionCredentials(
        fake_access_key_id(),
        fake_secret(),
        fake_secret(300),
        datetime.now(timezone.utc) + timedelta(seconds=seconds),
    )


@pytest.fixture
def profile(fake_sts: FakeSts) -> FakeSts:
    example_keys()
    write_config({"dev": {"role_arn": ROLE, "mfa_serial": SERIAL, "keys": "dev"}}, default="dev")
    return fake_sts


@pytest.fixture
def user() -> Iterator[LocalUser]:
    with other_user() as made:
        yield made


def ask(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": token})  # noqa: S310 - loopback URL
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback URL
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_for(path: Path, proc: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + DEADLINE
    while not (path.exists() and path.read_text().endswith("}")):
        assert proc.poll() is None or path.exists(), proc.communicate()
        assert time.monotonic() < deadline, "the command never wrote its file"
        time.sleep(0.05)
    return dict(json.loads(path.read_text()))


def test_a_process_the_command_left_keeps_the_port_held_and_told_410(
    profile: FakeSts, user: LocalUser, tmp_path: Path
) -> None:
    seen = tmp_path / "seen.json"
    elevate = subprocess.Popen(
        elevate_argv(
            "exec", "--server", "dev", "-t", "123456", "--", sys.executable, "-c", LEAVES_A_DAEMON, str(seen)
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    leftover = 0
    try:
        found = wait_for(seen, elevate)
        url, token, leftover = str(found["url"]), str(found["token"]), int(str(found["leftover"]))
        port = int(url.split(":")[2].split("/")[0])
        time.sleep(1.5)  # the command has ended by now (it exits right after writing)
        squat = user.run(SQUAT, str(port))
        assert squat.stdout.split()[0] == "refused", squat  # "bound" when elevate freed the port
        assert elevate.poll() is None, "elevate ended while a process of the command still holds the URL"
        assert ask(url, token) == 410  # no credential once the command has ended
        os.kill(leftover, signal.SIGTERM)
        _, err = elevate.communicate(timeout=DEADLINE)
    finally:
        if elevate.poll() is None:
            elevate.kill()
            elevate.wait()
        if leftover:
            with pytest.raises(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)  # it was ended above, and nothing else was
    assert elevate.returncode == 3, err  # the command's own status
    assert f"PID {leftover}" in err and "ends them now" in err
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # and freed once nothing of the command remains


def test_ctrl_c_or_a_signal_ends_what_the_command_left(profile: FakeSts, tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    elevate = subprocess.Popen(
        elevate_argv(
            "exec", "--server", "dev", "-t", "123456", "--", sys.executable, "-c", LEAVES_A_DAEMON, str(seen)
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        leftover = int(str(wait_for(seen, elevate)["leftover"]))
        time.sleep(1.0)
        assert elevate.poll() is None
        elevate.send_signal(signal.SIGINT)
        _, err = elevate.communicate(timeout=DEADLINE)
    finally:
        if elevate.poll() is None:
            elevate.kill()
            elevate.wait()
    assert elevate.returncode == 3, err
    deadline = time.monotonic() + 5
    while Path(f"/proc/{leftover}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{leftover}").exists(), "the leftover process was not ended"


def test_another_users_connections_take_no_slot(profile: FakeSts, user: LocalUser, tmp_path: Path) -> None:
    go, url_file = tmp_path / "go", tmp_path / "url.json"
    write_url = (
        "import json, os, sys; json.dump({'url': os.environ['AWS_CONTAINER_CREDENTIALS_FULL_URI']}, "
        f"open({str(url_file)!r}, 'w'))\n"
    )
    elevate = subprocess.Popen(
        elevate_argv(
            "exec",
            "--server",
            "dev",
            "-t",
            "123456",
            "--",
            sys.executable,
            "-c",
            write_url + FETCHES,
            str(go),
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    holder = None
    try:
        port = int(str(wait_for(url_file, elevate)["url"]).split(":")[2].split("/")[0])
        holder = user.popen(HOLD, str(port), str(server.MAX_CONNECTIONS + 16), "2", stdout=subprocess.PIPE)
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith("held")
        go.touch()  # every slot would be taken now, were they given to the other user
        out, err = elevate.communicate(timeout=DEADLINE)
        held_out, _ = holder.communicate(timeout=DEADLINE)
    finally:
        for proc in (elevate, holder):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "fetched 5" in out, (out, err)
    assert f"closed {server.MAX_CONNECTIONS + 16}" in held_out  # each was closed, unanswered


def test_the_socket_table_names_the_peers_owner() -> None:
    supply = supply_mod.CredentialSupply(lambda: creds())
    with server.CredentialServer(supply) as srv, socket.create_connection(("127.0.0.1", srv.port)) as client:
        peer = client.getsockname()
        owner = server.socket_owner((peer[0], peer[1]), ("127.0.0.1", srv.port))
    if not sys.platform.startswith("linux"):
        assert owner is None
        return
    assert owner == os.getuid()
    assert server.socket_owner(("127.0.0.1", 1), ("127.0.0.1", 2)) is None
    assert server.socket_owner(("127.0.0.1", 1), ("127.0.0.1", 2), table="/nonexistent") is None


def test_a_connection_of_another_uid_is_closed_before_it_takes_a_slot() -> None:
    """With one slot, a foreign peer (the socket table's owner, injected here) holding a
    connection would starve everyone; it is closed at once instead, unanswered."""
    supply = supply_mod.CredentialSupply(lambda: creds())
    stranger = os.getuid() + 4242 if os.getuid() != 0 else 4242
    foreign: set[int] = set()

    def owner(peer: tuple[str, int], ours: tuple[str, int]) -> int:
        return stranger if peer[1] in foreign else os.getuid()

    with server.CredentialServer(supply, max_connections=1, peer_owner=owner) as srv:
        held = []
        for _ in range(3):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            foreign.add(s.getsockname()[1])
            s.connect(("127.0.0.1", srv.port))
            held.append(s)
        for s in held:
            s.settimeout(2)
            assert s.recv(1) == b""  # closed, unanswered, long before any request timeout
        request = urllib.request.Request(srv.url, headers={"Authorization": srv.token})  # noqa: S310
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback URL
            assert answer.status == 200
        for s in held:
            s.close()


def test_an_unauthenticated_connection_gets_about_a_second() -> None:
    supply = supply_mod.CredentialSupply(lambda: creds())
    with server.CredentialServer(supply, max_connections=1) as srv:
        idle = socket.create_connection(("127.0.0.1", srv.port))
        idle.sendall(b"GET /credentials HTTP/1.1\r\n")  # a start, never finished
        idle.settimeout(4)
        started = time.monotonic()
        assert idle.recv(1) == b""
        assert time.monotonic() - started < 2.0
        idle.close()


def test_a_retired_server_keeps_its_port_and_hands_out_nothing() -> None:
    calls = []

    def fetch() -> SessionCredentials:
        calls.append(1)
        return creds()

    supply = supply_mod.CredentialSupply(fetch, initial=creds())
    with server.CredentialServer(supply) as srv:
        assert ask(srv.url, srv.token) == 200
        srv.retire()
        assert ask(srv.url, srv.token) == 410
        assert ask(srv.url, "wrong") == 410
        with pytest.raises(OSError), socket.socket() as squatter:
            squatter.bind(("127.0.0.1", srv.port))
    assert calls == []
