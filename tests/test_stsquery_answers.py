"""Issue 23, the answers side of STS without a botocore client (elevate.stsquery): throttling and
5xx retried with the client's bounds, and answers bounded in size and time, never parsed with a
DOCTYPE, their errors translated as the client's were. The requests, routes, TLS and proxies are
in test_stsquery.py."""

from __future__ import annotations

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
from support.constants import ROLE
from support.fakests import FakeSts
from support.stsenv import IDENTITY, KEYS, no_aws_files, sts_client  # noqa: F401  (no_aws_files: autouse)

from elevate import aws, sts, stsquery
from elevate.errors import StsError

# --- 5. retries: botocore's standard mode, bounded -------------------------------------------


@pytest.mark.parametrize(
    ("error", "attempts", "message", "most"),
    [
        (
            (503, "ServiceUnavailable", "try later"),
            3,
            "AssumeRole failed: ServiceUnavailable: try later",
            0.1,
        ),
        ((400, "Throttling", "Rate exceeded"), 3, "STS is throttling requests", 2.0),
        ((403, "AccessDenied", "not authorized"), 1, "access denied (not authorized)", 0.0),
    ],
)
def test_throttling_and_5xx_are_retried_with_bounds_like_the_client(
    monkeypatch: pytest.MonkeyPatch, error: tuple[int, str, str], attempts: int, message: str, most: float
) -> None:
    with FakeSts() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        fake.behave("AssumeRole", error=error)
        slept: list[float] = []
        clients: list[aws.StsClient] = [
            stsquery.connect(KEYS, "eu-west-1", os.environ, sleep=slept.append),
            cast(aws.StsClient, aws.make_client(KEYS, "eu-west-1")),  # its operations exist at run time
        ]
        for client in clients:
            before = fake.count("AssumeRole")
            with pytest.raises(StsError) as info:
                sts.assume_role(client, sts.AssumeRoleRequest(ROLE, "alice", "alice", 3600))
            assert fake.count("AssumeRole") - before == attempts
            assert message in info.value.message
        assert len(slept) == attempts - 1 and all(0 <= s <= most for s in slept), slept


def test_a_5xx_then_an_answer_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [(502, b"<html>bad gateway</html>"), (200, IDENTITY)]

    class Flaky(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = answers.pop(0)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
        client = stsquery.connect(KEYS, "eu-west-1", os.environ, sleep=lambda s: None)
        answer = client.get_caller_identity()
        assert answer["Arn"].endswith(":user/alice") and answer["ResponseMetadata"]["RetryAttempts"] == 1
    finally:
        server.shutdown()
        server.server_close()


# --- 6. bounded answers: size and time; no DOCTYPE -------------------------------------------


def test_an_oversized_answer_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSts() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        fake.behave("GetCallerIdentity", body=b"<x>" + b"A" * (2 << 20) + b"</x>")
        client = aws.sts_client(KEYS, "eu-west-1", os.environ)
        with pytest.raises(StsError, match=r"the answer from .* is more than 1024 KiB: refusing to read it"):
            aws.caller_identity(client)
        assert fake.count("GetCallerIdentity") == 1  # not retried


def test_a_trickling_answer_is_cut_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """One byte every 0.2 s never trips a per-read timeout; the per-answer deadline ends it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"A" * 100000:
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.2)

    threading.Thread(target=trickle, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
        client = stsquery.connect(KEYS, "eu-west-1", os.environ, sleep=lambda s: None, read_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(StsError, match=r"cannot reach STS at .* \(ReadTimeoutError\)"):
            aws.caller_identity(client)
        assert time.monotonic() - started < 3 * 1.0 + 2  # three attempts, each cut at 1 s
    finally:
        stop.set()
        listener.close()


def test_an_answer_with_a_doctype_is_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
        + "]><GetCallerIdentityResponse><GetCallerIdentityResult><Arn>&i;</Arn></GetCallerIdentityResult>"
        "</GetCallerIdentityResponse>"
    )
    with FakeSts() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        fake.behave("GetCallerIdentity", body=bomb)
        with pytest.raises(StsError, match=r"cannot be read \(UnsafeAnswer\)"):
            aws.caller_identity(aws.sts_client(KEYS, "eu-west-1", os.environ))


def test_error_answers_translate_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same STS error through both transports gives the same message (the full table of
    codes is in test_sts; here the plumbing: code, message and headers reach the translation)."""
    with FakeSts() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        messages = []
        for code, text in [
            ("ExpiredToken", "The security token included in the request is expired"),
            ("AccessDenied", "MultiFactorAuthentication failed with invalid MFA one time pass code."),
            ("InvalidClientTokenId", "The security token included in the request is invalid."),
            ("ValidationError", "1 validation error detected"),
        ]:
            fake.behave("AssumeRole", error=(403, code, text))
            for make in (aws.make_client, sts_client):
                with pytest.raises(StsError) as info:
                    sts.assume_role(
                        cast(aws.StsClient, make(KEYS, "eu-west-1")),
                        sts.AssumeRoleRequest(ROLE, "alice", "alice", 3600),
                    )
                messages.append((type(info.value), info.value.message, aws.error_code(info.value)))
        assert messages[0::2] == messages[1::2]
        assert len({message for _, message, _ in messages}) == 4
