"""The loopback credential server over real sockets: what it serves, and to whom it refuses.

Every refusal is tried the way an attacker would: another local user without the token, a
guessed token, a browser page through DNS rebinding (a foreign Host header), a request
with a body, a slow client holding connections, a refresh that never finishes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Optional

import pytest
from support.fakests import fake_access_key_id

from elevate import server
from elevate import supply as supply_mod
from elevate.errors import ElevateError, ServerError
from elevate.models import Profile, SessionCredentials

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def creds(
    minutes: float = 60, key: str = "ASIAIOSFODNN7EXAMPLE", now: Optional[datetime] = None
) -> SessionCredentials:
    moment = now or datetime.now(timezone.utc)
    return SessionCredentials(
        key, SECRET, "FwoGZXIvYXdzEXAMPLETOKEN" * 4, moment + timedelta(minutes=minutes)
    )


def raw(port: int, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as is; the status, headers and body of the answer (the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def get(
    srv: server.CredentialServer,
    token: Optional[str] = "",
    host: Optional[str] = "",
    method: str = "GET",
    path: str = server.PATH,
    extra: str = "",
) -> tuple[int, dict[str, str], bytes]:
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host or srv.authority}")
    if token is not None:
        lines.append(f"Authorization: {token or srv.token}")
    text = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return raw(srv.port, text.encode("latin-1"))


@pytest.fixture
def served() -> Iterator[server.CredentialServer]:
    with server.CredentialServer(supply_mod.CredentialSupply(lambda: creds())) as srv:
        yield srv


def assert_no_credential(body: bytes) -> dict[str, str]:
    text = body.decode()
    assert SECRET not in text and "ASIA" not in text and 'Token"' not in text
    answer: dict[str, str] = json.loads(text)
    assert set(answer) == {"code", "message"}
    return answer


def test_serves_the_container_protocol_answer(served: server.CredentialServer) -> None:
    status, headers, body = get(served)
    assert status == 200
    answer = json.loads(body)
    assert set(answer) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    assert answer["SecretAccessKey"] == SECRET
    assert answer["Expiration"].endswith("Z")
    assert datetime.fromisoformat(answer["Expiration"].replace("Z", "+00:00")) > datetime.now(timezone.utc)
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"


def test_token_is_fresh_and_at_least_256_bits(served: server.CredentialServer) -> None:
    with server.CredentialServer(supply_mod.CredentialSupply(lambda: creds())) as other:
        assert other.token != served.token
    assert len(served.token) >= 43  # 32 random bytes in URL-safe base64
    assert served.token not in repr(served)
    with pytest.raises(ServerError):
        server.CredentialServer(supply_mod.CredentialSupply(lambda: creds()), token="short")


def test_no_token_is_401(served: server.CredentialServer) -> None:
    status, _, body = get(served, token=None)
    assert status == 401
    assert assert_no_credential(body)["code"] == "Unauthorized"


@pytest.mark.parametrize("how", ["guess", "prefix", "suffix", "case", "empty", "bearer"])
def test_wrong_token_is_403(served: server.CredentialServer, how: str) -> None:
    token = {
        "guess": "A" * len(served.token),
        "prefix": served.token[:-1],
        "suffix": served.token + "x",
        "case": served.token.swapcase(),
        "empty": " ",
        "bearer": f"Bearer {served.token}",
    }[how]
    status, _, body = get(served, token=token)
    assert status == 403
    assert_no_credential(body)


def test_a_second_authorization_header_is_refused(served: server.CredentialServer) -> None:
    status, _, body = get(served, extra="Authorization: nope\r\n")
    assert status == 403
    assert_no_credential(body)


@pytest.mark.parametrize(
    "host",
    [
        "localhost:{port}",
        "evil.example:{port}",
        "127.0.0.1",
        "127.0.0.1:1",
        "127.0.0.2:{port}",
        "[::1]:{port}",
        "127.0.0.1:{port}.evil.example",
        "2130706433:{port}",
    ],
)
def test_foreign_host_header_is_403_even_with_the_token(served: server.CredentialServer, host: str) -> None:
    """DNS rebinding: a page at evil.example resolved to 127.0.0.1 sends its own name."""
    status, _, body = get(served, host=host.format(port=served.port))
    assert status == 403
    assert "Host" in assert_no_credential(body)["message"]


def test_missing_or_doubled_host_header_is_403(served: server.CredentialServer) -> None:
    assert get(served, host=None)[0] == 403
    status, _, body = get(served, extra=f"Host: {served.authority}\r\n")
    assert status == 403
    assert_no_credential(body)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
def test_only_get(served: server.CredentialServer, method: str) -> None:
    status, _, body = get(served, method=method)
    assert status in (405, 501)
    assert_no_credential(body)


def test_cors_preflight_without_token_gets_nothing(served: server.CredentialServer) -> None:
    status, headers, body = get(served, token=None, method="OPTIONS", extra="Origin: http://evil.example\r\n")
    assert status == 401
    assert "Access-Control-Allow-Origin" not in headers
    assert_no_credential(body)


@pytest.mark.parametrize(
    "path", ["/", "/credentials/", "/credentials?x=1", "/CREDENTIALS", "/credentials/../x"]
)
def test_only_the_one_path(served: server.CredentialServer, path: str) -> None:
    status, _, body = get(served, path=path)
    assert status == 404
    assert_no_credential(body)


@pytest.mark.parametrize(
    "extra", ["Content-Length: 5\r\n\r\nhello", "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"]
)
def test_a_body_is_refused(served: server.CredentialServer, extra: str) -> None:
    head, _, rest = extra.partition("\r\n\r\n")
    status, _, body = raw(
        served.port,
        (
            f"GET {server.PATH} HTTP/1.1\r\nHost: {served.authority}\r\nAuthorization: {served.token}\r\n"
            f"{head}\r\n\r\n{rest}"
        ).encode(),
    )
    assert status == 400
    assert_no_credential(body)


def test_garbage_request_line_gets_json_not_html(served: server.CredentialServer) -> None:
    """An unparsable request line is answered as HTTP/0.9 (a bare body), still JSON and empty-handed."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    body = data.partition(b"\r\n\r\n")[2] if data.startswith(b"HTTP/") else data
    assert assert_no_credential(body)["code"] == "BadRequest"


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "localhost", "::1", "::", "192.0.2.1", "10.0.0.1", "", "127.0.0.1 "],  # noqa: S104 - refused
)
def test_non_loopback_bind_is_refused(host: str) -> None:
    with pytest.raises(ServerError, match="loopback"):
        server.CredentialServer(supply_mod.CredentialSupply(lambda: creds()), host=host)


def test_listens_on_loopback_only(served: server.CredentialServer) -> None:
    found = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    addresses = {str(info[4][0]) for info in found} - {"127.0.0.1"}
    for address in addresses:
        if address.startswith("127."):
            continue
        with pytest.raises(OSError), socket.create_connection((address, served.port), timeout=2):
            pass


def test_server_gone_after_stop() -> None:
    srv = server.CredentialServer(supply_mod.CredentialSupply(lambda: creds()))
    srv.start()
    port = srv.port
    assert get(srv)[0] == 200
    srv.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_slow_clients_cannot_pin_the_server() -> None:
    """A client that connects and sends nothing holds a slot only until the socket timeout."""
    supply = supply_mod.CredentialSupply(lambda: creds())
    with server.CredentialServer(supply, max_connections=1, socket_timeout=0.5) as srv:
        idle = socket.create_connection(("127.0.0.1", srv.port))
        time.sleep(0.2)
        with pytest.raises((ConnectionError, ValueError, IndexError)):
            status, _, _ = get(srv)  # dropped: no slot, and no credential
            if status != 200:
                raise ConnectionError(status)
        time.sleep(0.8)
        assert get(srv)[0] == 200
        idle.close()


def test_a_client_that_drips_its_request_cannot_pin_the_server() -> None:
    """Another local user sends a byte just inside every socket timeout: without a bound on
    the whole request, it holds every slot for as long as it likes and the SDK gets nothing."""
    supply = supply_mod.CredentialSupply(lambda: creds())
    with server.CredentialServer(supply, max_connections=1, socket_timeout=0.5) as srv:
        dripper = socket.create_connection(("127.0.0.1", srv.port))
        stop = threading.Event()

        def drip() -> None:
            for byte in b"GET /credentials HTTP/1.1\r\nX-Padding: " + b"a" * 1000:
                if stop.wait(0.2):
                    return
                try:
                    dripper.sendall(bytes([byte]))
                except OSError:
                    return

        thread = threading.Thread(target=drip, daemon=True)
        thread.start()
        try:
            time.sleep(2.5)  # five socket timeouts: the dripper must have been cut by now
            assert get(srv)[0] == 200
        finally:
            stop.set()
            dripper.close()
            thread.join(timeout=5)


def test_a_hung_refresh_gives_503_within_the_deadline_then_credentials() -> None:
    gate = threading.Event()
    calls: list[int] = []

    def fetch() -> SessionCredentials:
        calls.append(1)
        gate.wait(20)
        return creds()

    supply = supply_mod.CredentialSupply(fetch, deadline=0.5)
    with server.CredentialServer(supply) as srv:
        answers: list[tuple[int, bytes]] = []
        started = time.monotonic()

        def one() -> None:
            status, _, body = get(srv)
            answers.append((status, body))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert time.monotonic() - started < 5
        assert [status for status, _ in answers] == [503] * 8
        assert assert_no_credential(answers[0][1])["code"] == "CredentialsUnavailable"
        assert len(calls) == 1  # one refresh for all of them
        gate.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and get(srv)[0] != 200:
            time.sleep(0.05)
        assert get(srv)[0] == 200
        assert len(calls) == 1


def test_a_failed_refresh_is_reported_as_json() -> None:
    def fetch() -> SessionCredentials:
        raise ElevateError("STS refused: the role cannot be assumed")

    with server.CredentialServer(supply_mod.CredentialSupply(fetch)) as srv:
        status, _, body = get(srv)
    assert status == 503
    answer = assert_no_credential(body)
    assert answer == {"code": "RefreshFailed", "message": "STS refused: the role cannot be assumed"}


def test_refreshes_before_the_window_and_keeps_serving_while_it_runs() -> None:
    now = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    issued = iter(
        [
            creds(60, "ASIAFIRSTEXAMPLE0000", now[0]),
            creds(60, "ASIASECONDEXAMPLE000", now[0] + timedelta(minutes=42)),
        ]
    )
    supply = supply_mod.CredentialSupply(lambda: next(issued), clock=lambda: now[0], deadline=5)
    assert supply.get().access_key_id == "ASIAFIRSTEXAMPLE0000"
    now[0] += timedelta(minutes=30)  # 30 min left: held
    assert supply.get().access_key_id == "ASIAFIRSTEXAMPLE0000"
    now[0] += timedelta(minutes=12)  # 18 min left: inside the prefetch lead, answered at once
    assert supply.get().access_key_id == "ASIAFIRSTEXAMPLE0000"
    deadline = time.monotonic() + 5
    while supply.get().access_key_id != "ASIASECONDEXAMPLE000" and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh = supply.get()
    assert fresh.access_key_id == "ASIASECONDEXAMPLE000"
    assert fresh.seconds_left(now[0]) > 15 * 60


def test_never_hands_out_credentials_with_under_15_minutes_when_a_refresh_succeeds() -> None:
    now = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    keys = iter(["ASIAFIRSTEXAMPLE0000", "ASIASECONDEXAMPLE000"])
    supply = supply_mod.CredentialSupply(
        lambda: creds(60, next(keys), now[0]),
        clock=lambda: now[0],
        initial=creds(14, "ASIAOLDEXAMPLE000000", now[0]),
    )
    assert supply.get().access_key_id == "ASIAFIRSTEXAMPLE0000"


def test_serving_profile_refreshes_early_within_the_duration() -> None:
    base = Profile(
        name="dev", role_arn="arn:aws:iam::123456789012:role/R", mfa_serial="arn:aws:iam::123456789012:mfa/a"
    )
    # The default window (issue 11: 20 minutes) is already more than the server needs.
    assert supply_mod.serving_profile(base).refresh_before_seconds == max(
        base.refresh_before_seconds, supply_mod.MIN_SECONDS_LEFT
    )
    assert supply_mod.serving_profile(base, min_left=1500).refresh_before_seconds == 1500
    short = Profile(
        name="dev",
        role_arn=base.role_arn,
        mfa_serial=base.mfa_serial,
        duration_seconds=900,
        refresh_before_seconds=300,
    )
    assert supply_mod.serving_profile(short).refresh_before_seconds == 840
    long = Profile(
        name="dev", role_arn=base.role_arn, mfa_serial=base.mfa_serial, refresh_before_seconds=1800
    )
    assert supply_mod.serving_profile(long).refresh_before_seconds == 1800


# -- a failing refresh backs off ---------------------------------------------------------------


def test_a_failing_refresh_is_not_retried_on_every_request_but_after_a_growing_pause() -> None:
    """SDKs retry a failed credentials fetch, and every call of the child asks again: without a
    pause each of those would be another AssumeRole (and, without an MFA session, another prompt)."""
    calls: list[float] = []
    tick = [1000.0]
    told: list[str] = []
    answer: list[Optional[SessionCredentials]] = [None]

    def fetch() -> SessionCredentials:
        calls.append(tick[0])
        if answer[0] is None:
            raise ElevateError("STS refused: the MFA code was wrong")
        return answer[0]

    now = [datetime.now(timezone.utc)]
    supply = supply_mod.CredentialSupply(
        fetch, clock=lambda: now[0], monotonic=lambda: tick[0], on_failure=told.append
    )

    def attempts(count: int) -> list[str]:
        errors = []
        for _ in range(count):
            with pytest.raises(ElevateError) as caught:
                supply.get()
            errors.append(caught.value.message)
        return errors

    assert attempts(20) == ["STS refused: the MFA code was wrong"] * 20  # the same error, at once
    assert calls == [1000.0]
    assert told == ["refreshing the credentials failed: STS refused: the MFA code was wrong; next try in 5 s"]
    tick[0] += supply_mod.RETRY_FIRST_SECONDS - 0.5
    attempts(5)
    assert len(calls) == 1  # still pausing
    tick[0] += 1
    attempts(5)
    assert len(calls) == 2 and told[-1].endswith("next try in 10 s")  # the pause doubles
    for _ in range(10):
        tick[0] += supply_mod.RETRY_MAX_SECONDS
        attempts(1)
    assert told[-1].endswith(f"next try in {supply_mod.RETRY_MAX_SECONDS} s")  # and stops growing
    tick[0] += supply_mod.RETRY_MAX_SECONDS
    answer[0] = creds(now=now[0])
    assert supply.get().access_key_id == "ASIAIOSFODNN7EXAMPLE"
    # After a success the next failure pauses the shortest time again.
    answer[0] = None
    now[0] += timedelta(minutes=50)  # 10 minutes left: inside the refresh window, usable while it fails
    failures = len(told)
    assert supply.get().access_key_id == "ASIAIOSFODNN7EXAMPLE"
    deadline = time.monotonic() + 5
    while len(told) == failures and time.monotonic() < deadline:
        time.sleep(0.01)
    assert told[-1].endswith("next try in 5 s")
    before = len(calls)
    for _ in range(10):
        assert supply.get().access_key_id == "ASIAIOSFODNN7EXAMPLE"  # still valid: still served
    assert len(calls) == before


def test_requests_during_a_pause_each_get_their_own_error_and_nothing_piles_up() -> None:
    """Re-raising one stored exception would chain every request's frames onto it: a child
    calling in a loop for the whole pause would keep all of them alive."""

    def fetch() -> SessionCredentials:
        raise ElevateError("STS refused")

    supply = supply_mod.CredentialSupply(fetch, monotonic=lambda: 0.0)
    seen = []
    for _ in range(200):
        with pytest.raises(ElevateError) as caught:
            supply.get()
        seen.append(caught.value)
    assert len({id(error) for error in seen}) == len(seen)
    assert all(error.message == "STS refused" for error in seen)
    depth = 0
    frame = seen[-1].__traceback__
    while frame is not None:
        depth, frame = depth + 1, frame.tb_next
    assert depth < 10


def test_during_a_pause_credentials_another_elevate_cached_are_taken_up_at_once() -> None:
    """Say `elevate export dev` in another terminal asked for the code the refresh could not:
    the server serves what that run cached instead of failing until its pause is over."""
    calls: list[int] = []
    cached: list[Optional[SessionCredentials]] = [None]

    def fetch() -> SessionCredentials:
        calls.append(1)
        raise ElevateError("an MFA code is needed")

    supply = supply_mod.CredentialSupply(fetch, monotonic=lambda: 0.0, peek=lambda: cached[0])
    for _ in range(3):
        with pytest.raises(ElevateError):
            supply.get()
    other = fake_access_key_id()  # made at run time: never a real key
    cached[0] = creds(10, fake_access_key_id())  # inside the refresh window: not taken up
    with pytest.raises(ElevateError):
        supply.get()
    cached[0] = creds(60, other)
    assert supply.get().access_key_id == other
    cached[0] = None
    assert supply.get().access_key_id == other  # held from now on
    assert calls == [1]
