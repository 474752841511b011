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
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import botocore.auth
import botocore.session
import pytest
from support.botoanswer import answer_with
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET, ROLE, SERIAL
from support.stsenv import IDENTITY, KEYS, no_aws_files, sts_client  # noqa: F401  (no_aws_files: autouse)

from elevate import aws, stsquery
from elevate.errors import ConfigError, StsError, Unsupported
from elevate.models import SessionCredentials

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

    client.meta.events.register_first("before-send", answer_with(IDENTITY, seen))  # nothing leaves
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
