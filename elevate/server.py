"""A loopback credential server speaking the SDKs' container credentials protocol.

The child of `elevate exec --server` gets AWS_CONTAINER_CREDENTIALS_FULL_URI (this server
on 127.0.0.1) and AWS_CONTAINER_AUTHORIZATION_TOKEN; botocore, the AWS CLI v2 and the JS,
Go and Java SDKs then fetch refreshing credentials from it instead of holding one-hour
static keys. Anyone on the machine can connect to a loopback port, and a browser page can
reach it through DNS rebinding, so every request must name the bound address in its Host
header, come from a loopback peer and carry the token (compared in constant time); anything
else gets a JSON error and never a credential. A request never waits without bound.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from . import cache as cache_mod
from .errors import ElevateError, ServerError
from .models import Profile, SessionCredentials

HOST = "127.0.0.1"
PATH = "/credentials"
TOKEN_BYTES = 32  # 256 bits
# botocore refreshes with under 15 minutes left on every access: hand out more than that.
MIN_SECONDS_LEFT = 15 * 60 + 60
# Inside this lead on MIN_SECONDS_LEFT a request starts a refresh but is answered at once.
PREFETCH_SECONDS = 5 * 60
# A refresh that failed or is still running: credentials with this long left still serve.
STALE_BUT_USABLE_SECONDS = 60
# After a failed refresh, requests get its error at once (or credentials still usable) for a
# pause that doubles with each failure in a row: SDK retries are not each an AssumeRole call.
RETRY_FIRST_SECONDS = 5
RETRY_MAX_SECONDS = 300
REQUEST_DEADLINE_SECONDS = 10.0
SOCKET_TIMEOUT_SECONDS = 5.0  # for each read, and for the whole request line and headers
MAX_CONNECTIONS = 64


class Unavailable(ElevateError):
    """No credentials within the request's deadline (a refresh is still running)."""


def serving_profile(profile: Profile, min_left: int = MIN_SECONDS_LEFT) -> Profile:
    """`profile` refreshed early enough that what the server hands out has `min_left` left,
    as far as its duration allows (at least a minute of use per credential)."""
    refresh = min(max(profile.refresh_before_seconds, min_left), profile.duration_seconds - 60)
    return dataclasses.replace(profile, refresh_before_seconds=refresh)


@dataclasses.dataclass
class _Flight:
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: Optional[SessionCredentials] = None
    error: Optional[ElevateError] = None


class CredentialSupply:
    """The credentials the server hands out: held while fresh, refreshed by one thread at a time."""

    def __init__(
        self,
        fetch: Callable[[], SessionCredentials],
        min_left: int = MIN_SECONDS_LEFT,
        clock: Callable[[], datetime] = cache_mod.utcnow,
        deadline: float = REQUEST_DEADLINE_SECONDS,
        initial: Optional[SessionCredentials] = None,
        monotonic: Callable[[], float] = time.monotonic,
        on_failure: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self._fetch = fetch
        self._min_left = min_left
        self._clock = clock
        self._deadline = deadline
        self._monotonic = monotonic
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._current = initial
        self._flight: Optional[_Flight] = None
        self._failures = 0  # failed refreshes in a row
        self._retry_at = 0.0  # monotonic time before which no refresh starts
        self._error: Optional[ElevateError] = None  # the last failure, answered meanwhile

    def get(self) -> SessionCredentials:
        """Credentials with more than `min_left` left if at all possible; never waits past the deadline."""
        with self._lock:
            current = self._current
            left = current.seconds_left(self._clock()) if current is not None else 0.0
            if current is not None and left > self._min_left + PREFETCH_SECONDS:
                return current
            pausing = self._flight is None and self._error is not None and self._monotonic() < self._retry_at
            flight = None if pausing else self._start()
            if current is not None and left > self._min_left:
                return current
            error = self._error
        if flight is None:
            return self._usable(current, error or Unavailable("the refresh gave no credentials"))
        if not flight.done.wait(self._deadline):
            return self._usable(current, Unavailable("still waiting for the credentials (an MFA prompt?)"))
        if flight.result is None:
            return self._usable(current, flight.error or Unavailable("the refresh gave no credentials"))
        return flight.result

    def _usable(self, current: Optional[SessionCredentials], error: ElevateError) -> SessionCredentials:
        if current is not None and current.seconds_left(self._clock()) > STALE_BUT_USABLE_SECONDS:
            return current
        raise error

    def _start(self) -> _Flight:
        """The refresh in flight, or a new one (caller holds the lock)."""
        if self._flight is None:
            self._flight = _Flight()
            threading.Thread(target=self._refresh, args=(self._flight,), daemon=True).start()
        return self._flight

    def _refresh(self, flight: _Flight) -> None:
        try:
            flight.result = self._fetch()
        except ElevateError as exc:
            flight.error = exc
        except Exception as exc:  # noqa: BLE001 - a refresh thread must always release its waiters
            flight.error = ElevateError(f"refreshing the credentials failed ({type(exc).__name__})")
        failed = None
        with self._lock:
            if flight.result is not None:
                self._current = flight.result
                self._failures, self._retry_at, self._error = 0, 0.0, None
            else:
                self._failures += 1
                pause = min(RETRY_FIRST_SECONDS * 2 ** min(self._failures - 1, 16), RETRY_MAX_SECONDS)
                self._retry_at = self._monotonic() + pause
                self._error = flight.error or Unavailable("the refresh gave no credentials")
                failed = f"refreshing the credentials failed: {self._error.message}; next try in {pause} s"
            self._flight = None
        flight.done.set()
        if failed is not None:
            self._on_failure(failed)


def check_bind_host(host: str) -> str:
    """`host` if it is an IPv4 loopback address literal; names such as localhost are refused."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ServerError(f"the credential server listens on a loopback address only, not {host!r}") from None
    if address.version != 4 or not address.is_loopback:
        raise ServerError(f"the credential server listens on a loopback address only, not {host!r}")
    return host


class CredentialServer:
    """The server; use as a context manager (it starts a thread and stops it on exit)."""

    def __init__(
        self,
        supply: CredentialSupply,
        host: str = HOST,
        token: Optional[str] = None,
        max_connections: int = MAX_CONNECTIONS,
        socket_timeout: float = SOCKET_TIMEOUT_SECONDS,
    ) -> None:
        self.supply = supply
        self._host = check_bind_host(host)
        self._token = token if token is not None else secrets.token_urlsafe(TOKEN_BYTES)
        if len(self._token) < 43:
            raise ServerError("the credential server's token must carry at least 256 bits")
        self._max_connections = max_connections
        self._socket_timeout = socket_timeout
        self._httpd: Optional[_Httpd] = None
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return f"CredentialServer({self.url if self._httpd else 'stopped'})"

    def __enter__(self) -> CredentialServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Bind a free port on the loopback address and serve in a daemon thread."""
        owner = self

        class Handler(_Handler):
            server_owner = owner
            timeout = self._socket_timeout

        try:
            self._httpd = _Httpd((self._host, 0), Handler, self._max_connections)
        except OSError as exc:
            raise ServerError(f"cannot listen on {self._host}: {exc.strerror}") from exc
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise ServerError("the credential server is not running")
        return int(self._httpd.server_address[1])

    @property
    def authority(self) -> str:
        """The one Host header value the server accepts."""
        return f"{self._host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}{PATH}"

    @property
    def token(self) -> str:
        return self._token

    def variables(self, region: Optional[str], profile: str) -> dict[str, str]:
        """The environment that points an SDK at this server (and nothing static)."""
        env = {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": self._token,
        }
        if region:
            env["AWS_REGION"] = region
            env["AWS_DEFAULT_REGION"] = region
        env["ELEVATE_PROFILE"] = profile
        return env

    def token_matches(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), self._token.encode())


class _Httpd(ThreadingHTTPServer):
    """A threading server with a bound on the connections handled at once."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], handler: type[_Handler], limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many at once: drop, never queue without bound
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server_owner: CredentialServer
    server_version = "elevate"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    _cutter: Optional[threading.Timer] = None

    def setup(self) -> None:
        """Also bound the whole request, not each read: a client that sends a byte just inside
        every socket timeout would otherwise hold its slot for as long as it likes."""
        super().setup()
        self._cutter = threading.Timer(float(self.timeout or SOCKET_TIMEOUT_SECONDS), self._cut)
        self._cutter.daemon = True
        self._cutter.start()

    def _cut(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def _request_read(self) -> None:
        """The request is in: from here on only the answer's own deadlines apply."""
        if self._cutter is not None:
            self._cutter.cancel()

    def finish(self) -> None:
        self._request_read()
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: a request line or header must never reach a log."""

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """The base's malformed-request answers, as the protocol's JSON."""
        self._answer(code, "BadRequest" if code < 500 else "ServerError", message or "request refused")

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD

    def _handle(self) -> None:
        self._request_read()
        refusal = self._refusal()
        if refusal is not None:
            self._answer(*refusal)
            return
        try:
            creds = self.server_owner.supply.get()
        except Unavailable as exc:
            self._answer(503, "CredentialsUnavailable", exc.message)
            return
        except ElevateError as exc:
            self._answer(503, "RefreshFailed", exc.message)
            return
        self._send(200, credentials_json(creds))

    def _refusal(self) -> Optional[tuple[int, str, str]]:
        """Why this request gets no credential, checked before anything else is looked at."""
        owner = self.server_owner
        try:
            loopback = ipaddress.ip_address(self.client_address[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return 403, "Forbidden", "only loopback clients are served"
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0] != owner.authority:
            return 403, "Forbidden", f"the Host header must be {owner.authority}"
        tokens = self.headers.get_all("Authorization") or []
        if not tokens:
            return 401, "Unauthorized", "the Authorization header with the token is missing"
        if len(tokens) != 1 or not owner.token_matches(tokens[0]):
            return 403, "Forbidden", "the token is wrong"
        if self.command != "GET":
            return 405, "MethodNotAllowed", "only GET is served"
        if self.path != PATH:
            return 404, "NotFound", f"the credentials are at {PATH}"
        length = self.headers.get("Content-Length")
        chunked = self.headers.get("Transfer-Encoding") is not None
        if chunked or (length is not None and length.strip() != "0"):
            return 400, "BadRequest", "a request body is refused"
        return None

    def _answer(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"code": code, "message": message}))

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        try:
            self.send_response_only(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (TimeoutError, OSError):
            pass  # the client went away; nothing to tell it
        self.close_connection = True


def credentials_json(creds: SessionCredentials) -> str:
    """The container credentials provider's answer."""
    return json.dumps(
        {
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key,
            "Token": creds.session_token,
            "Expiration": creds.expiration_iso(),
        }
    )
