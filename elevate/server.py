"""A loopback credential server speaking the SDKs' container credentials protocol.

The child of `elevate exec --server` gets AWS_CONTAINER_CREDENTIALS_FULL_URI (this server
on 127.0.0.1) and AWS_CONTAINER_AUTHORIZATION_TOKEN; botocore, the AWS CLI v2 and the JS,
Go and Java SDKs then fetch refreshing credentials from it instead of holding one-hour
static keys. Anyone on the machine can connect to a loopback port, and a browser page can
reach it through DNS rebinding, so every request must name the bound address in its Host
header, come from a loopback peer and carry the token (compared in constant time); anything
else gets a JSON error and never a credential. A request never waits without bound.

A connection from another user (the peer socket's owner in the kernel's socket table, Linux)
is closed before it takes one of the bounded slots, and anyone gets about a second to send
the request. Once the command has ended the server is retired, not closed: its port stays
bound, answering 410 with no credential, for as long as processes the command left behind
may still hold the URL, so another user cannot take the port and answer them.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from . import hostos
from .errors import CredentialsUnavailable, ElevateError, ServerError
from .models import SessionCredentials
from .supply import CredentialSupply

HOST = "127.0.0.1"
PATH = "/credentials"
TOKEN_BYTES = 32  # 256 bits
SOCKET_TIMEOUT_SECONDS = 5.0  # for each read
REQUEST_SECONDS = 1.0  # for the whole request line and headers: a real SDK sends them at once
MAX_CONNECTIONS = 64

# Who owns the peer's socket: (peer address, our address) -> uid, or None when unknown.
PeerOwner = Callable[[tuple[str, int], tuple[str, int]], Optional[int]]


def socket_owner(peer: tuple[str, int], ours: tuple[str, int], table: Optional[str] = None) -> Optional[int]:
    """The uid owning the IPv4 TCP socket bound at `peer` and connected to `ours`, from the
    kernel's socket table (hostos.tcp_owner_table: Linux's, which every user may read), or None
    when it cannot be told (no such table: macOS, Windows)."""
    table = table if table is not None else hostos.tcp_owner_table()
    if table is None:
        return None
    wanted = (_table_address(peer), _table_address(ours))
    try:
        with open(table, encoding="ascii", errors="replace") as rows:
            next(rows, None)  # the header
            for row in rows:
                fields = row.split()
                if len(fields) > 7 and (fields[1], fields[2]) == wanted:
                    return int(fields[7])
    except (OSError, ValueError):
        return None
    return None


def _table_address(address: tuple[str, int]) -> str:
    """`127.0.0.1:PORT` as /proc/net/tcp writes it: the address in host byte order, in hex."""
    packed = socket.inet_aton(address[0])
    return f"{int.from_bytes(packed, 'little'):08X}:{address[1]:04X}"


def allowed_peer(owner: Optional[int], uid: Optional[int]) -> bool:
    """Whether a connection whose socket belongs to `owner` may take a slot: ours or root's
    (root can read everything anyway), or unknown (the token still decides)."""
    return owner is None or uid is None or owner in (uid, 0)


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
        request_seconds: float = REQUEST_SECONDS,
        peer_owner: PeerOwner = socket_owner,
    ) -> None:
        self.supply = supply
        self._host = check_bind_host(host)
        self._token = token if token is not None else secrets.token_urlsafe(TOKEN_BYTES)
        if len(self._token) < 43:
            raise ServerError("the credential server's token must carry at least 256 bits")
        self._max_connections = max_connections
        self._socket_timeout = socket_timeout
        self._request_seconds = min(request_seconds, socket_timeout)
        self._peer_owner = peer_owner
        self._retired = False
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
            request_seconds = self._request_seconds

        try:
            self._httpd = _Httpd((self._host, 0), Handler, self._max_connections, self._peer_allowed)
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

    def retire(self) -> None:
        """The command has ended: keep the port, answer 410 to everything, hand out nothing more."""
        self._retired = True
        self.supply.drop()

    @property
    def retired(self) -> bool:
        return self._retired

    def _peer_allowed(self, peer: tuple[str, int]) -> bool:
        ours = (self._host, self.port)
        return allowed_peer(self._peer_owner(peer, ours), hostos.owner_id())

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

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[_Handler],
        limit: int,
        peer_allowed: Callable[[tuple[str, int]], bool],
    ) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._peer_allowed = peer_allowed
        super().__init__(address, handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Another user's connection is closed here, before it takes a slot or a thread."""
        try:
            return self._peer_allowed((str(client_address[0]), int(client_address[1])))
        except (ValueError, TypeError, IndexError, OSError):
            return True  # not an IPv4 peer we can look up: the checks of each request decide

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
    request_seconds: float = REQUEST_SECONDS
    server_version = "elevate"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    _cutter: Optional[threading.Timer] = None

    def setup(self) -> None:
        """Also bound the whole request, not each read: a client that sends a byte just inside
        every socket timeout would otherwise hold its slot for as long as it likes."""
        super().setup()
        self._cutter = threading.Timer(self.request_seconds, self._cut)
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
        if self.server_owner.retired:
            self._answer(410, "Gone", "the command this server ran for has ended")
            return
        refusal = self._refusal()
        if refusal is not None:
            self._answer(*refusal)
            return
        try:
            creds = self.server_owner.supply.get()
        except CredentialsUnavailable as exc:
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
