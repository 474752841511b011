"""The AWS console sign-in URL for role credentials: the federation endpoint's getSigninToken.

The role session goes to the endpoint (HTTPS, or plain HTTP on loopback for tests) and a
sign-in token comes back. That token is a credential for 15 minutes: it appears only in
the returned URL, never in a log line, an error message or an argv (every user can read a
browser's argv in /proc while it starts): the browser is given a private file that redirects
to the URL, and the file is removed soon after. Errors name the endpoint's host, never its
full URL, since the request's query carries the session.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import FederationError, UsageError
from .models import SessionCredentials
from .store import FileStore, write_private

log = logging.getLogger("elevate")

TIMEOUT = 10.0
MAX_ANSWER = 64 * 1024  # a real answer is a few kB; more is refused, not parsed
ISSUER = "aws-elevate"
SESSION_DURATION_RANGE = (900, 43200)
_TOKEN = re.compile(r"^[A-Za-z0-9_\-+/=.%]{16,8192}$", re.ASCII)
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
# How long the redirect file (holding the sign-in URL) stays for the browser to read it.
REDIRECT_FILE_SECONDS = 30.0
_REMOVER = (
    "import os, sys, time\n"
    "time.sleep(float(sys.argv[2]))\n"
    "try:\n    os.unlink(sys.argv[1])\nexcept OSError:\n    pass\n"
)


@dataclass(frozen=True)
class Partition:
    """Where one AWS partition signs in, and its console."""

    federation_url: str
    console_host: str


PARTITIONS: Mapping[str, Partition] = {
    "aws": Partition("https://signin.aws.amazon.com/federation", "console.aws.amazon.com"),
    "aws-us-gov": Partition("https://signin.amazonaws-us-gov.com/federation", "console.amazonaws-us-gov.com"),
    "aws-cn": Partition("https://signin.amazonaws.cn/federation", "console.amazonaws.cn"),
}


def partition_of(role_arn: str) -> str:
    """The partition named in an ARN (arn:PARTITION:...)."""
    parts = role_arn.split(":")
    return parts[1] if len(parts) > 1 else "aws"


def federation_url(partition: str, environ: Mapping[str, str]) -> str:
    """$ELEVATE_FEDERATION_URL, else the partition's endpoint; checked before any session is sent."""
    url = environ.get("ELEVATE_FEDERATION_URL")
    if url:
        return check_endpoint(url)
    known = PARTITIONS.get(partition)
    if known is None:
        raise UsageError(
            f"no public console sign-in endpoint is known for partition {partition!r}: "
            "set ELEVATE_FEDERATION_URL"
        )
    return known.federation_url


def check_endpoint(url: str) -> str:
    """`url` if it may receive a role session: https, or http to a loopback address only."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return url
    if parsed.scheme == "http" and parsed.hostname in _LOOPBACK:
        return url
    raise UsageError(
        "ELEVATE_FEDERATION_URL must be an https URL (plain http only to 127.0.0.1, ::1 or localhost)"
    )


def default_destination(partition: str, region: str) -> str:
    """The console home of `region` in `partition`."""
    host = PARTITIONS.get(partition, PARTITIONS["aws"]).console_host
    query = urllib.parse.urlencode({"region": region})
    return f"https://{host}/console/home?{query}"


def check_destination(url: str) -> str:
    """`url` if it is an https URL without spaces or control characters."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https" or not parsed.hostname or any(c.isspace() or ord(c) < 32 for c in url):
        raise UsageError("--destination must be an https URL")
    return url


def session_json(creds: SessionCredentials) -> str:
    """The Session parameter getSigninToken takes."""
    return json.dumps(
        {
            "sessionId": creds.access_key_id,
            "sessionKey": creds.secret_access_key,
            "sessionToken": creds.session_token,
        }
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error here: the answer must come from the endpoint we chose."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect)


def get_signin_token(
    creds: SessionCredentials,
    endpoint: str,
    session_duration: Optional[int] = None,
    *,
    timeout: float = TIMEOUT,
    opener: Callable[[], urllib.request.OpenerDirector] = _opener,
) -> str:
    """A sign-in token for `creds` from the federation `endpoint` (FederationError otherwise)."""
    params = {"Action": "getSigninToken", "Session": session_json(creds)}
    if session_duration is not None:
        params["SessionDuration"] = str(session_duration)
    host = urllib.parse.urlsplit(endpoint).netloc
    # The scheme is checked here (https, or http to loopback), so urlopen never sees file: and the like.
    url = f"{check_endpoint(endpoint)}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    log.debug("asking %s for a console sign-in token", host)

    def fetch() -> bytes:
        with opener().open(request, timeout=timeout) as answer:  # nosec B310
            return bytes(answer.read(MAX_ANSWER + 1))

    # Every failure below is re-raised `from None`: urllib's exceptions carry the request
    # URL, whose query holds the role session, and must not reach a --debug traceback.
    try:
        body = _within(timeout, fetch)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
        raise FederationError(f"the sign-in endpoint {host} answered HTTP {status}") from None
    except TimeoutError:
        raise FederationError(f"the sign-in endpoint {host} did not answer within {timeout:.0f} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        why = "no answer in time" if isinstance(reason, (socket.timeout, TimeoutError)) else _short(reason)
        raise FederationError(f"cannot reach the sign-in endpoint {host}: {why}") from None
    except (OSError, ValueError) as exc:
        raise FederationError(f"cannot reach the sign-in endpoint {host}: {_short(exc)}") from None
    if len(body) > MAX_ANSWER:
        raise FederationError(f"the sign-in endpoint {host} sent more than {MAX_ANSWER} bytes")
    try:
        token = json.loads(body.decode("utf-8")).get("SigninToken")
    except (ValueError, AttributeError, UnicodeDecodeError):
        token = None
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise FederationError(f"the sign-in endpoint {host} did not answer with a sign-in token")
    return token


def _within(seconds: float, call: Callable[[], bytes]) -> bytes:
    """`call()`, or TimeoutError once `seconds` have passed in all.

    The socket timeout bounds each read only: an endpoint that sends a byte just inside it
    would keep the request alive for ever. The call runs in a daemon thread that is left
    behind on timeout (its socket times out or closes when elevate exits).
    """
    outcome: list[bytes] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's handlers
            failure.append(exc)

    worker = threading.Thread(target=run, name="elevate-federation", daemon=True)
    worker.start()
    worker.join(seconds)
    if failure:
        raise failure[0]
    if not outcome:
        raise TimeoutError
    return outcome[0]


def login_url(endpoint: str, token: str, destination: str) -> str:
    """The Action=login URL that signs a browser in with `token` and opens `destination`."""
    query = urllib.parse.urlencode(
        {"Action": "login", "Issuer": ISSUER, "Destination": destination, "SigninToken": token}
    )
    return f"{endpoint}?{query}"


def sign_in_url(
    creds: SessionCredentials,
    role_arn: str,
    region: str,
    environ: Mapping[str, str],
    destination: Optional[str] = None,
    session_duration: Optional[int] = None,
    *,
    fetch_token: Callable[..., str] = get_signin_token,
) -> str:
    """The console sign-in URL for role credentials `creds` of `role_arn`."""
    partition = partition_of(role_arn)
    endpoint = federation_url(partition, environ)
    target = check_destination(destination) if destination else default_destination(partition, region)
    if session_duration is not None:
        low, high = SESSION_DURATION_RANGE
        session_duration = max(low, min(high, session_duration))
    token = fetch_token(creds, endpoint, session_duration)
    return login_url(endpoint, token, target)


def system_browser(url: str) -> bool:
    """webbrowser.open, looking for browsers in PATH's absolute directories only.

    The URL signs anyone in as the role: an empty, "." or relative PATH entry would hand it
    to an `xdg-open` or `firefox` planted in the working directory (a cloned repository).
    """
    before = os.environ.get("PATH")
    entries = (before if before is not None else os.defpath).split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(d for d in entries if os.path.isabs(d))
    try:
        return webbrowser.open(url)
    finally:
        if before is None:
            del os.environ["PATH"]
        else:
            os.environ["PATH"] = before


def redirect_page(url: str) -> str:
    """An HTML page that sends the browser on to `url` at once (and a link, should it not)."""
    quoted = html.escape(url, quote=True)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f'<meta http-equiv="refresh" content="0;url={quoted}"><title>aws-elevate</title></head>\n'
        f'<body><a href="{quoted}">Sign in to the AWS console</a></body></html>\n'
    )


def write_redirect(url: str, directory: Path) -> Path:
    """A 0600 file in the private directory `directory` that redirects to `url`."""
    folder = FileStore(directory).ensure()
    page = folder / f"login-{secrets.token_hex(8)}.html"
    write_private(page, redirect_page(url))
    return page


def remove_later(path: Path, seconds: float) -> None:
    """Remove `path` after `seconds`, from a small process of its own (elevate exits at once)."""
    try:
        subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _REMOVER, str(path), str(seconds)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        log.debug("cannot start the remover of the redirect file; removing it now")
        path.unlink(missing_ok=True)


def open_in_browser(
    url: str,
    directory: Path,
    opener: Callable[[str], bool] = system_browser,
    *,
    linger: float = REDIRECT_FILE_SECONDS,
    remover: Callable[[Path, float], None] = remove_later,
) -> None:
    """Open `url` in the system browser through a private redirect file in `directory`, so the
    URL is never in the browser's argv (FederationError when no browser could be started)."""
    page = write_redirect(url, directory)
    try:
        opened = opener(page.as_uri())
    except webbrowser.Error:
        opened = False
    except BaseException:
        page.unlink(missing_ok=True)
        raise
    if not opened:
        page.unlink(missing_ok=True)
        raise FederationError("no web browser could be started: use --stdout and open the URL yourself")
    remover(page, linger)


def _short(reason: object) -> str:
    """A bounded, printable, one-line reason from the network stack."""
    text = getattr(reason, "strerror", None) or str(reason)
    clean = "".join(c if c.isprintable() else " " for c in str(text))
    return " ".join(clean.split())[:120] or "unknown error"
