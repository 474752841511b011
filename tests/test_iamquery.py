"""doctor's one IAM call (ListMFADevices) over elevate.stsquery's transport: the route, the
request, the parsed answer and the errors are those of a botocore IAM client."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import botocore.session
import pytest
from support.botoanswer import answer_with, http_answer
from support.constants import EXAMPLE_ID, EXAMPLE_SECRET
from support.fakests import FakeSts

from elevate import aws, stsquery
from elevate.errors import IamError
from elevate.models import SourceKeys

KEYS = SourceKeys(EXAMPLE_ID, EXAMPLE_SECRET)
SERIAL = "arn:aws:iam::123456789012:mfa/alice"


def devices_xml(*members: str) -> bytes:
    listed = "".join(f"<member>{m}</member>" for m in members)
    return (
        '<ListMFADevicesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListMFADevicesResult>'
        f"<MFADevices>{listed}</MFADevices><IsTruncated>false</IsTruncated></ListMFADevicesResult>"
        "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></ListMFADevicesResponse>"
    ).encode()


def device(serial: str) -> str:
    return (
        f"<UserName>alice</UserName><SerialNumber>{serial}</SerialNumber>"
        "<EnableDate>2026-01-02T03:04:05Z</EnableDate>"
    )


class FakeIam:
    """A loopback IAM that keeps each request's form and Authorization and answers `body`."""

    def __init__(self, body: bytes) -> None:
        self.forms: list[dict[str, str]] = []
        self.credentials: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                owner.forms.append(dict(parse_qsl(self.rfile.read(length).decode())))
                owner.credentials.append(self.headers.get("Authorization", "").split("Credential=")[-1][:20])
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeIam:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IAM", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def botocore_call(region: str, body: bytes) -> tuple[Any, dict[str, Any]]:
    """The request a botocore IAM client sends for ListMFADevices(UserName=alice), answered
    here with `body` (nothing leaves this machine), and what the client returns."""
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    client: Any = session.create_client(
        "iam", region_name=region, aws_access_key_id=EXAMPLE_ID, aws_secret_access_key=EXAMPLE_SECRET
    )
    seen: list[Any] = []

    client.meta.events.register_first("before-send", answer_with(body, seen))
    return seen, client.list_mfa_devices(UserName="alice")


def answered(body: bytes) -> Any:
    """An HTTP 200 answer carrying `body`, as the transport hands it to parse."""
    return http_answer("https://iam.amazonaws.com/", body)


def scope(request: Any) -> list[str]:
    authorization = request.headers["Authorization"]
    text = authorization.decode() if isinstance(authorization, bytes) else authorization
    return text.split("Credential=", 1)[1].split(",")[0].split("/")[1:]


ROUTES = [
    ("us-east-1", {}),
    ("eu-west-1", {}),
    ("cn-north-1", {}),
    ("us-gov-west-1", {}),
    ("eu-west-1", {"AWS_ENDPOINT_URL": "https://all.example.test"}),
    (
        "eu-west-1",
        {"AWS_ENDPOINT_URL": "https://a.example.test", "AWS_ENDPOINT_URL_IAM": "https://i.example.test"},
    ),
    ("eu-west-1", {"AWS_ENDPOINT_URL_STS": "https://sts-only.example.test"}),
]


@pytest.mark.parametrize(("region", "env"), ROUTES)
def test_the_route_and_the_signed_scope_are_the_iam_clients(
    monkeypatch: pytest.MonkeyPatch, region: str, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen, _ = botocore_call(region, devices_xml())
    route = stsquery.resolve(region, os.environ, service="iam")
    assert route.endpoint_url.rstrip("/") + "/" == seen[0].url
    assert [route.signing_region, route.signing_name] == scope(seen[0])[1:3]


def iam_query(keys: SourceKeys, region: str, service: str = "iam") -> Any:
    assert service == "iam"
    return aws.iam_query_client(keys, region, os.environ)


def test_the_call_on_the_wire_and_its_answer_are_the_iam_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeIam(devices_xml(device(SERIAL), device("GAHT12345678"))) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        answers = [aws.mfa_devices(KEYS, "us-east-1", "alice", make) for make in (aws.make_client, iam_query)]
        assert answers[0] == answers[1] == [SERIAL, "GAHT12345678"]
        assert fake.forms[0] == fake.forms[1]
        assert fake.forms[1] == {"Action": "ListMFADevices", "Version": "2010-05-08", "UserName": "alice"}
        assert fake.credentials[0] == fake.credentials[1] == EXAMPLE_ID
        assert isinstance(iam_query(KEYS, "us-east-1"), stsquery.QueryClient)


@pytest.mark.parametrize(
    "members",
    [
        (),
        (device(SERIAL),),
        (device(SERIAL), device("GAHT12345678")),
    ],
    ids=["none", "one", "two"],
)
def test_answers_parse_as_the_iam_client_parses_them(members: tuple[str, ...]) -> None:
    body = devices_xml(*members)
    _, expected = botocore_call("us-east-1", body)
    response = answered(body)
    parsed = stsquery.parse(response, "ListMFADevices")
    assert {k: v for k, v in parsed.items() if k != "ResponseMetadata"} == {
        k: v for k, v in expected.items() if k != "ResponseMetadata"
    }


def test_a_hostile_member_is_dropped_not_passed_on() -> None:
    # A member that is text, or an empty list element, must not reach aws.mfa_devices as a non-dict.
    body = devices_xml("just text", device(SERIAL)).replace(b"<MFADevices>", b"<MFADevices><member/>")
    response = answered(body)
    parsed = stsquery.parse(response, "ListMFADevices")
    assert [d["SerialNumber"] for d in parsed["MFADevices"]] == [SERIAL]


def test_errors_are_iam_errors_worded_as_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSts() as fake:  # it answers ListMFADevices with InvalidAction: an IAM error all the same
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        messages = []
        for make in (aws.make_client, iam_query):
            with pytest.raises(IamError) as info:
                aws.mfa_devices(KEYS, "us-east-1", "alice", make)
            messages.append(info.value.message)
        assert messages[0] == messages[1]
        assert "ListMFADevices" in messages[0]
