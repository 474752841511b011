"""Issue 23: STS without a botocore client (elevate.stsquery) sends what the client sent, where
the client sent it, verified, through the proxy, retried and bounded as the client was.

Each test plays the request or the attack against both transports where the client is the
reference: the botocore client elevate made (aws.make_client) and the new one (aws.sts_client).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Optional, cast

import botocore.auth
import botocore.awsrequest
import botocore.session
import pytest
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, SERIAL
from support.fakests import FakeSts

from elevate import aws, keystore, sts, stsquery
from elevate.errors import ConfigError, StsError, Unsupported
from elevate.models import SessionCredentials, SourceKeys

KEYS = SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET)
ROLE = "arn:aws:iam::123456789012:role/R"
IDENTITY = (
    b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
    b"<Arn>arn:aws:iam::123456789012:user/alice</Arn><UserId>AIDAX</UserId><Account>123456789012</Account>"
    b"</GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
    b"</GetCallerIdentityResponse>"
)


@pytest.fixture(autouse=True)
def no_aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


# --- 1. the signed requests are botocore's, byte for byte ------------------------------------


class Capture:
    """A loopback HTTP server that keeps every request's raw bytes and answers GetCallerIdentity."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.raw.append(head + b"\r\n\r\n" + body)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(IDENTITY) + IDENTITY)

    def close(self) -> None:
        self.listener.close()


def sts_client(keys: Any, region: str) -> Any:
    """aws.sts_client under the test's own (sealed) process environment."""
    return aws.sts_client(keys, region, os.environ)


def comparable(raw: bytes) -> bytes:
    """The request without the two headers that are not signed and differ by design: the
    User-Agent (elevate's own) and the per-call invocation ID (random)."""
    lines = raw.split(b"\r\n")
    return b"\r\n".join(
        line for line in lines if not line.lower().startswith((b"user-agent:", b"amz-sdk-invocation-id:"))
    )


SESSION = SessionCredentials(
    "ASIAIOSFODNN7EXAMPLE", EXAMPLE_SECRET, "FQoGZXIvYXdzEXAMPLE/token+with=chars", datetime.datetime.now()
)
CORPUS: list[tuple[str, Any, str, str, dict[str, Any]]] = [
    ("identity", KEYS, "us-east-1", "", {}),
    ("identity, session token", SESSION, "eu-west-1", "", {}),
    ("identity, endpoint path and query", KEYS, "ap-southeast-2", "/sts/?x=1", {}),
    (
        "assume role with MFA",
        KEYS,
        "eu-central-1",
        "",
        {
            "RoleArn": ROLE,
            "RoleSessionName": "alice",
            "DurationSeconds": 3600,
            "SourceIdentity": "alice",
            "SerialNumber": SERIAL,
            "TokenCode": "123456",
        },
    ),
    (
        "assume role, unicode and reserved characters, session token",
        SESSION,
        "cn-north-1",
        "",
        {
            "RoleArn": ROLE,
            "RoleSessionName": "ünï cödé+=,.@-",
            "DurationSeconds": 900,
            "SourceIdentity": "名前 with spaces&amp;",
        },
    ),
    ("session token call", KEYS, "us-gov-west-1", "", {"DurationSeconds": 43200, "SerialNumber": SERIAL}),
    (
        "assume role with a session policy (a scope): managed ARNs and an inline document",
        KEYS,
        "us-west-2",
        "",
        {
            "RoleArn": ROLE,
            "RoleSessionName": "alice",
            "DurationSeconds": 3600,
            "PolicyArns": [
                {"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
                {"arn": "arn:aws:iam::123456789012:policy/team/narrow"},
            ],
            "Policy": '{"Version":"2012-10-17","Statement":'
            '[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}',
        },
    ),
]


@pytest.mark.parametrize(("case", "keys", "region", "suffix", "params"), CORPUS, ids=[c[0] for c in CORPUS])
def test_signed_requests_equal_what_the_botocore_client_sends(
    monkeypatch: pytest.MonkeyPatch, case: str, keys: Any, region: str, suffix: str, params: dict[str, Any]
) -> None:
    frozen = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: frozen)  # one clock for both
    server = Capture()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url + suffix)
        method = "get_caller_identity" if not params else "assume_role" if "RoleArn" in params else ""
        for make in (aws.make_client, sts_client):
            client = make(keys, region)
            # The canned answer is GetCallerIdentity's: for the other calls only the request counts.
            with contextlib.suppress(KeyError):
                getattr(client, method or "get_session_token")(**params)
        assert isinstance(aws.sts_client(keys, region, os.environ), stsquery.QueryClient)
    finally:
        server.close()
    botocore_request, ours = server.raw
    assert b"Authorization: AWS4-HMAC-SHA256" in ours
    assert comparable(ours) == comparable(botocore_request)
    assert ours != botocore_request  # control: the User-Agent does differ, so the filter is needed


# --- 2. the endpoint and region rules are botocore's -----------------------------------------


def botocore_route(region: str) -> tuple[str, str]:
    """Where the client elevate made sends a call, and the region it signs for (before-send)."""
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session.set_config_variable("sts_regional_endpoints", "regional")
    client: Any = session.create_client(
        "sts", region_name=region, aws_access_key_id=EXAMPLE_ID, aws_secret_access_key=EXAMPLE_SECRET
    )
    seen: list[Any] = []

    def answer(request: Any, **_: Any) -> Any:
        seen.append(request)
        headers: Any = botocore.awsrequest.HeadersDict({"Content-Length": str(len(IDENTITY))})
        response: Any = botocore.awsrequest.AWSResponse(request.url, 200, headers, None)
        response._content = IDENTITY  # answered here: nothing leaves this machine
        return response

    client.meta.events.register_first("before-send", answer)
    client.get_caller_identity()
    scope = seen[0].headers["Authorization"].decode().split("Credential=", 1)[1].split("/")
    return seen[0].url, scope[2]


ROUTES = [
    ("us-east-1", {}, ""),
    ("eu-west-1", {}, ""),
    ("cn-northwest-1", {}, ""),
    ("us-gov-east-1", {}, ""),
    ("us-isob-east-1", {}, ""),
    ("eu-west-1", {"AWS_USE_FIPS_ENDPOINT": "true"}, ""),
    ("us-east-1", {"AWS_USE_DUALSTACK_ENDPOINT": "true"}, ""),
    ("us-east-1", {"AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"}, ""),
    ("us-east-1", {}, "[default]\nuse_fips_endpoint = true\n"),
    ("us-east-1", {"AWS_STS_REGIONAL_ENDPOINTS": "legacy"}, ""),
    ("eu-west-1", {"AWS_ENDPOINT_URL": "https://sts.example.test"}, ""),
    (
        "eu-west-1",
        {"AWS_ENDPOINT_URL": "https://a.example.test", "AWS_ENDPOINT_URL_STS": "https://b.example.test"},
        "",
    ),
    ("eu-west-1", {"AWS_USE_FIPS_ENDPOINT": "true", "AWS_ENDPOINT_URL": "https://a.example.test"}, ""),
    ("eu-west-1", {}, "[default]\nendpoint_url = https://config.example.test\n"),
    (
        "eu-west-1",
        {"AWS_ENDPOINT_URL": "https://env.example.test"},
        "[default]\nservices = s\n[services s]\nsts =\n  endpoint_url = https://service.example.test\n",
    ),
    (
        "eu-west-1",
        {},
        "[default]\nservices = s\nendpoint_url = https://all.example.test\n"
        "[services s]\nsts =\n  endpoint_url = https://service.example.test\n",
    ),
    (
        "eu-west-1",
        {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true", "AWS_ENDPOINT_URL": "https://x.example.test"},
        "",
    ),
    ("eu-west-1", {"AWS_PROFILE": "other"}, "[profile other]\nendpoint_url = https://other.example.test\n"),
]


@pytest.mark.parametrize(("region", "env", "config"), ROUTES)
def test_endpoint_and_signing_region_follow_the_clients_rules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, region: str, env: dict[str, str], config: str
) -> None:
    (tmp_path / "aws-config").write_text(config)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url, signing_region = botocore_route(region)
    route = stsquery.resolve(region, os.environ)
    assert (route.endpoint_url.rstrip("/") + "/", route.signing_region) == (url, signing_region)


@pytest.mark.parametrize(
    ("region", "env", "config"),
    [
        ("aws-global", {}, ""),  # not a region name of the usual shape
        ("eu-west-1", {"HTTPS_PROXY": "https://127.0.0.1:9"}, ""),  # TLS to the proxy itself
        ("eu-west-1", {"AWS_ENDPOINT_URL": "http://not a url"}, ""),
        ("eu-west-1", {"AWS_CA_BUNDLE": " "}, ""),
    ],
)
def test_what_the_transport_does_not_cover_goes_to_a_botocore_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, region: str, env: dict[str, str], config: str
) -> None:
    (tmp_path / "aws-config").write_text(config)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(Unsupported):
        stsquery.resolve(region, os.environ)
    if "AWS_ENDPOINT_URL" in env:  # botocore's ValueError was a traceback before: now one line
        with pytest.raises(ConfigError, match=r"Invalid endpoint: http://not a url; .*AWS_ENDPOINT_URL"):
            aws.sts_client(KEYS, region, os.environ)
        return
    if "AWS_CA_BUNDLE" in env:
        with pytest.raises(ConfigError, match="Invalid CA bundle"):  # the client's own message
            aws.sts_client(KEYS, region, os.environ)
        return
    assert not isinstance(aws.sts_client(KEYS, region, os.environ), stsquery.QueryClient)


def test_a_services_section_that_does_not_exist_fails_as_the_client_did(tmp_path: Path) -> None:
    (tmp_path / "aws-config").write_text("[default]\nservices = missing\n")
    with pytest.raises(Exception) as ours:
        stsquery.resolve("eu-west-1", os.environ)
    with pytest.raises(ConfigError, match="services"):
        aws.sts_client(KEYS, "eu-west-1", os.environ)
    assert "missing" in str(ours.value)


# --- 3. TLS verified by default; AWS_CA_BUNDLE and ca_bundle honoured ------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made now (cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "elevate test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class IdentityHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(IDENTITY)))
        self.end_headers()
        self.wfile.write(IDENTITY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def https_sts(certificate: tuple[Path, Path]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), IdentityHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    IdentityHandler.hits = []
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def identity_via(make: Callable[..., Any]) -> str:
    client = make(KEYS, "eu-west-1")
    identity, _ = aws.caller_identity(client)
    return identity.user_name


def test_tls_is_verified_by_default(monkeypatch: pytest.MonkeyPatch, https_sts: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", https_sts)
    messages = []
    for make in (aws.make_client, sts_client):
        with pytest.raises(StsError) as info:
            identity_via(make)
        messages.append(info.value.message)
    assert IdentityHandler.hits == []  # no request reached the server
    prefix = f"GetCallerIdentity failed: SSL validation failed for {https_sts}/ "
    assert all(m.startswith(prefix) and "CERTIFICATE_VERIFY_FAILED" in m for m in messages), messages


def test_aws_ca_bundle_and_the_configs_ca_bundle_are_honoured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, https_sts: str, certificate: tuple[Path, Path]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", https_sts)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(certificate[0]))
    assert identity_via(sts_client) == "alice"
    monkeypatch.delenv("AWS_CA_BUNDLE")
    (tmp_path / "aws-config").write_text(f"[default]\nca_bundle = {certificate[0]}\n")
    assert identity_via(sts_client) == "alice"
    assert identity_via(aws.make_client) == "alice"  # the reference agrees
    assert IdentityHandler.hits == ["/", "/", "/"]


# --- 4. proxies from the environment ---------------------------------------------------------


class ConnectProxy:
    """A loopback CONNECT proxy that records each request head and pipes the tunnel."""

    def __init__(self) -> None:
        self.heads: list[str] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        text = head.decode("latin-1")
        self.heads.append(text)
        method, target = text.split(" ", 2)[:2]
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)

    def close(self) -> None:
        self.listener.close()


def test_https_proxy_is_used_with_connect_and_its_credentials(
    monkeypatch: pytest.MonkeyPatch, https_sts: str, certificate: tuple[Path, Path]
) -> None:
    proxy = ConnectProxy()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", https_sts)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(certificate[0]))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://user:p%40ss@"))
        assert identity_via(sts_client) == "alice"
        assert identity_via(aws.make_client) == "alice"
        ours, reference = proxy.heads
        target = https_sts.removeprefix("https://")
        assert ours.startswith(f"CONNECT {target} HTTP/1.")  # http.client says 1.0, urllib3 1.1
        assert "Proxy-Authorization: Basic dXNlcjpwQHNz\r\n" in ours  # user:p@ss
        assert "Proxy-Authorization: Basic dXNlcjpwQHNz" in reference
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert identity_via(sts_client) == "alice"
        assert len(proxy.heads) == 2  # bypassed
    finally:
        proxy.close()


def test_an_unreachable_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://sts.example.test")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    client = stsquery.connect(KEYS, "eu-west-1", os.environ, sleep=lambda s: None)
    with pytest.raises(
        StsError, match=r"cannot reach STS at https://sts.example.test \(ProxyConnectionError\)"
    ):
        aws.call(client, "get_caller_identity", "GetCallerIdentity")


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


# --- 7. the keyring backend: keyring's order, no discovery when the platform's backend works --


BACKEND_PROBE = textwrap.dedent(
    """
    import json, sys
    from elevate import keystore
    keystore.PLATFORM_BACKENDS[sys.platform] = sys.argv[1]
    keystore.choose_backend()
    import keyring
    backend = keyring.get_keyring()
    print(json.dumps({"backend": f"{type(backend).__module__}.{type(backend).__name__}",
                      "discovered": "keyring.backends.chainer" in sys.modules}))
    """
)


def probe_backend(tmp_path: Path, platform_backend: str, env: dict[str, Optional[str]]) -> dict[str, Any]:
    child = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    child["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    child.update({k: v for k, v in env.items() if v is not None})
    done = subprocess.run(
        [sys.executable, "-c", BACKEND_PROBE, platform_backend],
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    import json

    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_platform_backend_is_imported_directly_and_discovery_is_the_fallback(tmp_path: Path) -> None:
    test_backend = "elevate_testkeyring.FileKeyring"
    direct = probe_backend(tmp_path, test_backend, {})
    assert direct == {"backend": test_backend, "discovered": False}
    fallback = probe_backend(tmp_path, "no_such_module.Keyring", {})
    assert fallback["discovered"] is True and fallback["backend"] != test_backend


def test_keyrings_own_order_comes_first(tmp_path: Path) -> None:
    config = tmp_path / "config" / "python_keyring" / "keyringrc.cfg"
    config.parent.mkdir(parents=True)
    config.write_text("[backend]\ndefault-keyring=keyring.backends.null.Keyring\n")
    by_config = probe_backend(tmp_path, "elevate_testkeyring.FileKeyring", {})
    assert by_config == {"backend": "keyring.backends.null.Keyring", "discovered": False}
    by_env = probe_backend(
        tmp_path,
        "elevate_testkeyring.FileKeyring",
        {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
    )
    assert by_env == {"backend": "keyring.backends.fail.Keyring", "discovered": False}
    assert keystore.PLATFORM_BACKENDS["linux"] == "keyring.backends.SecretService.Keyring"
