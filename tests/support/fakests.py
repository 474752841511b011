"""A small fake STS endpoint for tests: the query protocol on 127.0.0.1, in a thread.

    with FakeSts() as sts:
        env["AWS_ENDPOINT_URL"] = sts.url
        sts.behave("AssumeRole", delay=0.5)
        ...
        assert sts.count("AssumeRole") == 1
        assert sts.last("AssumeRole")["TokenCode"] == "123456"

It answers GetCallerIdentity, AssumeRole and GetSessionToken with XML shaped like real
STS (so botocore parses it), counts requests per action, keeps each request's form
parameters, and lets a test inject per action a delay, a gate (answer only once an
Event is set), an STS error, or a raw body. Like real STS it refuses a TokenCode it has
already accepted for the same SerialNumber (`mark_code_used` makes a code taken). Credentials are
random, made at run time. `LoopbackServer` is the thread-served 127.0.0.1 server it shares with
support/fakefederation.py.
"""

from __future__ import annotations

import contextlib
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Union
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
ACCOUNT = "123456789012"
ACTIONS = ("GetCallerIdentity", "AssumeRole", "GetSessionToken")
REUSED_CODE_MESSAGE = "MultiFactorAuthentication failed with invalid MFA one time pass code. "
_GATE_LIMIT = 30.0  # a gated request never waits longer than this, even if a test forgets it


# -- a server on 127.0.0.1, shared with the fake federation endpoint ---------------------------


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output clean (no access log on stderr)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackServer:
    """`handler` served on 127.0.0.1 between start() and stop()."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.handler = handler
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None, "stop() before start()"
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def origin(self) -> str:
        """http://127.0.0.1:PORT while it runs."""
        assert self._server is not None, "the server is not running: use the fake as a context manager"
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)
        return f"http://{host}:{port}"


@dataclass
class Behaviour:
    """What one action does instead of (or before) answering normally."""

    delay: float = 0.0
    gate: Optional[threading.Event] = None
    error: Optional[tuple[int, str, str]] = None  # (HTTP status, STS error Code, Message)
    body: Optional[Union[bytes, str]] = None
    status: int = 200


@dataclass
class Request:
    """One request as the fake saw it."""

    action: str
    params: dict[str, str]
    access_key_id: Optional[str]
    session_token: Optional[str] = field(repr=False)


@dataclass(frozen=True)
class SessionPolicy:
    """The session policy of one AssumeRole request, decoded from its form parameters."""

    policy_arns: tuple[str, ...]
    policy: Optional[str]


def fake_access_key_id(prefix: str = "ASIA") -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def fake_secret(length: int = 40) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits + "/+") for _ in range(length))


class FakeSts:
    """The fake endpoint; use as a context manager (it starts and stops its thread)."""

    def __init__(
        self,
        user_name: str = "alice",
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.user_name = user_name
        self.clock = clock
        self.requests: list[Request] = []
        self.issued: list[dict[str, str]] = []  # credentials handed out, for leak checks
        self._behaviours: dict[str, Behaviour] = {}
        self._accepted_codes: set[tuple[str, str]] = set()
        self._cond = threading.Condition()
        self._server: Optional[LoopbackServer] = None

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeSts:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = LoopbackServer(Handler)
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            for behaviour in self._behaviours.values():
                if behaviour.gate is not None:
                    behaviour.gate.set()  # never leave a handler thread parked
        assert self._server is not None, "use FakeSts as a context manager"
        self._server.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "use FakeSts as a context manager"
        return self._server.origin

    # -- what tests set and read ------------------------------------------------------------

    def behave(self, action: str, **settings: Any) -> Behaviour:
        """Replace `action`'s behaviour (delay=, gate=, error=, body=, status=)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        behaviour = Behaviour(**settings)
        with self._cond:
            self._behaviours[action] = behaviour
        return behaviour

    def reset(self, action: Optional[str] = None) -> None:
        """Back to normal answers for `action` (or for every action)."""
        with self._cond:
            for name in [action] if action else list(self._behaviours):
                gone = self._behaviours.pop(name, None)
                if gone is not None and gone.gate is not None:
                    gone.gate.set()

    def mark_code_used(self, serial: str, code: str) -> None:
        """Take `code` as already accepted for `serial` (used by another client): STS refuses it."""
        with self._cond:
            self._accepted_codes.add((serial, code))

    def count(self, action: str) -> int:
        with self._cond:
            return sum(1 for r in self.requests if r.action == action)

    def last(self, action: str) -> dict[str, str]:
        """The form parameters of the latest `action` request."""
        with self._cond:
            for request in reversed(self.requests):
                if request.action == action:
                    return dict(request.params)
        raise AssertionError(f"no {action} request was made")

    def session_policies(self) -> list[SessionPolicy]:
        """The session policy (PolicyArns, Policy) of every AssumeRole request, as STS received it."""
        result = []
        for request in self.of("AssumeRole"):
            arns, number = [], 1
            while f"PolicyArns.member.{number}.arn" in request.params:
                arns.append(request.params[f"PolicyArns.member.{number}.arn"])
                number += 1
            result.append(SessionPolicy(tuple(arns), request.params.get("Policy")))
        return result

    def of(self, action: str) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.action == action]

    def wait_for(self, action: str, count: int = 1, timeout: float = 15.0) -> None:
        """Block until `count` requests of `action` have arrived (AssertionError on timeout)."""
        with self._cond:
            done = self._cond.wait_for(
                lambda: sum(1 for r in self.requests if r.action == action) >= count, timeout
            )
        if not done:
            raise AssertionError(f"fake STS: waited {timeout} s for {count} {action} request(s)")

    # -- the protocol -----------------------------------------------------------------------

    def _record(self, request: Request) -> Behaviour:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
            return self._behaviours.get(request.action, Behaviour())

    def _answer(self, request: Request) -> tuple[int, bytes]:
        behaviour = self._record(request)
        if behaviour.delay:
            time.sleep(behaviour.delay)  # simulates a slow STS: the thing under test
        if behaviour.gate is not None:
            behaviour.gate.wait(_GATE_LIMIT)
        if behaviour.body is not None:
            body = behaviour.body
            return behaviour.status, body.encode() if isinstance(body, str) else body
        if behaviour.error is not None:
            return error_response(*behaviour.error)
        if request.action == "GetCallerIdentity":
            return 200, self._caller_identity(request)
        if request.action in ("AssumeRole", "GetSessionToken"):
            refusal = self._check_code(request)
            if refusal is not None:
                return refusal
            return 200, self._credentials(request)
        return error_response(400, "InvalidAction", f"Could not find operation {request.action}")

    def _check_code(self, request: Request) -> Optional[tuple[int, bytes]]:
        serial, code = request.params.get("SerialNumber"), request.params.get("TokenCode")
        if not serial or not code:
            return None
        with self._cond:
            if (serial, code) in self._accepted_codes:
                return error_response(403, "AccessDenied", REUSED_CODE_MESSAGE)
            self._accepted_codes.add((serial, code))
        return None

    def _caller_identity(self, request: Request) -> bytes:
        return _envelope(
            "GetCallerIdentity",
            f"<Arn>arn:aws:iam::{ACCOUNT}:user/{escape(self.user_name)}</Arn>"
            "<UserId>AIDAFAKEUSERID0000001</UserId>"
            f"<Account>{ACCOUNT}</Account>",
        )

    def _credentials(self, request: Request) -> bytes:
        default = 3600 if request.action == "AssumeRole" else 43200
        duration = int(request.params.get("DurationSeconds", default))
        expiration = self.clock() + timedelta(seconds=duration)
        creds = {
            "AccessKeyId": fake_access_key_id(),
            "SecretAccessKey": fake_secret(),
            "SessionToken": fake_secret(356),
            "Expiration": expiration.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        with self._cond:
            self.issued.append(creds)
        block = (
            "<Credentials>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in creds.items()) + "</Credentials>"
        )
        if request.action == "GetSessionToken":
            return _envelope("GetSessionToken", block)
        role_arn = request.params.get("RoleArn", "")
        session = request.params.get("RoleSessionName", "")
        role_name = role_arn.rsplit("/", 1)[-1]
        extra = ""
        if "SourceIdentity" in request.params:
            extra = f"<SourceIdentity>{escape(request.params['SourceIdentity'])}</SourceIdentity>"
        return _envelope(
            "AssumeRole",
            extra + "<AssumedRoleUser>"
            f"<Arn>arn:aws:sts::{ACCOUNT}:assumed-role/{escape(role_name)}/{escape(session)}</Arn>"
            f"<AssumedRoleId>AROAFAKEROLEID000001:{escape(session)}</AssumedRoleId>"
            "</AssumedRoleUser>" + block + "<PackedPolicySize>6</PackedPolicySize>",
        )


def _envelope(action: str, result: str) -> bytes:
    return (
        f'<{action}Response xmlns="{NAMESPACE}">'
        f"<{action}Result>{result}</{action}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    ).encode()


def error_response(status: int, code: str, message: str) -> tuple[int, bytes]:
    """An STS error document as botocore expects it."""
    kind = "Sender" if status < 500 else "Receiver"
    return status, (
        f'<ErrorResponse xmlns="{NAMESPACE}">'
        f"<Error><Type>{kind}</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId>"
        "</ErrorResponse>"
    ).encode()


class _Handler(QuietHandler):
    owner: FakeSts
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode("utf-8"), keep_blank_values=True))
        action = form.pop("Action", "")
        form.pop("Version", None)
        request = Request(
            action,
            form,
            _signing_key(self.headers.get("Authorization", "")),
            self.headers.get("X-Amz-Security-Token"),
        )
        status, body = self.owner._answer(request)
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)


def _signing_key(authorization: str) -> Optional[str]:
    """The access key ID from a SigV4 Authorization header (Credential=KEY/date/...)."""
    marker = "Credential="
    if marker not in authorization:
        return None
    return authorization.split(marker, 1)[1].split("/", 1)[0]


@contextlib.contextmanager
def fake_sts(**kwargs: Any) -> Iterator[FakeSts]:
    """`with fake_sts() as sts:` — the same as `with FakeSts() as sts:`."""
    with FakeSts(**kwargs) as server:
        yield server
