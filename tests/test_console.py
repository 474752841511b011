"""`elevate login`: the sign-in token request, the URL's shape, and a hostile endpoint."""

from __future__ import annotations

import html
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from support.cli import run_elevate
from support.constants import ROLE
from support.fakefederation import FakeFederation
from support.fakests import FakeSts

from elevate import console, keystore
from elevate.errors import FederationError, UsageError
from elevate.models import SessionCredentials

EXAMPLE_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SERIAL = "arn:aws:iam::123456789012:mfa/alice"


def write_profile(**extra: str) -> None:
    path = Path(os.environ["ELEVATE_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[profiles.dev]", f'role_arn = "{ROLE}"', f'mfa_serial = "{SERIAL}"', 'region = "eu-west-1"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def fed(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFederation]:
    """A profile 'dev' against the fake STS, and a fake federation endpoint it signs in at."""
    keystore.put_keys("dev", keystore.check_keys(EXAMPLE_ID, EXAMPLE_SECRET))
    write_profile()
    with FakeFederation() as server:
        monkeypatch.setenv("ELEVATE_FEDERATION_URL", server.url)
        yield server


def secrets_of(fake_sts: FakeSts, fed: FakeFederation) -> list[str]:
    found = [EXAMPLE_SECRET, *fed.tokens]
    for issued in fake_sts.issued:
        found += [v for k, v in issued.items() if k in ("SecretAccessKey", "SessionToken")]
    return found


def test_login_stdout_prints_only_a_working_sign_in_url(fake_sts: FakeSts, fed: FakeFederation) -> None:
    done = run_elevate("login", "dev", "-t", "123456", "--stdout")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.endswith("\n")
    url = urlsplit(done.stdout.strip())
    assert f"{url.scheme}://{url.netloc}{url.path}" == fed.url
    query = parse_qs(url.query, strict_parsing=True)
    assert query == {
        "Action": ["login"],
        "Issuer": ["aws-elevate"],
        "Destination": ["https://console.aws.amazon.com/console/home?region=eu-west-1"],
        "SigninToken": [fed.tokens[-1]],
    }
    # The request carried the role session STS issued, and the profile's session length.
    (request,) = fed.requests
    assert request["Action"] == "getSigninToken" and request["SessionDuration"] == "3600"
    session = json.loads(request["Session"])
    issued = fake_sts.issued[-1]
    assert session == {
        "sessionId": issued["AccessKeyId"],
        "sessionKey": issued["SecretAccessKey"],
        "sessionToken": issued["SessionToken"],
    }
    assert fake_sts.last("AssumeRole")["TokenCode"] == "123456"
    for secret in secrets_of(fake_sts, fed):
        assert secret not in done.stderr


def test_login_uses_the_cache_and_a_given_destination(fake_sts: FakeSts, fed: FakeFederation) -> None:
    assert run_elevate("login", "dev", "-t", "123456", "--stdout").returncode == 0
    target = "https://eu-west-1.console.aws.amazon.com/s3/home?region=eu-west-1"
    done = run_elevate("login", "dev", "--stdout", "--destination", target)
    assert done.returncode == 0, done.stderr
    assert fake_sts.count("AssumeRole") == 1  # the second login needed no MFA code
    assert parse_qs(urlsplit(done.stdout.strip()).query)["Destination"] == [target]
    assert json.loads(fed.requests[0]["Session"]) == json.loads(fed.requests[1]["Session"])


@pytest.mark.parametrize(
    "destination",
    [
        "http://console.aws.amazon.com/",
        "javascript:alert(1)",
        "https://console.aws.amazon.com/a b",
        "file:///etc",
    ],
)
def test_login_refuses_a_destination_that_is_not_https(
    fake_sts: FakeSts, fed: FakeFederation, destination: str
) -> None:
    done = run_elevate("login", "dev", "-t", "123456", "--stdout", "--destination", destination)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "elevate: error: --destination must be an https URL\n"
    assert fed.requests == []


@pytest.mark.parametrize(
    "url", ["http://signin.example.com/federation", "ftp://127.0.0.1/federation", "file:///tmp/x", "https://"]
)
def test_login_never_sends_a_session_over_plain_http_or_odd_schemes(
    fake_sts: FakeSts, fed: FakeFederation, url: str
) -> None:
    env = {**os.environ, "ELEVATE_FEDERATION_URL": url}
    done = run_elevate("login", "dev", "-t", "123456", "--stdout", env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "ELEVATE_FEDERATION_URL must be an https URL" in done.stderr


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ({"status": 500, "body": b'{"SigninToken": "echo-of-the-session-aaaaaaaa"}'}, "answered HTTP 500"),
        ({"status": 400, "body": b"<html>\x1b[31mno\nsuch\r\nthing</html>"}, "answered HTTP 400"),
        ({"body": b"not json \x1b]0;title\x07"}, "did not answer with a sign-in token"),
        ({"body": b'{"SigninToken": "short"}'}, "did not answer with a sign-in token"),
        (
            {"body": b'{"SigninToken": "bad\\ntoken\\u001b[2Jxxxxxxxxxxxxxxxx"}'},
            "did not answer with a sign-in token",
        ),
        ({"body": b'["SigninToken"]'}, "did not answer with a sign-in token"),
        ({"body": b'{"SigninToken": "' + b"a" * 70000 + b'"}'}, "sent more than 65536 bytes"),
        ({"redirect": "http://127.0.0.1:9/elsewhere"}, "answered HTTP 302"),
    ],
)
def test_an_endpoint_error_is_one_line_without_secrets(
    fake_sts: FakeSts, fed: FakeFederation, behaviour: dict[str, object], message: str
) -> None:
    fed.behave(**behaviour)
    done = run_elevate("--debug", "login", "dev", "-t", "123456", "--stdout")
    assert done.returncode == 1 and done.stdout == ""
    last = done.stderr.splitlines()[-1]
    host = urlsplit(fed.url).netloc
    assert last.startswith(f"elevate: error: the sign-in endpoint {host} ") and message in last
    assert len(last) < 200
    assert "\x1b" not in done.stderr and "echo-of-the-session" not in done.stderr
    for secret in secrets_of(fake_sts, fed):
        assert secret not in done.stderr
    # The session never shows up in --debug, not even in the traceback of the failure.
    assert "Session=" not in done.stderr and "sessionKey" not in done.stderr


def test_an_unreachable_endpoint_is_one_line(fake_sts: FakeSts, fed: FakeFederation) -> None:
    with FakeFederation() as gone:
        url = gone.url
    env = {**os.environ, "ELEVATE_FEDERATION_URL": url}
    done = run_elevate("login", "dev", "-t", "123456", "--stdout", env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(
        f"elevate: error: cannot reach the sign-in endpoint {urlsplit(url).netloc}: "
    )


def test_a_silent_endpoint_is_bounded() -> None:
    creds = SessionCredentials("ASIAEXAMPLEEXAMPLE00", "s" * 40, "t" * 100, datetime.now(timezone.utc))
    with FakeFederation() as slow:
        slow.behave(delay=3.0)
        with pytest.raises(FederationError) as caught:
            console.get_signin_token(creds, slow.url, timeout=0.5)
    assert "did not answer within 0 s" in caught.value.message or "no answer in time" in caught.value.message
    assert "s" * 40 not in str(caught.value)


@pytest.mark.parametrize("where", ["headers", "body"])
def test_an_endpoint_that_drips_its_answer_is_bounded_in_total(where: str) -> None:
    """A hostile endpoint sends a byte just inside every socket timeout: the whole answer,
    not each read, must be bounded, or `elevate login` hangs for ever."""
    creds = SessionCredentials("ASIAEXAMPLEEXAMPLE00", "s" * 40, "t" * 100, datetime.now(timezone.utc))
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            head = b"HTTP/1.0 200 OK\r\n"
            if where == "body":
                head += b"Content-Type: application/json\r\n\r\n"
            conn.sendall(head)
            while not stop.wait(0.1):
                try:
                    conn.sendall(b"X" if where == "headers" else b" ")
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/federation"
    started = time.monotonic()
    try:
        with pytest.raises(FederationError, match="did not answer within"):
            console.get_signin_token(creds, url, timeout=1.0)
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def test_debug_never_shows_the_token_and_the_browser_gets_the_url(
    fake_sts: FakeSts, fed: FakeFederation, tmp_path: Path
) -> None:
    """The browser gets a private file that redirects to the sign-in URL: the token is in no
    argv (every user reads argv in /proc while the browser starts), the file is 0600 in the
    private cache directory, and the browser can follow it."""
    seen, page_seen, others = tmp_path / "browser-argv", tmp_path / "page", tmp_path / "cmdlines"
    browser = tmp_path / "browser"
    browser.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{seen}"\n'
        f'cat /proc/$$/cmdline /proc/[0-9]*/cmdline > "{others}" 2>/dev/null\n'
        f'cat "$(printf "%s" "$1" | sed "s|^file://||")" > "{page_seen}"\n'
        f'stat -c %a "$(printf "%s" "$1" | sed "s|^file://||")" >> "{page_seen}.mode"\n'
    )
    browser.chmod(stat.S_IRWXU)
    env = {**os.environ, "BROWSER": str(browser)}
    done = run_elevate("--debug", "login", "dev", "-t", "123456", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "elevate: debug:" in done.stderr
    (token,) = fed.tokens
    for secret in secrets_of(fake_sts, fed):
        assert secret not in done.stderr
    opened = seen.read_text().splitlines()
    assert len(opened) == 1 and token not in opened[0]
    page = Path(urlsplit(opened[0]).path)
    assert opened[0].startswith("file://") and page.parent == Path(os.environ["ELEVATE_CACHE_DIR"])
    assert (page_seen.with_name("page.mode")).read_text().strip() == "600"
    assert token not in others.read_text(errors="replace")  # no process's argv holds it
    found = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', page_seen.read_text())
    assert found is not None
    target = html.unescape(found.group(1))
    assert parse_qs(urlsplit(target).query)["SigninToken"] == [token]


def test_the_redirect_file_is_removed_soon_after(tmp_path: Path) -> None:
    opened: list[str] = []

    def opener(uri: str) -> bool:
        opened.append(uri)
        return True

    url = "https://example.invalid/federation?Action=login&SigninToken=" + "t" * 40 + "&x=<\"'>"
    console.open_in_browser(url, tmp_path / "private", opener, linger=0.5)
    (page,) = (tmp_path / "private").glob("login-*.html")
    assert opened == [page.as_uri()] and stat.S_IMODE(page.stat().st_mode) == 0o600
    assert html.unescape(page.read_text()).count(url) == 2  # the refresh and the link
    assert "\"'>" not in page.read_text()  # quoted: the URL cannot end the attribute
    deadline = time.monotonic() + 10
    while page.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not page.exists()


@pytest.mark.parametrize("entry", ["", ".", "bin"])
def test_a_browser_planted_in_the_working_directory_never_gets_the_url(tmp_path: Path, entry: str) -> None:
    """The sign-in URL signs anyone in as the role: a relative PATH entry must not let an
    `xdg-open` or `firefox` planted in the working directory (a cloned repository) receive it."""
    work = tmp_path / "repo"
    seen = tmp_path / "seen"
    for bindir in (work, work / "bin"):
        bindir.mkdir(parents=True, exist_ok=True)
        for name in ("xdg-open", "gio", "x-www-browser", "firefox", "www-browser", "lynx", "w3m"):
            program = bindir / name
            program.write_text(f'#!/bin/sh\necho "$@" >> "{seen}"\n')
            program.chmod(stat.S_IRWXU)
    (tmp_path / "empty").mkdir()
    env = {
        "PATH": f"{entry}{os.pathsep}{tmp_path / 'empty'}",
        "DISPLAY": ":77",
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    script = (
        "import pathlib; from elevate import console; console.open_in_browser("
        f"'https://example.invalid/?SigninToken=x', pathlib.Path({str(tmp_path / 'private')!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    time.sleep(0.5)  # a browser started in the background would have written by now
    assert not seen.exists(), seen.read_text()
    assert done.returncode != 0 and "no web browser could be started" in done.stderr


def test_no_browser_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FederationError, match="use --stdout"):
        console.open_in_browser("https://example.invalid/", tmp_path, opener=lambda url: False)
    assert list(tmp_path.glob("login-*")) == []  # nothing left behind


def test_partitions_have_their_own_endpoints_and_consoles() -> None:
    assert console.federation_url("aws", {}) == "https://signin.aws.amazon.com/federation"
    assert console.federation_url("aws-us-gov", {}) == "https://signin.amazonaws-us-gov.com/federation"
    assert console.federation_url("aws-cn", {}) == "https://signin.amazonaws.cn/federation"
    assert console.default_destination("aws-cn", "cn-north-1") == (
        "https://console.amazonaws.cn/console/home?region=cn-north-1"
    )
    assert console.partition_of("arn:aws-us-gov:iam::123456789012:role/R") == "aws-us-gov"
    with pytest.raises(UsageError, match="set ELEVATE_FEDERATION_URL"):
        console.federation_url("aws-iso", {})
    assert console.federation_url("aws-iso", {"ELEVATE_FEDERATION_URL": "https://signin.example/f"})


def test_session_duration_stays_in_the_range_the_endpoint_accepts() -> None:
    creds = SessionCredentials(
        "ASIAEXAMPLEEXAMPLE00", "s" * 40, "t" * 100, datetime.now(timezone.utc) + timedelta(hours=1)
    )
    asked: list[object] = []

    def fetch(c: SessionCredentials, endpoint: str, duration: object) -> str:
        asked.append(duration)
        return "T" * 32

    env = {"ELEVATE_FEDERATION_URL": "https://signin.example/federation"}
    console.sign_in_url(creds, ROLE, "eu-west-1", env, session_duration=129600, fetch_token=fetch)
    console.sign_in_url(creds, ROLE, "eu-west-1", env, session_duration=None, fetch_token=fetch)
    assert asked == [43200, None]
    assert "s" * 40 not in repr(creds)
