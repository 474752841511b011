"""Real SDK clients through the credential server: boto3, the JS SDK v3, the AWS CLI v2.

The refresh tests run the server and the elevation flow in this process on one injected
timeline (fake STS and elevate share the clock), so one-hour credentials can be aged by 45
minutes between two calls of a client in a child process, which only sees the Expiration.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.awsclitools import aws_v2, set_up
from support.fakests import FakeSts
from support.provision import Provisioned
from support.realparts import require, require_tool

from elevate import core, launch, server
from elevate import supply as supply_mod
from elevate.invocation import Invocation
from elevate.models import Profile, SourceKeys

REPO = Path(__file__).resolve().parent.parent
JS_SDK = Path(os.environ.get("ELEVATE_JS_SDK_DIR") or REPO / ".js-sdk") / "node_modules"
TIMEOUT = 60

BOTO_LOOP = """
import sys, boto3
client = boto3.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1")
for line in sys.stdin:
    print(client.get_caller_identity()["Arn"], flush=True)
"""

JS_LOOP = """
const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");
const readline = require("readline");
const client = new STSClient({ endpoint: process.argv[2], region: "us-east-1" });
const lines = readline.createInterface({ input: process.stdin });
(async () => {
  for await (const _ of lines) {
    const answer = await client.send(new GetCallerIdentityCommand({}));
    console.log(answer.Arn);
  }
})().catch((e) => { console.error(String(e)); process.exit(3); });
"""


class Timeline:
    """Real time shifted by an offset the test moves."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


@pytest.fixture
def timeline() -> Timeline:
    # One-hour credentials issued now expire for real in 4 minutes: inside the refresh
    # window of botocore (15 min) and of the JS SDK (5 min), so both fetch on every call.
    return Timeline(timedelta(minutes=-56))


@pytest.fixture
def fake(timeline: Timeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSts]:
    with FakeSts(clock=timeline) as sts:
        monkeypatch.setenv("AWS_ENDPOINT_URL", sts.url)
        yield sts


@pytest.fixture
def running(fake: FakeSts, timeline: Timeline) -> Iterator[server.CredentialServer]:
    """The server as `exec --server` builds it, over the fake STS on the shared timeline."""
    codes = iter(f"{n:06d}" for n in range(100001, 100100))
    profile = supply_mod.serving_profile(
        Profile(
            name="dev",
            role_arn="arn:aws:iam::123456789012:role/Developer",
            mfa_serial="arn:aws:iam::123456789012:mfa/alice",
            region="us-east-1",
        )
    )
    elevator = core.Elevator(
        invocation=Invocation.from_environ(dict(os.environ)),
        clock=timeline,
        load_keys=lambda _name: SourceKeys(
            "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        ),
        code_source=lambda _profile, _token: next(codes),
    )
    first = elevator.elevate(profile)
    supply = supply_mod.CredentialSupply(
        lambda: elevator.elevate(profile),
        min_left=profile.refresh_before_seconds,
        clock=timeline,
        initial=first,
    )
    with server.CredentialServer(supply) as srv:
        yield srv


def child_env(srv: server.CredentialServer) -> dict[str, str]:
    return launch.child_environment(os.environ, srv.variables("us-east-1", "dev"))


def python_child(script: str, endpoint: str, srv: server.CredentialServer) -> subprocess.Popen[str]:
    """`script` in a Python child that gets its credentials from `srv`, driven line by line."""
    return subprocess.Popen(
        [sys.executable, "-c", script, endpoint],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(srv),
    )


def session_keys(fake: FakeSts) -> list[str]:
    """The access key of each GetCallerIdentity the child signed (elevate's own use AKIA keys)."""
    return [
        r.access_key_id or ""
        for r in fake.of("GetCallerIdentity")
        if (r.access_key_id or "").startswith("ASIA")
    ]


def call(child: subprocess.Popen[str]) -> str:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("call\n")
    child.stdin.flush()
    line = child.stdout.readline()
    assert line, child.stderr.read() if child.stderr else ""
    return line.strip()


def drive(child: subprocess.Popen[str], fake: FakeSts, timeline: Timeline) -> list[str]:
    """Call once, age the credentials past the server's window, then call until the client
    uses the refreshed ones (the JS SDK refreshes in the background and answers meanwhile
    with the old, still valid, credentials), and once more. Every call must succeed."""
    arns = [call(child)]
    first = session_keys(fake)[0]
    timeline.offset += timedelta(minutes=45)
    for _ in range(50):
        arns.append(call(child))
        if session_keys(fake)[-1] != first:
            break
        time.sleep(0.1)
    arns.append(call(child))
    assert child.stdin is not None
    child.stdin.close()
    assert child.wait(TIMEOUT) == 0
    assert fake.count("AssumeRole") == 2
    return arns


def check_refreshed(fake: FakeSts) -> None:
    keys = session_keys(fake)
    first, second = keys[0], keys[-1]
    assert first != second, keys
    assert keys[-2] == second  # the refreshed credentials stay in use
    assert set(keys) == {first, second}  # the old ones, then the refreshed ones, nothing else
    issued = [c["AccessKeyId"] for c in fake.issued]
    assert first in issued and second in issued


def test_boto3_loop_keeps_working_across_a_refresh(
    running: server.CredentialServer, fake: FakeSts, timeline: Timeline
) -> None:
    child = python_child(BOTO_LOOP, fake.url, running)
    try:
        arns = drive(child, fake, timeline)
    finally:
        child.kill()
    assert all(":assumed-role/" in arn or "alice" in arn for arn in arns)
    check_refreshed(fake)


def js_sdk() -> str:
    node = require_tool("node")
    require(
        (JS_SDK / "@aws-sdk" / "client-sts").is_dir(), f"the JS SDK v3 is not installed in {JS_SDK.parent}"
    )
    return node


def test_js_sdk_keeps_working_across_a_refresh(
    running: server.CredentialServer, fake: FakeSts, timeline: Timeline
) -> None:
    node = js_sdk()
    env = dict(child_env(running), NODE_PATH=str(JS_SDK))
    child = subprocess.Popen(
        [node, "-e", JS_LOOP, fake.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        drive(child, fake, timeline)
    finally:
        child.kill()
    check_refreshed(fake)


def test_js_sdk_from_container_metadata_refuses_a_wrong_token(running: server.CredentialServer) -> None:
    node = js_sdk()
    script = (
        'const { fromContainerMetadata } = require("@aws-sdk/credential-providers");'
        "fromContainerMetadata({ maxRetries: 0 })()"
        ".then(c => { console.log(c.accessKeyId); })"
        ".catch(e => { console.log('refused'); });"
    )
    env = dict(child_env(running), NODE_PATH=str(JS_SDK), AWS_CONTAINER_AUTHORIZATION_TOKEN="x" * 43)
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert done.stdout.strip() == "refused"


# -- the CLI end to end, over moto ------------------------------------------------------------

PROBE = """
import json, os, socket, sys, boto3
uri = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
hostport = uri.split("/")[2]
def ask(host, token):
    with socket.create_connection(tuple([hostport.split(":")[0], int(hostport.split(":")[1])])) as s:
        head = f"GET /credentials HTTP/1.1\\r\\nHost: {host}\\r\\n"
        if token is not None:
            head += f"Authorization: {token}\\r\\n"
        s.sendall((head + "\\r\\n").encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split()[1])
token = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
arn = boto3.client("sts", endpoint_url=sys.argv[1]).get_caller_identity()["Arn"]
print(json.dumps({
    "uri": uri,
    "token_length": len(token),
    "static": [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
               if k in os.environ],
    "arn": arn,
    "no_token": ask(hostport, None),
    "wrong_token": ask(hostport, "y" * len(token)),
    "foreign_host": ask("localhost:" + hostport.split(":")[1], token),
    "right": ask(hostport, token),
}))
sys.exit(7)
"""


def elevate(*args: str) -> list[str]:
    return [sys.executable, "-m", "elevate", *args]


@pytest.fixture
def bob(moto_env: str, request: pytest.FixtureRequest) -> Provisioned:
    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    return set_up(moto_env, f"srv-{request.node.name[:24]}-{digest}".replace("[", "-").replace("]", ""))


def test_exec_server_end_to_end(bob: Provisioned, moto_env: str) -> None:
    env = dict(os.environ, AWS_PROFILE="elsewhere", AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE")
    done = subprocess.run(
        elevate("exec", "--server", "dev", "-t", "123456", "--", sys.executable, "-c", PROBE, moto_env),
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert done.returncode == 7, done.stderr
    seen = json.loads(done.stdout)
    assert seen["uri"].startswith("http://127.0.0.1:") and seen["uri"].endswith(server.PATH)
    assert seen["token_length"] >= 43
    assert seen["static"] == []
    assert ":assumed-role/" in seen["arn"]
    assert (seen["no_token"], seen["wrong_token"], seen["foreign_host"], seen["right"]) == (
        401,
        403,
        403,
        200,
    )
    port = int(seen["uri"].split(":")[2].split("/")[0])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # the server ended with the child
    assert "AKIA" not in done.stderr and "ASIA" not in done.stderr


def test_exec_server_with_the_aws_cli_v2(bob: Provisioned, moto_env: str) -> None:
    aws = aws_v2()
    done = subprocess.run(
        elevate(
            "exec",
            "--server",
            "dev",
            "-t",
            "123456",
            "--",
            aws,
            "sts",
            "get-caller-identity",
            "--endpoint-url",
            moto_env,
            "--output",
            "json",
        ),
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    assert ":assumed-role/" in json.loads(done.stdout)["Arn"]


def test_exec_server_command_not_found(bob: Provisioned) -> None:
    done = subprocess.run(
        elevate("exec", "--server", "dev", "-t", "123456", "--", "no-such-command-xyz"),
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 127
    assert "command not found: no-such-command-xyz" in done.stderr


WAITER = """
import os, signal, sys, time
got = []
for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):
    signal.signal(getattr(signal, name), lambda n, f: got.append(n))
print(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"], flush=True)
end = time.monotonic() + 30
while not got and time.monotonic() < end:
    time.sleep(0.05)
time.sleep(0.5)  # a second delivery would arrive meanwhile
print(" ".join(signal.Signals(n).name for n in got), flush=True)
sys.exit(40 + len(got))
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"])
def test_exec_server_forwards_signals_once_and_returns_the_child_status(bob: Provisioned, name: str) -> None:
    proc = subprocess.Popen(
        elevate("exec", "--server", "dev", "-t", "123456", "--", sys.executable, "-c", WAITER),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        uri = proc.stdout.readline()
        assert uri.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        proc.send_signal(getattr(signal, name))
        assert proc.wait(TIMEOUT) == 41, proc.stderr.read() if proc.stderr else ""
        assert proc.stdout.readline().strip() == name
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_child_killed_by_a_signal_gives_128_plus_n(bob: Provisioned) -> None:
    done = subprocess.run(
        elevate("exec", "--server", "dev", "-t", "123456", "--", "sh", "-c", "kill -KILL $$"),
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 128 + signal.SIGKILL


BOTO_TRIES = """
import sys, boto3
client = boto3.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1")
for line in sys.stdin:
    try:
        print(client.get_caller_identity()["Arn"], flush=True)
    except Exception as exc:
        print("failed: " + type(exc).__name__, flush=True)
"""


def test_a_failing_refresh_under_boto3_retries_is_one_assume_role_per_pause(
    running: server.CredentialServer, fake: FakeSts, timeline: Timeline
) -> None:
    """Expired credentials and an STS that now refuses: boto3 retries the fetch and the child
    keeps calling, yet elevate asks STS once until its pause is over."""
    child = python_child(BOTO_TRIES, fake.url, running)
    try:
        assert call(child).endswith("/alice")  # the fake STS names the caller alice
        fake.behave("AssumeRole", error=(403, "AccessDenied", "not authorized to perform sts:AssumeRole"))
        timeline.offset += timedelta(minutes=61)  # what the server holds has expired
        started = time.monotonic()
        answers = [call(child) for _ in range(4)]  # botocore tries each fetch 3 times
        elapsed = time.monotonic() - started
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(TIMEOUT) == 0
    finally:
        child.kill()
    assert answers == ["failed: CredentialRetrievalError"] * 4
    # One refresh, then one more after each pause (5 s, 10 s, ...) that fitted in the time.
    allowed, pause, spent = 1, supply_mod.RETRY_FIRST_SECONDS, 0.0
    while spent + pause <= elapsed:
        allowed, spent, pause = allowed + 1, spent + pause, pause * 2
    assert 1 + 1 <= fake.count("AssumeRole") <= 1 + allowed, (elapsed, fake.count("AssumeRole"))
